"""Uncertainty sampling on detections: ``entropy`` and ``least_confidence``.

Both read only the model's test-time detections of each pool image (one inference pass,
:func:`~mmdet_isal.detection.features.detect_pool`) with ``score >= score_thr``, the detections
ISAL turns into pseudo-labels. A detection's score ``p`` is the probability the detector gives
its class at that box (for sigmoid heads such as FCOS and RetinaNet, one binary classifier per
class; FCOS multiplies it by the centerness), so the class uncertainty of a detection is that of
a Bernoulli(p) variable.
"""
import math
from typing import Dict, Optional

import torch

from mmdet_isal.detection.features import detect_pool
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import (BaseStrategy, Ranking, SelectionContext,
                                        detection_overrides, threshold_info)
from mmdet_isal.strategies.ordering import order_by_score
from mmdet_isal.utils.rng import Stream

AGGREGATES = ('max', 'mean', 'sum')


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """-p ln p - (1-p) ln(1-p) in nats, elementwise; 0 at p = 0 and p = 1, ln 2 at 0.5."""
    p = p.double()
    return -(torch.special.xlogy(p, p) + torch.special.xlogy(1 - p, 1 - p))


def image_entropy(scores: torch.Tensor, aggregate: str = 'max') -> float:
    """An image's entropy score from the scores of its detections: ``aggregate`` (max, mean or
    sum) of :func:`binary_entropy` over them; 0.0 for an image without detections."""
    if aggregate not in AGGREGATES:
        raise ValueError(f'entropy aggregate must be one of {AGGREGATES}, got {aggregate!r}')
    if scores.numel() == 0:
        return 0.0
    h = binary_entropy(scores)
    return float(dict(max=h.max, mean=h.mean, sum=h.sum)[aggregate]())


def image_least_confidence(scores: torch.Tensor) -> float:
    """1 - the highest detection score of the image (1.0 without detections): an image is as
    confident as its most confident detection."""
    return 1.0 - (float(scores.max()) if scores.numel() else 0.0)


class _DetectionUncertainty(BaseStrategy):
    """The most uncertain images first, from one detection pass; ties in seed order."""

    STREAM = 0

    def __init__(self, score_thr: Optional[float] = None, batch_size: Optional[int] = None):
        # validated now (at build time), before any training
        self.options = detection_overrides(self.NAME, score_thr=score_thr,
                                           batch_size=batch_size)

    def image_score(self, scores: torch.Tensor) -> float:
        raise NotImplementedError

    def rank(self, context: SelectionContext) -> Ranking:
        opts = context.detection_options(self.options)
        score_thr, calibration = context.score_threshold(opts)
        outputs = detect_pool(context.model, context.cfg, context.unlabeled_ann_file,
                              opts.batch_size, title=f'{self.NAME}: detecting')
        scores: Dict[object, float] = {}
        details = {}
        for img_id, out in outputs.items():
            kept = out.detections.scores[out.detections.scores >= score_thr]
            scores[img_id] = self.image_score(kept)
            details[img_id] = dict(num_pseudo_boxes=int(kept.numel()))
        order = order_by_score(scores, context.seed, context.step, self.STREAM, descending=True)
        return Ranking(order=order, scores=scores, details=details,
                       info=dict(threshold_info(score_thr, calibration), **self.info()))

    def info(self) -> dict:
        return {}


@STRATEGIES.register_module(name='entropy')
class EntropyStrategy(_DetectionUncertainty):
    """Images whose detections are most uncertain about their class first.

    Per detection the binary entropy of its score p, -p ln p - (1-p) ln(1-p) (nats; largest at
    p = 0.5); per image the ``aggregate`` over its detections with ``score >= score_thr``:
    ``'max'`` (default: the most ambiguous detection), ``'mean'`` or ``'sum'`` (the sum favours
    images with many detections). An image without detections scores 0. The score of an image
    is that aggregate. Costs one inference pass.

    Args:
        aggregate: ``'max'``, ``'mean'`` or ``'sum'``.
        score_thr: detection threshold in [0, 1) or ``'auto'`` (calibrated on the labeled
            images, :meth:`~mmdet_isal.strategies.base.SelectionContext.score_threshold`);
            default: ``active_learning.scorer.score_thr`` (ISAL's pseudo-label threshold).
        batch_size: images per inference batch; default: the scorer's ``batch_size``.
    """
    NAME = 'entropy'
    STREAM = Stream.ENTROPY_TIES

    def __init__(self, aggregate: str = 'max', score_thr: Optional[float] = None,
                 batch_size: Optional[int] = None):
        if aggregate not in AGGREGATES:
            raise ValueError(f'entropy: aggregate must be one of {AGGREGATES}, got '
                             f'{aggregate!r}')
        super().__init__(score_thr, batch_size)
        self.aggregate = aggregate

    def image_score(self, scores: torch.Tensor) -> float:
        return image_entropy(scores, self.aggregate)

    def info(self) -> dict:
        return dict(aggregate=self.aggregate, max_entropy=math.log(2))


@STRATEGIES.register_module(name='least_confidence')
class LeastConfidenceStrategy(_DetectionUncertainty):
    """Images whose most confident detection is least confident first.

    Per image 1 - max p over its detections with ``score >= score_thr`` (1 without any): the
    image is as confident as its best detection. (Taking the least confident *detection*
    instead would score every image about 1 - score_thr, since the weakest kept detection of
    almost every image sits just above the threshold.) Costs one inference pass.

    Args:
        score_thr: detection threshold in [0, 1) or ``'auto'``; default:
            ``active_learning.scorer.score_thr``.
        batch_size: images per inference batch; default: the scorer's ``batch_size``.
    """
    NAME = 'least_confidence'
    STREAM = Stream.LEAST_CONFIDENCE_TIES

    def image_score(self, scores: torch.Tensor) -> float:
        return image_least_confidence(scores)
