"""Random selection, the baseline every active-learning method is measured against."""
from typing import Sequence

from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import (BaseStrategy, ImageId, Ranking, SelectionContext,
                                        read_image_ids)
from mmdet_isal.utils.rng import Stream, stream_rng


def random_order(image_ids: Sequence[ImageId], seed: int, stream: Stream, *more: int) -> list:
    """``image_ids`` shuffled by the generator of ``stream`` for ``seed`` (and ``more``, e.g.
    the step; :func:`~mmdet_isal.utils.rng.stream_rng`).

    The order depends only on the ids as given and the seed, never on global random state.
    """
    perm = stream_rng(seed, stream, *more).permutation(len(image_ids))
    return [image_ids[k] for k in perm]


@STRATEGIES.register_module(name='random')
class RandomStrategy(BaseStrategy):
    """Ranks the unlabeled pool in a random order drawn from ``(context.seed, context.step)``.

    The score of an image is its position in that order (lower is preferred), so a run with the
    same seed selects the same images at every step.
    """

    def rank(self, context: SelectionContext) -> Ranking:
        ids = context.unlabeled_ids
        if ids is None:
            ids = read_image_ids(context.unlabeled_ann_file)
        order = random_order(list(ids), context.seed, Stream.RANDOM_STRATEGY, context.step)
        return Ranking(order=order, scores={i: float(k) for k, i in enumerate(order)})

