"""Top-1 accuracy and cross-entropy of a classifier, as an mmengine metric (registered in mmdet's
``METRICS``)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from .data import read_label_list

__all__ = ['ClassificationAccuracy']

#: the smallest class probability the cross-entropy takes: a float32 softmax underflows to 0
#: below it, and one such sample would make the mean infinite (-ln of it is about 87.3)
MIN_SCORE = float(np.finfo(np.float32).tiny)


@METRICS.register_module()
class ClassificationAccuracy(BaseMetric):
    """Top-1 accuracy over the evaluation set, and per class.

    Gives (prefix ``classification/``): ``accuracy`` (share of samples whose predicted class is
    their label, 0-1), ``mean_class_accuracy`` (the mean over the classes present of each
    class's accuracy: the same weight for a rare class as for a frequent one) and
    ``accuracy_{class}`` per class present (with ``classes``, its name; else its index).
    When every sample carries ``pred_score`` (the softmax, as :class:`~.model.ImageClassifier`
    predicts), also ``cross_entropy``: the mean of ``-ln pred_score[label]`` (nats; a score
    below ``MIN_SCORE`` counts as ``MIN_SCORE``), the loss ISAL's reference gradient is taken
    of, so that a strategy can be graded on the reference loss it targets.

    With ``target_prior``, also ``prior_corrected_accuracy`` and
    ``prior_corrected_mean_class_accuracy``: the same with each prediction moved from the class
    prior the classifier trained under to ``target_prior`` (the posterior reweighted by
    ``target / train`` class shares; Saerens et al., Neural Computation 2002; Menon et al.,
    ICLR 2021), i.e. ``argmax_k log p_k - log train_k + log target_k``. The training prior is
    the classifier's ``train_class_counts`` (each data sample carries it, as
    :class:`~.model.ImageClassifier` predicts), plus one per class, so a class it never saw
    stays finite. It tells how much of a classifier's accuracy a training set's class mix
    costs: an active-learning strategy that picks a class mix unlike the pool's trains a
    classifier whose prior is off.

    Args:
        classes: the class names, label k is ``classes[k]``; default: the evaluator's
            ``dataset_meta['classes']``, else indices.
        target_prior: the class proportions to correct to: K positive numbers (normalised
            here), or a list file (``"file label"`` lines, as ``ClassificationListDataset``
            reads) whose label counts, plus one per class, give them, e.g. a labeled
            validation split. None: no correction.

    Raises:
        ValueError: a ``target_prior`` that is not positive numbers or is an empty list file;
            at evaluation, one whose classes are not the classifier's, a sample without
            ``pred_score`` or ``train_class_counts``, or a classifier that counted no training
            labels.
        FileNotFoundError: ``target_prior`` names a file that does not exist.
    """

    default_prefix = 'classification'

    def __init__(self, classes: Optional[Sequence[str]] = None,
                 target_prior: Optional[Union[str, Sequence[float]]] = None, **kwargs):
        super().__init__(**kwargs)
        self.classes = tuple(classes) if classes is not None else None
        # (proportions or counts, whether counts)
        self.target_prior = read_prior(target_prior) if target_prior is not None else None

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            # mmengine's Evaluator hands the samples over as dicts (BaseDataElement.to_dict)
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            label, pred = sample.get('gt_label'), sample.get('pred_label')
            if label is None or pred is None:
                raise ValueError('ClassificationAccuracy: every data sample needs gt_label and '
                                 'pred_label (the classifier\'s predict mode gives pred_label)')
            label = int(label.reshape(-1)[0])
            score = sample.get('pred_score')
            # (label, prediction, the label's score or NaN without scores)
            result = (label, int(pred.reshape(-1)[0]),
                      float(score.reshape(-1)[label]) if score is not None else float('nan'))
            if self.target_prior is not None:
                counts = sample.get('train_class_counts')
                if score is None or counts is None:
                    raise ValueError('ClassificationAccuracy: target_prior needs each data '
                                     'sample\'s pred_score and train_class_counts (as '
                                     'ImageClassifier predicts); remove target_prior for '
                                     'another model')
                result += (np.asarray(score.cpu(), dtype=np.float64),
                           np.asarray(counts.cpu(), dtype=np.float64))
            self.results.append(result)

    def compute_metrics(self, results: List) -> Dict[str, float]:
        labels, preds = (np.array([r[k] for r in results], dtype=np.int64) for k in (0, 1))
        names = self.classes or tuple((self.dataset_meta or {}).get('classes') or ())
        out = accuracies(labels, preds, names)
        label_scores = np.array([r[2] for r in results], dtype=np.float64)
        if len(label_scores) and not np.isnan(label_scores).any():
            out['cross_entropy'] = float(np.mean(-np.log(np.maximum(label_scores, MIN_SCORE))))
        if self.target_prior is not None:
            scores = np.stack([r[3] for r in results])
            counts = np.stack([r[4] for r in results])
            corrected = prior_corrected(scores, counts, self.target_prior)
            plain = accuracies(labels, corrected, names)
            out['prior_corrected_accuracy'] = plain['accuracy']
            out['prior_corrected_mean_class_accuracy'] = plain['mean_class_accuracy']
        return out


def accuracies(labels: np.ndarray, preds: np.ndarray, names: Sequence[str]) -> Dict[str, float]:
    """``accuracy``, ``mean_class_accuracy`` and ``accuracy_{class}`` per class present."""
    out = dict(accuracy=float(np.mean(labels == preds)))
    per_class = {}
    for k in np.unique(labels):
        name = names[k] if k < len(names) else str(k)
        per_class[f'accuracy_{name}'] = float(np.mean(preds[labels == k] == k))
    out['mean_class_accuracy'] = float(np.mean(list(per_class.values())))
    out.update(per_class)
    return out


def prior_corrected(scores: np.ndarray, train_counts: np.ndarray,
                    target: Tuple[np.ndarray, bool]) -> np.ndarray:
    """``argmax_k log scores[i, k] - log train_k + log target_k`` for every sample i.

    Args:
        scores: [N, K] class probabilities.
        train_counts: [N, K] the training label counts each sample was predicted with (one
            model's: the same row throughout), one is added to each.
        target: (values, counts) as :func:`read_prior` gives: [K] positive proportions
            (``counts`` False), or label counts of the first classes (True; the others count
            none), one added to each.

    Raises:
        ValueError: the classes of ``scores`` and ``target`` differ in number (target counts
            of more classes than the classifier's), or the counts are all zero (a classifier
            that counted no training labels).
    """
    values, counts = target
    num_classes = scores.shape[1]
    if counts and len(values) <= num_classes:
        values = np.concatenate([values, np.zeros(num_classes - len(values))]) + 1
    if len(values) != num_classes or train_counts.shape != scores.shape:
        raise ValueError(f'ClassificationAccuracy: target_prior has {len(values)} classes, the '
                         f'classifier {num_classes} (and {train_counts.shape[-1]} training '
                         f'counts); give one proportion per class')
    if not np.all(train_counts.sum(1) > 0):
        raise ValueError('ClassificationAccuracy: the classifier counted no training labels '
                         '(train_class_counts is zero: a checkpoint saved before '
                         'ImageClassifier counted them, or an untrained model); retrain it, '
                         'or remove target_prior')
    train = (train_counts + 1) / (train_counts + 1).sum(1, keepdims=True)
    with np.errstate(divide='ignore'):
        adjusted = np.log(scores) - np.log(train) + np.log(values / values.sum())
    return adjusted.argmax(1)


def read_prior(prior: Union[str, Sequence[float]]) -> Tuple[np.ndarray, bool]:
    """``(values, counts)``: K positive numbers as proportions (sum 1; ``counts`` False), or a
    list file's label counts per class 0 ... its largest label (``counts`` True)."""
    if isinstance(prior, str):
        labels = np.array([label for _, label in read_label_list(prior)], dtype=np.int64)
        if not len(labels):
            raise ValueError(f'ClassificationAccuracy: target_prior {prior} lists no image; '
                             f'point it at a labeled list, e.g. the validation split')
        return np.bincount(labels).astype(np.float64), True
    try:
        values = np.asarray(prior, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if len(values) < 2 or not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError(f'ClassificationAccuracy: target_prior must be a list file or one '
                         f'positive proportion per class, got {prior!r}')
    return values / values.sum(), False
