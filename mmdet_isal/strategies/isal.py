"""ISAL: label first the images whose influence on the reference loss is most negative."""
import math
from typing import Any, Dict, Optional

from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import BaseStrategy, Ranking, SelectionContext


@STRATEGIES.register_module(name='isal')
class ISALStrategy(BaseStrategy):
    """Influence selection (Liu et al., ICCV 2021), a thin wrapper of
    :func:`mmdet_isal.detection.score_pool`.

    Influence I(z', R) = -s_test . G(z') estimates how the reference loss changes when z' (with
    its pseudo-labels) is added; the most negative first. Ties are broken by image id so that
    the order is reproducible.

    Args:
        scorer: influence options (LiSSA damping, scale, depth, repeats, the parameters that
            take part, the pseudo-label threshold...), laid over ``context.scorer`` (which the
            loop fills from ``active_learning.scorer``). See ``score_pool`` for the keys.
    """

    def __init__(self, scorer: Optional[Dict[str, Any]] = None):
        self.scorer = dict(scorer or {})

    def rank(self, context: SelectionContext) -> Ranking:
        from mmdet_isal.detection import score_pool

        scores = score_pool(
            context.model, context.cfg,
            unlabeled_ann_file=context.unlabeled_ann_file,
            reference_ann_file=context.reference_ann_file,
            labeled_ann_file=context.labeled_ann_file,
            scorer={**context.scorer, **self.scorer},
            seed=context.seed)
        influence = {i: float(v['influence']) for i, v in scores.items()}
        bad = [i for i, v in influence.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f'score_pool gave non-finite influence for image(s) {bad[:5]} '
                             f'(e.g. {influence[bad[0]]}); lower the LiSSA scale or raise the '
                             f'damping in active_learning.scorer')
        order = sorted(influence, key=lambda i: (influence[i], i))
        details = {i: {k: v for k, v in rec.items() if k != 'influence'}
                   for i, rec in scores.items()}
        return Ranking(order=order, scores=influence, details=details)
