"""matched_random: random images with the inner strategy's box counts, step by step. The loop's
budget rule applied to its ranking picks exactly the replacements, so the multiset of box counts
is the inner picks' whenever the pool allows, under image, box and seconds budgets."""
from collections import Counter

import numpy as np
import pytest

from mmdet_isal.cost import Budget, CostModel, apply_budget
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies import MatchedRandomStrategy, match_by_boxes
from mmdet_isal.strategies.base import BaseStrategy, Ranking, SelectionContext


class ByIdStrategy(BaseStrategy):
    """Prefers the images with the most boxes' worth of id: ``(id * 7) % 11`` descending (no
    model needed); details: a pseudo-box count of ``id % 5``."""

    def rank(self, context):
        order = sorted(context.unlabeled_ids, key=lambda i: (-((i * 7) % 11), i))
        return Ranking(order=order, scores={i: float(-k) for k, i in enumerate(order)},
                       details={i: dict(num_pseudo_boxes=i % 5, other=1) for i in order},
                       info=dict(note='inner'))


@pytest.fixture(scope='module', autouse=True)
def by_id():
    STRATEGIES.register_module(module=ByIdStrategy, name='test_by_id', force=True)
    yield
    STRATEGIES._module_dict.pop('test_by_id', None)


def context(boxes, budget, cost=None, step=0, seed=0):
    return SelectionContext(model=None, cfg=None, unlabeled_ann_file='', labeled_ann_file='',
                            reference_ann_file='', work_dir='', step=step, seed=seed,
                            unlabeled_ids=list(boxes), budget=budget, cost=cost,
                            pool_boxes=dict(boxes))


def pool(seed, n=120):
    rng = np.random.default_rng(seed)
    return {i: int(rng.integers(0, 7)) for i in range(n)}


BUDGETS = [(Budget('images', 9), None), (Budget('boxes', 25), None),
           (Budget('seconds', 150), CostModel(8.0, 7.0)),
           (Budget('seconds', 97.5), CostModel(2.5, 7.0))]


@pytest.mark.parametrize('budget, cost', BUDGETS)
@pytest.mark.parametrize('seed', range(5))
def test_the_budget_rule_picks_exactly_the_replacements(budget, cost, seed):
    boxes = pool(seed)
    ctx = context(boxes, budget, cost, step=seed % 3, seed=seed)
    inner = apply_budget(ByIdStrategy().rank(ctx).order, budget, boxes, cost=cost)
    ranking = MatchedRandomStrategy('test_by_id').rank(ctx)
    info = ranking.info
    assert info['inner_picks'] == inner and info['not_exact'] == 0
    assert info['matched_exactly'] == len(inner)
    picked = apply_budget(ranking.order, budget, boxes, cost=cost)
    assert picked == ranking.order[:len(inner)]  # exactly the replacements, in pick order
    assert Counter(boxes[i] for i in picked) == Counter(boxes[i] for i in inner)
    assert [boxes[i] for i in picked] == [boxes[i] for i in inner]
    assert sorted(ranking.order) == sorted(boxes)  # every unlabeled image, once
    assert picked != inner  # random images, not the inner picks
    # the pseudo-box counts of the inner pass, for the diagnostics, and nothing else
    assert ranking.details[3] == dict(num_pseudo_boxes=3)
    assert info['inner_info'] == dict(note='inner') and info['strategy'] == dict(
        type='test_by_id')


def test_replacements_are_uniform_within_a_count_and_drawn_from_the_seed():
    boxes = {i: i % 3 for i in range(30)}  # ten images of each count
    picks = [0, 1, 3]  # counts 0, 1, 0
    seen = Counter()
    for draw in range(3000):
        got, exact = match_by_boxes(picks, list(boxes), boxes, np.random.default_rng(draw))
        assert exact == [True] * 3 and [boxes[i] for i in got] == [0, 1, 0]
        assert len(set(got)) == 3
        seen.update(g for g in got if boxes[g] == 0)
    # each of the 10 zero-box images is one of the 2 zero-count replacements with chance 1/5
    assert all(abs(seen[i] / 3000 - 0.2) < 0.04 for i in range(0, 30, 3))
    ctx = context(boxes, Budget('images', 5))
    strategy = MatchedRandomStrategy('test_by_id')
    assert strategy.rank(ctx).order == strategy.rank(ctx).order
    assert strategy.rank(ctx).order != strategy.rank(context(boxes, Budget('images', 5),
                                                             step=1)).order


def test_a_count_with_no_image_left_takes_the_nearest():
    boxes = {'a': 2, 'b': 2, 'c': 1, 'd': 4, 'e': 3}
    # three picks of 2 boxes: two images have 2; the third takes the nearest count (1 and 3
    # are as near: the lower), then 3
    got, exact = match_by_boxes(['a', 'b', 'a', 'b'], list(boxes), boxes,
                                np.random.default_rng(0))
    assert sorted(got[:2]) == ['a', 'b'] and got[2:] == ['c', 'e'] and exact == [True, True,
                                                                                 False, False]
    with pytest.raises(ValueError, match='2 picks to replace but only 1 candidate'):
        match_by_boxes(['a', 'b'], ['c'], boxes, np.random.default_rng(0))


def test_needs_the_pool_counts_and_a_real_inner_strategy():
    with pytest.raises(ValueError, match=r'true box counts .* \(simulation only\)'):
        MatchedRandomStrategy('test_by_id').rank(context({1: 2}, None))
    with pytest.raises(ValueError, match="no strategy named 'isl'"):
        MatchedRandomStrategy('isl')
    with pytest.raises(ValueError, match='cannot be matched_random itself'):
        MatchedRandomStrategy(dict(type='matched_random'))
    with pytest.raises(ValueError, match='must be a registered strategy name or dict'):
        MatchedRandomStrategy(3)
    # the inner strategy's own options are checked when it is built
    with pytest.raises(ValueError, match='unknown key'):
        MatchedRandomStrategy(dict(type='isal', scorer=dict(dampnig=1)))
    built = STRATEGIES.build(dict(type='matched_random', strategy=dict(
        type='isal', scorer=dict(rank_by='influence_per_cost')), _scope_=STRATEGIES.scope))
    assert built.strategy == dict(type='isal', scorer=dict(rank_by='influence_per_cost'))


@pytest.mark.parametrize('seed', range(3))
def test_class_match_keeps_the_picks_class_mix_and_nothing_else(seed):
    """match='class': each pick replaced by a random unlabeled image of its true class, so the
    replacements have the inner picks' class histogram, in pick order, whatever their boxes."""
    rng = np.random.default_rng(seed)
    classes = {i: int(rng.integers(0, 4)) for i in range(120)}
    ctx = SelectionContext(model=None, cfg=None, unlabeled_ann_file='', labeled_ann_file='',
                           reference_ann_file='', work_dir='', step=seed, seed=seed,
                           unlabeled_ids=list(classes), budget=Budget('images', 20),
                           pool_boxes={i: 1 for i in classes}, pool_classes=classes)
    inner = ByIdStrategy().rank(ctx).order[:20]
    ranking = MatchedRandomStrategy('test_by_id', match='class').rank(ctx)
    picked = apply_budget(ranking.order, Budget('images', 20), ctx.pool_boxes)
    assert picked == ranking.order[:20] and picked != inner
    assert [classes[i] for i in picked] == [classes[i] for i in inner]
    assert sorted(ranking.order) == sorted(classes)
    info = ranking.info
    assert info['match'] == 'class' and info['not_exact'] == 0
    assert info['inner_class_histogram'] == {
        str(k): v for k, v in sorted(Counter(classes[i] for i in inner).items())}
    # a box match of the same pool (one box each) ignores the classes
    boxes = MatchedRandomStrategy('test_by_id').rank(ctx)
    assert 'inner_class_histogram' not in boxes.info and boxes.info['match'] == 'boxes'


def test_class_match_needs_the_pool_classes():
    with pytest.raises(ValueError, match="match must be one of \\('boxes', 'class'\\)"):
        MatchedRandomStrategy('test_by_id', match='labels')
    with pytest.raises(ValueError, match="true class of every unlabeled image"):
        MatchedRandomStrategy('test_by_id', match='class').rank(
            context({1: 2, 2: 1}, Budget('images', 1)))
