"""The cost-matched random control: random images that cost what another strategy's picks cost.

A strategy can save annotation cost merely by picking cheap images (few objects). Against
``matched_random(strategy=S)``, which spends exactly what S spends at every step but picks at
random inside each cost stratum, S must win for its choice to carry information beyond cost.
With one label per image (classification), ``matched_random(strategy=S, match='class')`` picks
random images of the classes S picked, as many of each: S must beat it for its choice to carry
information beyond its class mix.
"""
import copy
from collections import Counter
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

from mmdet_isal.cost import apply_budget
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import BaseStrategy, ImageId, Ranking, SelectionContext
from mmdet_isal.utils.rng import Stream, stream_rng


def match_by_boxes(picks: Sequence[ImageId], candidates: Sequence[ImageId],
                   num_boxes: Mapping[ImageId, int], rng: np.random.Generator
                   ) -> Tuple[List[ImageId], List[bool]]:
    """Replace each of ``picks`` by a uniformly random image of ``candidates`` with the same
    number of boxes, each candidate used once.

    The candidates of each box count are put in a random order (counts in increasing order,
    each a permutation drawn from ``rng``), and each pick, in order, takes the next one of its
    count: uniform draws without replacement within each count. When a count has no candidate
    left, the pick takes the next candidate of the nearest count that has one (the lower count
    on a tie) and is reported as not exact.

    Args:
        picks: the images to replace, in pick order.
        candidates: the images to draw from (e.g. every unlabeled image), in a fixed order.
        num_boxes: boxes per image id (of ``picks`` and ``candidates``).
        rng: the generator of the draws.

    Returns:
        ``(replacements, exact)``: one replacement per pick, in pick order, and per pick
        whether its replacement has the same number of boxes.

    Raises:
        ValueError: fewer candidates than picks.
    """
    if len(candidates) < len(picks):
        raise ValueError(f'matched_random: {len(picks)} picks to replace but only '
                         f'{len(candidates)} candidate images')
    strata: Dict[int, List[ImageId]] = {}
    for img_id in candidates:
        strata.setdefault(int(num_boxes[img_id]), []).append(img_id)
    for count in sorted(strata):
        members = strata[count]
        strata[count] = [members[k] for k in rng.permutation(len(members))]
    replacements, exact = [], []
    for pick in picks:
        want = int(num_boxes[pick])
        count = want if strata.get(want) else min(
            (c for c, members in strata.items() if members), key=lambda c: (abs(c - want), c))
        replacements.append(strata[count].pop(0))
        exact.append(count == want)
    return replacements, exact


@STRATEGIES.register_module(name='matched_random')
class MatchedRandomStrategy(BaseStrategy):
    """Random images matched in cost to another strategy's picks, step by step.

    At each step the inner ``strategy`` ranks the pool with the step's model, and the loop's
    budget rule (:func:`~mmdet_isal.cost.apply_budget` with the run's budget and cost model)
    gives its picks. Each pick is then replaced by a uniformly random unlabeled image with the
    same number of true boxes (:func:`match_by_boxes`; the nearest count when none is left),
    drawn from the seed and the step. The ranking puts the replacements first, in pick order,
    then every other image in a random order: the loop's budget rule applied to it picks
    exactly the replacements whenever every pick was matched exactly, for an image, box or
    seconds budget (their costs, in the same order, are the picks' costs).

    It reads the pool's true box counts (``context.pool_boxes``, as the box budget does), so
    it works in simulation only. The score of an image is its position in the ranking. The
    ranking's info records the inner strategy's picks, their box counts, how many were matched
    exactly, and the inner ranking's own info.

    With ``match='class'`` (a pool with one label per image: image classification) each pick
    is replaced by a uniformly random unlabeled image of its true class instead
    (``context.pool_classes``; always exact, as the picks come from the same pool), so the
    control has the inner strategy's class mix and nothing else of its choice; the info then
    records the picks' class histogram (``inner_class_histogram``).

    Args:
        strategy: the inner strategy, a registered name or ``dict(type=name, **options)``
            (e.g. ``'isal'``, or ``dict(type='isal', scorer=dict(rank_by=
            'influence_per_cost'))``).
        match: ``'boxes'`` (the number of true boxes) or ``'class'`` (the true class).
    """

    MATCHES = ('boxes', 'class')

    def __init__(self, strategy: Union[str, Dict[str, Any]] = 'isal', match: str = 'boxes'):
        if match not in self.MATCHES:
            raise ValueError(f'matched_random: match must be one of {self.MATCHES}, got '
                             f'{match!r}')
        self.match = match
        if isinstance(strategy, str):
            spec = dict(type=strategy)
        elif isinstance(strategy, Mapping) and 'type' in strategy:
            spec = copy.deepcopy(dict(strategy))
        else:
            raise ValueError(f'matched_random: strategy must be a registered strategy name or '
                             f'dict(type=name, ...), got {strategy!r}')
        if spec['type'] == 'matched_random':
            raise ValueError('matched_random: the inner strategy cannot be matched_random '
                             'itself; give the strategy whose picks are to be matched')
        if STRATEGIES.get(spec['type']) is None:
            raise ValueError(f'matched_random: no strategy named {spec["type"]!r}; registered: '
                             f'{", ".join(sorted(STRATEGIES.module_dict))}')
        self.strategy = {k: v for k, v in spec.items() if k != '_scope_'}
        spec.setdefault('_scope_', STRATEGIES.scope)
        self.inner = STRATEGIES.build(spec)

    def rank(self, context: SelectionContext) -> Ranking:
        if context.pool_boxes is None or context.budget is None:
            raise ValueError('matched_random reads the true box counts of the unlabeled pool '
                             '(simulation only) and the selection budget: the loop gives '
                             'both in a simulated run; with real annotation use the inner '
                             'strategy or random')
        if self.match == 'class' and context.pool_classes is None:
            raise ValueError("matched_random(match='class') reads the true class of every "
                             "unlabeled image, which a simulated run with one label per image "
                             "(image classification) gives; use match='boxes' for detection")
        inner = self.inner.rank(context)
        picks = apply_budget(inner.order, context.budget, context.pool_boxes,
                             what='active_learning.budget', cost=context.cost)
        ids = list(context.unlabeled_ids if context.unlabeled_ids is not None else inner.order)
        rng = stream_rng(context.seed, Stream.MATCHED_RANDOM, context.step)
        key = context.pool_classes if self.match == 'class' else context.pool_boxes
        # the same draw for either key: uniform without replacement within each key's images
        replacements, exact = match_by_boxes(picks, ids, key, rng)
        taken = set(replacements)
        rest = [i for i in ids if i not in taken]
        order = replacements + [rest[k] for k in rng.permutation(len(rest))]
        boxes = [int(context.pool_boxes[i]) for i in picks]
        info = dict(strategy=self.strategy, match=self.match, inner_picks=list(picks),
                    inner_pick_boxes=boxes,
                    replacement_boxes=[int(context.pool_boxes[i]) for i in replacements],
                    matched_exactly=sum(exact), not_exact=len(exact) - sum(exact),
                    inner_box_histogram={str(k): v for k, v in sorted(Counter(boxes).items())},
                    inner_info=inner.info)
        if self.match == 'class':
            info['inner_class_histogram'] = {
                str(k): v for k, v in sorted(Counter(int(key[i]) for i in picks).items())}
        if 'score_thr' in inner.info:  # the threshold of the pseudo boxes, for the diagnostics
            info['score_thr'] = inner.info['score_thr']
        # the pseudo-box counts of the inner pass (what the model saw) for the diagnostics
        details = {i: {'num_pseudo_boxes': d['num_pseudo_boxes']}
                   for i, d in inner.details.items() if 'num_pseudo_boxes' in d}
        return Ranking(order=order, scores={i: float(k) for k, i in enumerate(order)},
                       details=details, info=info)
