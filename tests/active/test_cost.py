"""The annotation cost model: its defaults and parsing, the seconds budget (never overspends,
skips what no longer fits and takes a later image that does), the loop under it (the cost
resolved and recorded), annotation hours in the reports by hand, the rule for seeds that never
reach random's AP, and the cost-ratio sensitivity."""
import json

import numpy as np
import pytest

from mmdet_isal.active import ActiveLearningConfig, PoolLedger, summary_rows
from mmdet_isal.active.preflight import check_same_run, num_classes
from mmdet_isal.active.report import (compare_with_baseline, format_report, report_data,
                                      summarise)
from mmdet_isal.cost import Budget, CostModel, apply_budget
from mmdet_isal.datasets import SHAPES_CLASSES


# --- the cost model -------------------------------------------------------------------------
def test_defaults_come_from_the_published_timings():
    cost = CostModel()
    assert (cost.per_image, cost.per_box) == (None, 7.0) and not cost.is_resolved
    eight = cost.resolved(8)  # 1 s per class of the data set
    assert (eight.per_image, eight.per_box) == (8.0, 7.0)
    assert eight.resolved(80) is eight  # resolved once
    assert eight.image_seconds(3) == 8.0 + 3 * 7.0
    assert eight.seconds([1, 2], {1: 0, 2: 5}) == 2 * 8.0 + 5 * 7.0
    assert CostModel(2.5, 0.0).total_seconds(4, 100) == 10.0
    with pytest.raises(ValueError, match='per_image is None'):
        cost.image_seconds(1)
    assert CostModel.from_dict(None) == cost
    assert CostModel.from_dict(dict(per_image=3)) == CostModel(3, 7.0)


def test_the_block_resolves_and_records_the_cost():
    al = ActiveLearningConfig.from_dict(dict(initial=dict(seconds=100), budget=dict(seconds=50.5),
                                             steps=2, cost=dict(per_box=6)))
    assert al.initial == Budget('seconds', 100) and al.budget == Budget('seconds', 50.5)
    assert al.to_dict()['cost'] == dict(per_image=None, per_box=6)
    resolved = al.resolved_cost(8)
    assert resolved.to_dict()['cost'] == dict(per_image=8.0, per_box=6)
    assert ActiveLearningConfig.from_dict(resolved.to_dict()) == resolved


def test_number_of_classes_from_the_config_or_the_data_set_class(al_cfg, pool_coco, tmp_path):
    cfg = al_cfg(pool_coco, tmp_path)
    assert num_classes(cfg) == len(SHAPES_CLASSES) == 8
    cfg.train_dataloader.dataset.pop('metainfo')
    assert num_classes(cfg) == 80  # mmdet's CocoDataset.METAINFO
    cfg.train_dataloader.dataset.type = 'NoSuchDataset'
    with pytest.raises(ValueError, match='metainfo=dict\\(classes=.*active_learning.cost.'
                                         'per_image'):
        num_classes(cfg)


# --- the seconds budget -----------------------------------------------------------------------
def test_seconds_budget_skips_what_no_longer_fits_and_takes_a_later_image():
    cost = CostModel(2.0, 7.0)  # 2 s per image, 7 s per box
    boxes = {'a': 1, 'b': 3, 'c': 0, 'd': 1, 'e': 2}  # 9, 23, 2, 9, 16 s
    # 30 s: a (9), b (23) no longer fits (32 > 30), c (11), d (20), e (36 > 30) skipped
    assert apply_budget('abcde', Budget('seconds', 30), boxes, cost=cost) == ['a', 'c', 'd']
    # exactly spent: a + b = 32 s, then nothing else is looked at
    assert apply_budget('abcde', Budget('seconds', 32), boxes, cost=cost) == ['a', 'b']
    with pytest.raises(ValueError, match=r'budget=\{.seconds.: 60\} is larger than what is left '
                                         r'in the pool \(5 images, 7 boxes, 59 s at 2 s per '
                                         r'image and 7 s per box\)'):
        apply_budget('abcde', Budget('seconds', 60), boxes, cost=cost)
    with pytest.raises(ValueError, match='needs the resolved cost model'):
        apply_budget('abcde', Budget('seconds', 30), boxes, cost=CostModel())


@pytest.mark.parametrize('seed', range(20))
def test_seconds_budget_never_overspends_and_leaves_nothing_that_fits(seed):
    rng = np.random.default_rng(seed)
    ids = list(range(60))
    boxes = {i: int(rng.integers(0, 9)) for i in ids}
    cost = CostModel(float(rng.integers(1, 10)), float(rng.integers(0, 10)))
    order = [ids[k] for k in rng.permutation(len(ids))]
    total = cost.seconds(ids, boxes)
    amount = float(rng.uniform(cost.per_image, total))
    chosen = apply_budget(order, Budget('seconds', amount), boxes, cost=cost)
    spent = cost.seconds(chosen, boxes)
    assert spent <= amount
    # in order of preference, and every image passed over did not fit when its turn came
    assert chosen == [i for i in order if i in set(chosen)]
    left = amount
    for i in order:
        if i in chosen:
            left -= cost.image_seconds(boxes[i])
        elif chosen and order.index(i) < order.index(chosen[-1]):
            assert cost.image_seconds(boxes[i]) > left
    # and nothing not taken would still fit
    assert all(cost.image_seconds(boxes[i]) > amount - spent for i in ids if i not in chosen)


@pytest.mark.slow
def test_the_loop_spends_seconds_and_records_the_cost(fake_loop):
    loop = fake_loop(initial=dict(seconds=200), budget=dict(seconds=150))
    ledger = loop.run()
    cost = CostModel(8.0, 7.0)  # 8 classes of the shapes set, 7 s per box
    assert ledger.meta['active_learning']['cost'] == cost.to_dict()
    boxes = {i: r['num_boxes'] for i, r in ledger.images.items()}
    initial = ledger.labeled_ids(0)
    assert cost.seconds(initial, boxes) <= 200
    for step in (0, 1):
        picked = ledger.selected_at(step + 1)
        ranked = ledger.ranking(step)
        assert picked == [i for i in ledger.images if i in set(
            apply_budget(ranked, Budget('seconds', 150), boxes, cost=cost))]
        assert ledger.steps[step]['num_selected_seconds'] == cost.seconds(picked, boxes) <= 150
    rows = summary_rows(ledger)
    for row in rows:
        ids = ledger.labeled_ids(row['step'])
        assert row['annotation_hours'] == pytest.approx(
            (8.0 * len(ids) + 7.0 * sum(boxes[i] for i in ids)) / 3600, abs=1e-15)


def test_a_run_recorded_before_the_cost_model_resumes(fake_loop, tmp_path):
    loop = fake_loop(steps=2)
    loop.prepare()
    state = json.load(open(loop.ledger_path))
    del state['meta']['active_learning']['cost']
    old = PoolLedger([], {}, None, 0)
    old.load_state_dict(state)
    notes = check_same_run(old, loop.pool, loop.al, loop.work_dir)
    assert notes == ["the run was started before active_learning.cost existed; resuming with "
                     "cost = {'per_image': 8.0, 'per_box': 7.0}"]
    assert summary_rows(old) == []  # nothing evaluated; hours would be None without a cost
    # but a recorded cost that differs is another protocol
    state['meta']['active_learning']['cost'] = dict(per_image=1.0, per_box=7.0)
    old.load_state_dict(state)
    with pytest.raises(ValueError, match=r"cost: \{'per_image': 1.0, 'per_box': 7.0\} -> "):
        check_same_run(old, loop.pool, loop.al, loop.work_dir)


# --- reports in hours -----------------------------------------------------------------------
def _ledger(strategy, seed, steps, per_image=10.0, per_box=5.0):
    """A finished ledger of 12 images whose ``k``-th image holds ``k % 4`` boxes; ``steps`` is
    a list of (ids labeled at that step, bbox_mAP)."""
    ids = list(range(12))
    ledger = PoolLedger(ids, {i: i % 4 for i in ids}, strategy, seed,
                        meta=dict(active_learning=dict(cost=dict(per_image=per_image,
                                                                 per_box=per_box))))
    for step, (new, ap) in enumerate(steps):
        ledger.label(new, step)
        for stage in ('train', 'evaluate'):
            ledger.finish_stage(step, stage, 1.0)
        ledger.steps[step].update(metrics={}, bbox_mAP=ap, bbox_mAP_50=ap)
    return ledger


def test_a_report_in_hours_matches_a_hand_computation():
    # random: step 0 images 0-3 (0+1+2+3 = 6 boxes), step 1 adds 4-7 (6 more boxes)
    # hours: (4 * 10 + 6 * 5) / 3600 = 70 / 3600, then (8 * 10 + 12 * 5) / 3600 = 140 / 3600
    random = summary_rows(_ledger('random', 1, [([0, 1, 2, 3], 0.10), ([4, 5, 6, 7], 0.30)]))
    assert [r['annotation_hours'] for r in random] == pytest.approx([70 / 3600, 140 / 3600],
                                                                    abs=1e-15)
    # cheap: step 1 adds 4, 8, 5, 9 (0 + 0 + 1 + 1 = 2 boxes): (8 * 10 + 8 * 5) / 3600 = 120 s...
    cheap = summary_rows(_ledger('cheap', 1, [([0, 1, 2, 3], 0.10), ([4, 8, 5, 9], 0.40)]))
    assert cheap[1]['annotation_hours'] == pytest.approx(120 / 3600, abs=1e-15)
    data = report_data({'random': {1: random}, 'cheap': {1: cheap}})
    [row] = [r for r in data['comparisons']['per_seed'] if r['step'] == 1]
    # random's 0.30 on cheap's curve: 1/3 + 2/3 of the way from 0.10 to 0.40
    t = (0.30 - 0.10) / (0.40 - 0.10)
    assert row['reach'] == 'reached'
    assert row['needed_hours'] == pytest.approx((70 + t * 50) / 3600, abs=1e-15)
    assert row['saving_hours'] == pytest.approx(1 - (70 + t * 50) / 140, abs=1e-12)
    assert row['needed_boxes'] == pytest.approx(6 + t * 2, abs=1e-12)
    assert row['saving_boxes'] == pytest.approx(1 - (6 + t * 2) / 12, abs=1e-12)
    assert row['saving_images'] == pytest.approx(1 - (4 + t * 4) / 8, abs=1e-12)
    # the old box columns are unchanged
    assert row['saving'] == pytest.approx(row['saving_boxes'], abs=1e-15)
    [saving] = [r for r in data['comparisons']['savings'] if r['step'] == 1]
    assert saving['saving_hours_median'] == pytest.approx(row['saving_hours'], abs=1e-15)
    assert saving['random_hours_mean'] == pytest.approx(140 / 3600, abs=1e-15)
    [agg] = [r for r in data['rows'] if r['strategy'] == 'cheap' and r['step'] == 1]
    assert agg['hours_mean'] == pytest.approx(120 / 3600, abs=1e-15)
    # cost ratios: cost = boxes + r x images; random 12 + 8 r, cheap's curve 6 + 4 r at 0.10
    # and 8 + 8 r at 0.40
    sens = {r['ratio']: r for r in data['comparisons']['sensitivity']['rows']
            if r['step'] == 1}
    for ratio in (0.0, 0.1, 0.3, 1.0):
        needed = (6 + 4 * ratio) + t * (2 + 4 * ratio)
        assert sens[ratio]['saving_median'] == pytest.approx(1 - needed / (12 + 8 * ratio),
                                                             abs=1e-12)
    text = format_report(data)
    hours_saving = f'{100 * row["saving_hours"]:+.1f} %'
    assert hours_saving in text and f'{140 / 3600:.2f}' in text


def test_not_reached_counts_as_a_failure_in_the_median():
    # three seeds: two save 10 % and 30 %, one never reaches random's AP
    s = summarise([0.1, 0.3, None], ['reached', 'reached', 'not_reached'])
    assert s['median'] == pytest.approx(0.1) and (s['reached'], s['not_reached']) == (2, 1)
    assert s['mean_reached'] == pytest.approx(0.2)  # printed only with "2/3 reach"
    s = summarise([0.1, None, None], ['reached', 'not_reached', 'not_reached'])
    assert s['median'] is None and s['not_reached'] == 2  # "not reached"
    s = summarise([0.1, None], ['reached', 'not_reached'])
    assert s['median'] is None  # the median of two falls between a saving and a failure
    s = summarise([0.5, -0.2, 0.1], ['above_from_start', 'reached', 'reached'])
    assert s['median'] == pytest.approx(0.1) and s['above_from_start'] == 1
    assert s['reached'] == 3


def test_a_seed_that_never_reaches_random_is_not_left_out():
    random = {1: [dict(step=k, strategy='random', seed=1, num_images=10 * (k + 1),
                       num_boxes=100 * (k + 1), annotation_hours=None, bbox_mAP=ap,
                       bbox_mAP_50=ap) for k, ap in enumerate((0.1, 0.3))]}
    random[2] = [dict(r, seed=2) for r in random[1]]
    good = [dict(r, strategy='s', num_boxes=r['num_boxes'] // 2) for r in random[1]]
    bad = [dict(r, strategy='s', seed=2, bbox_mAP=0.1 + 0.1 * r['step']) for r in random[1]]
    comp = compare_with_baseline({'random': random, 's': {1: good, 2: bad}})
    [step1] = [r for r in comp['savings'] if r['step'] == 1]
    assert (step1['reached'], step1['not_reached'], step1['seeds']) == (1, 1, 2)
    assert step1['saving_boxes_median'] is None  # the median falls on the failure
    assert step1['saving_boxes_mean_reached'] == pytest.approx(0.5)
    assert step1['defined'] == 1  # the old mean over defined seeds is still there, as before
