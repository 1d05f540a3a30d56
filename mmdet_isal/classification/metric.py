"""Top-1 accuracy of a classifier, as an mmengine metric (registered in mmdet's ``METRICS``)."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

__all__ = ['ClassificationAccuracy']


@METRICS.register_module()
class ClassificationAccuracy(BaseMetric):
    """Top-1 accuracy over the evaluation set, and per class.

    Gives (prefix ``classification/``): ``accuracy`` (share of samples whose predicted class is
    their label, 0-1), ``mean_class_accuracy`` (the mean over the classes present of each
    class's accuracy: the same weight for a rare class as for a frequent one) and
    ``accuracy_{class}`` per class present (with ``classes``, its name; else its index).

    Args:
        classes: the class names, label k is ``classes[k]``; default: the evaluator's
            ``dataset_meta['classes']``, else indices.
    """

    default_prefix = 'classification'

    def __init__(self, classes: Optional[Sequence[str]] = None, **kwargs):
        super().__init__(**kwargs)
        self.classes = tuple(classes) if classes is not None else None

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            # mmengine's Evaluator hands the samples over as dicts (BaseDataElement.to_dict)
            sample = sample.to_dict() if hasattr(sample, 'to_dict') else sample
            label, pred = sample.get('gt_label'), sample.get('pred_label')
            if label is None or pred is None:
                raise ValueError('ClassificationAccuracy: every data sample needs gt_label and '
                                 'pred_label (the classifier\'s predict mode gives pred_label)')
            self.results.append((int(label.reshape(-1)[0]), int(pred.reshape(-1)[0])))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        labels, preds = (np.array(v, dtype=np.int64) for v in zip(*results))
        names = self.classes or tuple((self.dataset_meta or {}).get('classes') or ())
        out = dict(accuracy=float(np.mean(labels == preds)))
        per_class = {}
        for k in np.unique(labels):
            name = names[k] if k < len(names) else str(k)
            per_class[f'accuracy_{name}'] = float(np.mean(preds[labels == k] == k))
        out['mean_class_accuracy'] = float(np.mean(list(per_class.values())))
        out.update(per_class)
        return out
