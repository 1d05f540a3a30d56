"""Localization stability (Kao et al., "Localization-aware active learning for object
detection", ACCV 2018): how little the predicted boxes move when the input gets noisier."""
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmdet.structures.bbox import bbox_overlaps

from mmdet_isal.detection.features import detect_pool
from mmdet_isal.influence.checks import is_number
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import (BaseStrategy, Ranking, SelectionContext,
                                        detection_overrides, threshold_info)
from mmdet_isal.strategies.ordering import order_by_score
from mmdet_isal.utils.rng import Stream, stream_key



def localization_stability(ref_boxes: torch.Tensor, ref_scores: torch.Tensor,
                           noisy_boxes: Sequence[torch.Tensor]) -> Optional[float]:
    """Kao et al.'s stability of one image.

    For each reference box B_j (a detection on the clean image) and each noise level m, the
    IoU of B_j with the noisy detection overlapping it most (0 if there is none); C_j is the
    mean over levels; the image's stability is sum_j p_j C_j / sum_j p_j with p_j the score of
    B_j. In [0, 1]: 1 when every box survives every noise level unchanged.

    Args:
        ref_boxes: [K, 4] reference boxes (x1, y1, x2, y2).
        ref_scores: [K] their scores.
        noisy_boxes: one [K_m, 4] tensor of detections per noise level.

    Returns:
        the stability, or ``None`` without reference boxes (nothing to be stable).
    """
    if len(noisy_boxes) == 0:
        raise ValueError('localization_stability: give the detections of at least one noise '
                         'level')
    if ref_boxes.shape[0] == 0:
        return None
    best = []
    for boxes in noisy_boxes:
        if boxes.shape[0] == 0:
            best.append(torch.zeros(ref_boxes.shape[0], dtype=torch.float64))
        else:
            best.append(bbox_overlaps(ref_boxes.double(), boxes.double()).max(1).values)
    c = torch.stack(best).mean(0)
    p = ref_scores.double()
    return float((p * c).sum() / p.sum())


@STRATEGIES.register_module(name='localization_stability')
class LocalizationStabilityStrategy(BaseStrategy):
    """The images whose boxes are least stable under input noise first.

    The model detects each pool image once clean (the reference boxes: detections with
    ``score >= score_thr``) and once per noise level with Gaussian noise of that standard
    deviation added to the pixels (0-255 scale, clipped; the noise is drawn from the seed and
    the step); :func:`localization_stability` compares each reference box with all the noisy
    detections (the model's own ``test_cfg`` threshold). An image without reference boxes
    has no stability: score ``None``, ranked after all others in an order drawn from the seed.
    The score of an image is its stability (lowest first). Costs ``1 + len(noise_levels)``
    inference passes over the pool.

    Args:
        noise_levels: noise standard deviations in pixel units (0-255), each > 0.
        score_thr: reference-box threshold in [0, 1) or ``'auto'``; default:
            ``active_learning.scorer.score_thr`` (ISAL's pseudo-label threshold).
        batch_size: images per inference batch; default: the scorer's ``batch_size``.
    """

    def __init__(self, noise_levels: Sequence[float] = (8, 16, 24, 32, 40, 48),
                 score_thr: Optional[float] = None, batch_size: Optional[int] = None):
        levels = list(noise_levels) if isinstance(noise_levels, (list, tuple)) else None
        if not levels or any(not is_number(s) or not s > 0 for s in levels):
            raise ValueError(f'localization_stability: noise_levels must be a non-empty list of '
                             f'standard deviations > 0 (pixel units, 0-255), got '
                             f'{noise_levels!r}')
        self.noise_levels = [float(s) for s in levels]
        # validated now (at build time), before any training
        self.options = detection_overrides('localization_stability', score_thr=score_thr,
                                           batch_size=batch_size)

    def stabilities(self, context: SelectionContext
                    ) -> Tuple[Dict[object, Optional[float]], Dict[object, int]]:
        """``{image_id: stability or None}`` of the unlabeled images of ``context``, and
        ``{image_id: number of reference boxes}``."""
        opts = context.detection_options(self.options)
        return self._stabilities(context, opts, context.score_threshold(opts)[0])

    def _stabilities(self, context: SelectionContext, opts, score_thr: float
                     ) -> Tuple[Dict[object, Optional[float]], Dict[object, int]]:
        clean = detect_pool(context.model, context.cfg, context.unlabeled_ann_file,
                            opts.batch_size, title='localization stability: clean')
        noisy = [detect_pool(context.model, context.cfg, context.unlabeled_ann_file,
                             opts.batch_size, noise_sigma=sigma,
                             noise_seed=stream_key(context.seed,
                                                   Stream.LOCALIZATION_STABILITY_NOISE,
                                                   context.step, m),
                             title=f'localization stability: noise {sigma:g}')
                 for m, sigma in enumerate(self.noise_levels)]
        out, counts = {}, {}
        for img_id, ref in clean.items():
            keep = ref.detections.scores >= score_thr
            counts[img_id] = int(keep.sum())
            out[img_id] = localization_stability(
                ref.detections.bboxes[keep], ref.detections.scores[keep],
                [level[img_id].detections.bboxes for level in noisy])
        return out, counts

    def rank(self, context: SelectionContext) -> Ranking:
        opts = context.detection_options(self.options)
        score_thr, calibration = context.score_threshold(opts)
        scores, counts = self._stabilities(context, opts, score_thr)
        order = order_by_score(scores, context.seed, context.step,
                               Stream.LOCALIZATION_STABILITY_TIES,
                               descending=False)
        return Ranking(order=order, scores=scores,
                       details={i: dict(num_pseudo_boxes=c) for i, c in counts.items()},
                       info=dict(noise_levels=self.noise_levels,
                                 **threshold_info(score_thr, calibration),
                                 num_without_reference_boxes=sum(
                                     s is None for s in scores.values())))
