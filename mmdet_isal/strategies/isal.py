"""ISAL: label first the images whose influence on the reference loss is most negative."""
import os.path as osp
from typing import Any, Dict, Optional

from mmdet_isal.detection import ScorerOptions, run_isal
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import BaseStrategy, Ranking, SelectionContext


@STRATEGIES.register_module(name='isal')
class ISALStrategy(BaseStrategy):
    """Influence selection (Liu et al., ICCV 2021), a thin wrapper of
    :func:`mmdet_isal.detection.run_isal`
    (which also writes ``scores.json`` and ``selection.json`` into the step's strategy dir).

    Influence I(z', R) = -s_test . G(z') estimates how the reference loss changes when z' (with
    its pseudo-labels) is added: the most negative first, ties by image id. Images without a
    pseudo box are, by default (``scorer.no_pseudo_boxes='last'``, the paper's rule), not
    ranked by influence: they get score ``None`` and come after every scored image in an order
    drawn from the seed. An image whose influence is not finite also gets ``None`` and ranks
    last of all. ``Ranking.info`` carries score_pool's diagnostics, which count both kinds.

    Args:
        scorer: this strategy's own scorer options, a flat dict of
            :class:`mmdet_isal.detection.ScorerOptions` keys (LiSSA damping, scale, depth,
            repeats, the parameters that take part, the pseudo-label threshold), laid over
            ``context.scorer``, which the loop fills from ``active_learning.scorer``.
            With ``rank_by='influence_per_cost'`` the predicted cost of an image is priced by
            ``context.cost`` (``active_learning.cost``).
    """

    def __init__(self, scorer: Optional[Dict[str, Any]] = None):
        # a misspelt or out-of-range option fails now, when the strategy is built
        ScorerOptions().replace(scorer, where='isal: scorer')
        self.scorer = dict(scorer or {})

    def rank(self, context: SelectionContext) -> Ranking:
        result = run_isal(
            context.model, context.cfg,
            unlabeled_ann_file=context.unlabeled_ann_file,
            reference_ann_file=context.reference_ann_file,
            labeled_ann_file=context.labeled_ann_file,
            scorer=(context.scorer or ScorerOptions()).replace(self.scorer, 'isal: scorer'),
            seed=context.seed,
            out=osp.join(context.work_dir, 'scores.json'),
            cost=context.cost)
        return Ranking(
            order=result.order,
            scores={i: rec['influence'] for i, rec in result.scores.items()},
            details={i: {k: v for k, v in rec.items() if k != 'influence'}
                     for i, rec in result.scores.items()},
            info=result.diagnostics)
