"""The selection strategies for an image classifier: ISAL, entropy, least confidence and
core-set on the classifier's per-image outputs (:func:`~.outputs.classify_list`, one forward
pass). ``random`` and ``matched_random`` need no model outputs of their own and are shared with
detection.

They are registered as ``classifier_isal``, ``classifier_entropy``,
``classifier_least_confidence`` and ``classifier_coreset``; a classification run names them as
a detection run does (``'isal'``, ``'entropy'``, ...) and the classification task builds these
(:meth:`~mmdet_isal.classification.task.ClassificationTask.build_strategy`).
"""
import math
import os.path as osp
from collections import Counter
from typing import Any, Dict, Optional

import torch

from mmdet_isal.classification.data import read_label_list
from mmdet_isal.classification.influence import classifier_influence, model_influence
from mmdet_isal.classification.outputs import classify_list, image_batches
from mmdet_isal.detection.options import ScorerOptions
from mmdet_isal.influence.checks import check_int
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import BaseStrategy, Ranking, SelectionContext
from mmdet_isal.strategies.coreset import k_center_greedy_with_distances
from mmdet_isal.strategies.ordering import order_by_score
from mmdet_isal.utils.fileio import atomic_write_json
from mmdet_isal.utils.rng import Stream, hessian_subset_rng

__all__ = ['ClassifierISAL', 'ClassifierEntropy', 'ClassifierLeastConfidence',
           'ClassifierCoreset', 'categorical_entropy']

#: images per forward pass (the outputs do not depend on it)
BATCH_SIZE = 256


def categorical_entropy(probs: torch.Tensor) -> torch.Tensor:
    """``-Σ_k p_k ln p_k`` of each row of ``probs`` [N, K], in nats (0 for a one-hot row,
    ``ln K`` for the uniform one)."""
    probs = probs.double()
    return -torch.special.xlogy(probs, probs).sum(1)


class _ClassifierStrategy(BaseStrategy):
    """A strategy that ranks with one forward pass of the classifier over the pool."""

    NAME = ''

    def __init__(self, batch_size: Optional[int] = None):
        check_int(batch_size, f'{self.NAME}: batch_size', minimum=1, none_ok=True)
        self.batch_size = batch_size or BATCH_SIZE

    def outputs(self, context: SelectionContext, ann_file: str, what: str):
        return classify_list(context.model, context.cfg, ann_file, self.batch_size,
                             title=f'{self.NAME}: {what}')


class _Uncertainty(_ClassifierStrategy):
    """The most uncertain images first; ties in an order drawn from the seed."""

    STREAM = Stream.ENTROPY_TIES

    def image_scores(self, probs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def rank(self, context: SelectionContext) -> Ranking:
        out = self.outputs(context, context.unlabeled_ann_file, 'pool')
        values = self.image_scores(out.probs)
        scores = {i: float(v) for i, v in zip(out.ids, values)}
        order = order_by_score(scores, context.seed, context.step, self.STREAM, descending=True)
        return Ranking(order=order, scores=scores,
                       info=dict(num_classes=int(out.logits.shape[1])))


@STRATEGIES.register_module(name='classifier_entropy')
class ClassifierEntropy(_Uncertainty):
    """``entropy`` for a classifier: the entropy of the predicted class distribution,
    ``-Σ_k p_k ln p_k`` (nats; at most ln K), highest first.

    Args:
        batch_size: images per forward pass (default 256).
    """
    NAME = 'entropy'
    STREAM = Stream.ENTROPY_TIES

    def image_scores(self, probs):
        return categorical_entropy(probs)


@STRATEGIES.register_module(name='classifier_least_confidence')
class ClassifierLeastConfidence(_Uncertainty):
    """``least_confidence`` for a classifier: ``1 - max_k p_k``, highest first.

    Args:
        batch_size: images per forward pass (default 256).
    """
    NAME = 'least_confidence'
    STREAM = Stream.LEAST_CONFIDENCE_TIES

    def image_scores(self, probs):
        return 1.0 - probs.max(1).values


@STRATEGIES.register_module(name='classifier_coreset')
class ClassifierCoreset(_ClassifierStrategy):
    """``coreset`` for a classifier (Sener & Savarese, ICLR 2018): k-center greedy on the pooled
    features (the last layer's input), the labeled images as the initial centres; each pick is
    the image farthest from its nearest centre and then becomes one. Score: that squared
    distance when picked; after ``max_greedy`` picks the rest by their distance to the nearest
    centre.

    Args:
        max_greedy: the most greedy picks (None: the whole pool; the loop uses only the
            budget's worth, so e.g. 2 x the budget is enough).
        batch_size: images per forward pass (default 256).
    """
    NAME = 'coreset'

    def __init__(self, max_greedy: Optional[int] = None, batch_size: Optional[int] = None):
        super().__init__(batch_size)
        check_int(max_greedy, 'coreset: max_greedy', minimum=1, none_ok=True)
        self.max_greedy = max_greedy

    def rank(self, context: SelectionContext) -> Ranking:
        pool = self.outputs(context, context.unlabeled_ann_file, 'pool features')
        labeled = self.outputs(context, context.labeled_ann_file, 'labeled features')
        features = torch.cat([pool.features, labeled.features]).double()
        mask = torch.zeros(len(features), dtype=torch.bool)
        mask[len(pool.ids):] = True
        n = len(pool.ids) if self.max_greedy is None else min(self.max_greedy, len(pool.ids))
        picks, picked_d, min_d = k_center_greedy_with_distances(features, mask, n)
        ids = pool.ids
        scores = {ids[k]: float(d) for k, d in zip(picks, picked_d)}
        rest = sorted(set(range(len(ids))) - set(picks), key=lambda k: (-float(min_d[k]), k))
        scores.update({ids[k]: float(min_d[k]) for k in rest})
        return Ranking(order=[ids[k] for k in picks + rest], scores=scores,
                       info=dict(feature_dim=int(features.shape[1]),
                                 num_centres=len(labeled.ids), greedy_picks=n))


@STRATEGIES.register_module(name='classifier_isal')
class ClassifierISAL(_ClassifierStrategy):
    """``isal`` for a classifier (Liu et al., ICCV 2021, as for CIFAR): the influence of each
    unlabeled image, labeled with its predicted class, on the cross-entropy of the reference
    set (``active_learning.reference``, by default the val set), through the last linear layer
    (:func:`~.influence.classifier_influence`); the most negative first, ties in an order drawn
    from the seed. Writes ``scores.json`` into the step's strategy directory.

    Of the scorer options (``active_learning.scorer`` with this strategy's own laid over) it
    reads ``hessian_images`` (at most that many labeled images form H; paper: 500),
    ``hessian_batch_size``, the solver's (``solver``: ``'lissa'``, ``'cg'`` or ``'exact'``;
    ``damping``, ``scale``, ``depth``, ``repeats``, ...) and ``params``. ``params=None`` (the
    default): the last layer's weight and bias, with the closed-form per-sample gradients on
    the pooled features. Names or patterns (e.g. ``['backbone.layer4.1', 'fc']``, the paper's
    option of the last block too): those parameters, through the images
    (:func:`~.influence.model_influence`; ``'exact'`` only for a few thousand parameters). The
    detection options (``score_thr``, ``include_bias``, the loss normaliser, ``rank_by``) do
    not apply; the pseudo-label is the predicted class.

    Args:
        scorer: this strategy's own scorer options (a flat dict, as the detection ISAL's).
        batch_size: images per forward pass (default 256).
        labels: what each pool image's influence is computed with: ``'predicted'`` (ISAL's
            pseudo-label, the default) or ``'true'``, the class the pool's list file gives
            it. ``'true'`` is a diagnostic for simulated runs only (the labels an annotator
            has not given yet): it tells the influence ranking's worth apart from the
            pseudo-labels' (e.g. ``'isal_true_labels=isal(labels=true)'`` in
            ``tools/al_experiment.py``).
    """
    NAME = 'isal'
    LABELS = ('predicted', 'true')

    def __init__(self, scorer: Optional[Dict[str, Any]] = None,
                 batch_size: Optional[int] = None, labels: str = 'predicted'):
        super().__init__(batch_size)
        ScorerOptions().replace(scorer, where='isal: scorer')  # fails now, not after training
        self.scorer = dict(scorer or {})
        if labels not in self.LABELS:
            raise ValueError(f'isal: labels must be one of {self.LABELS} (the predicted class, '
                             f'or the pool\'s own label in a simulated run), got {labels!r}')
        self.labels = labels

    def rank(self, context: SelectionContext) -> Ranking:
        opts = (context.scorer or ScorerOptions()).replace(self.scorer, 'isal: scorer')
        if opts.scoring.params is not None:
            ids, values, pseudo, s_test, info = self._through_images(context, opts)
        else:
            ids, values, pseudo, s_test, info = self._last_layer(context, opts)
        return self._ranking(context, opts, ids, values, pseudo, s_test, info)

    def _last_layer(self, context: SelectionContext, opts: ScorerOptions):
        """The last layer, closed form on the pooled features."""
        reference = self.outputs(context, context.reference_ann_file, 'reference')
        labeled = self.outputs(context, context.labeled_ann_file, 'labeled')
        pool = self.outputs(context, context.unlabeled_ann_file, 'pool')
        fc = context.model.fc
        result = classifier_influence(
            fc, (reference.features, reference.labels), (labeled.features, labeled.labels),
            pool.features, solver=opts.inverse_hvp, hessian_images=opts.scoring.hessian_images,
            hessian_batch_size=opts.scoring.hessian_batch_size, seed=context.seed,
            pool_labels=pool.labels if self.labels == 'true' else None)
        return (pool.ids, result.scores, result.pseudo_labels, result.s_test,
                dict(hessian_images=result.hessian_samples, reference_images=len(reference.ids),
                     parameters=int(fc.weight.numel() + fc.bias.numel())))

    def _through_images(self, context: SelectionContext, opts: ScorerOptions):
        """``scorer.params`` (e.g. the last block and the last layer), through the images."""
        model = context.model
        num_labeled = len(read_label_list(context.labeled_ann_file))
        take = min(opts.scoring.hessian_images, num_labeled)
        chosen = sorted(hessian_subset_rng(context.seed).choice(num_labeled, take,
                                                                replace=False).tolist())
        hessian = [(x, y) for x, y, _ in image_batches(
            model, context.cfg, context.labeled_ann_file, opts.scoring.hessian_batch_size,
            chosen)]
        reference = ((x, y) for x, y, _ in image_batches(
            model, context.cfg, context.reference_ann_file, self.batch_size))
        ids, pseudo = [], []

        def pool():
            for x, true, names in image_batches(model, context.cfg, context.unlabeled_ann_file,
                                                self.batch_size):
                if self.labels == 'true':
                    labels = true
                else:
                    with torch.no_grad():
                        labels = model(x).argmax(1)
                ids.extend(names)
                pseudo.append(labels)
                yield x, labels

        scores, s_test = model_influence(model, opts.scoring.params, reference, hessian,
                                         pool(), opts.inverse_hvp, seed=context.seed)
        count = sum(t.numel() for t in s_test)
        return (ids, scores.double(), torch.cat(pseudo) if pseudo else torch.zeros(0), s_test,
                dict(hessian_images=take, params=list(opts.scoring.params),
                     parameters=int(count)))

    def _ranking(self, context, opts, ids, values, pseudo_labels, s_test, info) -> Ranking:
        scores = {i: float(v) for i, v in zip(ids, values)}
        finite = {i: (v if math.isfinite(v) else None) for i, v in scores.items()}
        # ties (and images without a finite score, last) in the order of the stream of the
        # detection ISAL's unranked images
        order = order_by_score(finite, context.seed, context.step, Stream.UNRANKED_ORDER,
                               descending=False)
        pseudo = [int(c) for c in pseudo_labels]
        details = {i: dict(pseudo_label=c) if finite[i] is not None
                   else dict(pseudo_label=c, status='nonfinite')
                   for i, c in zip(ids, pseudo)}
        info = dict(info, labels=self.labels, solver=opts.inverse_hvp.to_dict(),
                    s_test_norm=float(torch.cat([t.flatten() for t in s_test]).norm()),
                    pseudo_label_histogram={str(k): v for k, v in
                                            sorted(Counter(pseudo).items())})
        atomic_write_json(osp.join(context.work_dir, 'scores.json'),
                          dict(info=info, order=order,
                               scores={str(i): finite[i] for i in order}), indent=1)
        return Ranking(order=order, scores=finite, details=details, info=info)
