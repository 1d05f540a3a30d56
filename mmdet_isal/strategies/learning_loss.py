"""Learning loss (Yoo & Kweon, CVPR 2019): the images with the largest predicted loss first."""
from typing import Optional

from mmdet_isal.detection.features import detect_pool
from mmdet_isal.models import LossPredictionDetector
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import (BaseStrategy, Ranking, SelectionContext,
                                        detection_overrides, threshold_info)
from mmdet_isal.strategies.ordering import order_by_score
from mmdet_isal.utils.model import unwrap_model
from mmdet_isal.utils.rng import Stream



@STRATEGIES.register_module(name='learning_loss')
class LearningLossStrategy(BaseStrategy):
    """The images whose loss the model's loss-prediction module predicts largest first.

    Needs a model trained with the module: ``model.type='LossPredictionDetector'``
    (:class:`~mmdet_isal.models.LossPredictionDetector`; see
    ``configs/toy/fcos_shapes_learning_loss_al.py``). The score of an image is its predicted
    loss; the number of its detections with ``score >= score_thr`` goes in the details. Costs
    one inference pass over the pool (the module adds a pooling and two small linear layers).

    Args:
        score_thr: threshold of the detections counted in the details (or ``'auto'``);
            default: ``active_learning.scorer.score_thr``.
        batch_size: images per inference batch; default: the scorer's ``batch_size``.
    """

    def __init__(self, score_thr: Optional[float] = None, batch_size: Optional[int] = None):
        # validated now (at build time), before any training
        self.options = detection_overrides('learning_loss', score_thr=score_thr,
                                           batch_size=batch_size)

    def rank(self, context: SelectionContext) -> Ranking:
        opts = context.detection_options(self.options)
        model = unwrap_model(context.model)
        if not isinstance(model, LossPredictionDetector):
            raise TypeError(f'learning_loss needs a detector trained with a loss-prediction '
                            f'module, got a {type(model).__name__}: wrap the model in the '
                            f'config, model=dict(type=\'LossPredictionDetector\', '
                            f'detector=<the detector>) (configs/toy/'
                            f'fcos_shapes_learning_loss_al.py)')
        score_thr, calibration = context.score_threshold(opts)
        outputs = detect_pool(context.model, context.cfg, context.unlabeled_ann_file,
                              opts.batch_size, title='learning loss: predicting losses',
                              fields=('pred_loss',))
        scores = {i: float(o.fields['pred_loss']) for i, o in outputs.items()}
        details = {i: dict(num_pseudo_boxes=int((o.detections.scores >= score_thr).sum()))
                   for i, o in outputs.items()}
        order = order_by_score(scores, context.seed, context.step, Stream.LEARNING_LOSS_TIES,
                               descending=True)
        return Ranking(order=order, scores=scores, details=details,
                       info=threshold_info(score_thr, calibration))
