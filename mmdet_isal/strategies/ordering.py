"""Turning per-image scores into an order: ties broken in an order drawn from the seed."""
from typing import Dict, List, Optional

from mmdet_isal.strategies.base import ImageId
from mmdet_isal.utils.rng import Stream, stream_rng


def order_by_score(scores: Dict[ImageId, Optional[float]], seed: int, step: int, stream: Stream,
                   descending: bool) -> List[ImageId]:
    """Image ids of ``scores``, by score (highest first if ``descending``), images with equal
    scores in an order drawn from ``(seed, stream, step)``, images with score ``None`` last
    (in that drawn order).

    Args:
        scores: ``{image_id: score or None}``.
        seed, step: the run's seed and the active-learning step.
        stream: the calling strategy's :class:`~mmdet_isal.utils.rng.Stream`, so that its tie
            order is its own.
        descending: the highest score first (else the lowest).
    """
    ids = sorted(scores, key=str)
    tie = stream_rng(seed, stream, step).permutation(len(ids))
    sign = -1.0 if descending else 1.0

    def key(k):
        s = scores[ids[k]]
        return (s is None, 0.0 if s is None else sign * s, tie[k])
    return [ids[k] for k in sorted(range(len(ids)), key=key)]
