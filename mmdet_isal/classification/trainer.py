"""The trainer of an image classification run: mmengine's Runner on the classifier's config,
as for a detector (:class:`~mmdet_isal.active.trainer.MMEngineTrainer`), evaluated by top-1
accuracy."""
from typing import Any, Dict

from mmdet_isal.active.trainer import MMEngineTrainer, StepJob

__all__ = ['ClassifierTrainer', 'ACCURACY_KEYS']

#: The loop's accuracy metrics and the keys of :class:`~.metric.ClassificationAccuracy` they
#: come from (0-1 scale).
ACCURACY_KEYS = {
    'accuracy': 'classification/accuracy',
    'mean_class_accuracy': 'classification/mean_class_accuracy',
}


class ClassifierTrainer(MMEngineTrainer):
    """Trains an :class:`~mmdet_isal.classification.ImageClassifier` on the step's list file
    and evaluates it with ``val_dataloader`` / ``val_evaluator`` (a
    ``ClassificationAccuracy``); ``accuracy`` is the primary metric (``target_ap`` compares
    with it, the reports' curves show it). Predicts no boxes (galleries show the labels only).
    Arguments as :class:`~mmdet_isal.active.trainer.MMEngineTrainer`.
    """

    primary_metric = 'accuracy'
    metric_names = tuple(ACCURACY_KEYS)

    def evaluate(self, job: StepJob) -> Dict[str, Any]:
        """``runner.val()``: ``metrics`` (every metric, plain numbers) and ``accuracy``,
        ``mean_class_accuracy`` (0-1).

        Raises:
            KeyError: the evaluator gave no accuracy (naming what it gave).
        """
        metrics = self._runner_of(job).val() or {}
        missing = [k for k in ACCURACY_KEYS.values() if k not in metrics]
        if missing:
            raise KeyError(f'the evaluator gave none of {missing} (it gave {sorted(metrics)}); '
                           f'use val_evaluator=dict(type="ClassificationAccuracy")')
        plain = {k: float(v) if isinstance(v, (int, float)) else str(v)
                 for k, v in metrics.items()}
        return dict(metrics=plain, **{name: float(metrics[key])
                                      for name, key in ACCURACY_KEYS.items()})

    def predict(self, job: StepJob, ann_file: str):
        """None: a classifier predicts no boxes."""
        return None
