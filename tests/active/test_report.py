"""Summaries, AP-versus-boxes plots and the plot_runs comparison."""
import csv
import json
import os
import runpy
import sys

import pytest

from mmdet_isal.active import PoolLedger, comparison_table, group_runs, write_summary
from mmdet_isal.active.report import SUMMARY_COLUMNS, boxes_to_reach, mean_curve

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def finished_ledger():
    ids = list(range(10))
    ledger = PoolLedger(ids, {i: 2 for i in ids}, strategy=dict(type='isal', scorer={}), seed=3)
    ledger.label(ids[:4], 0)
    ledger.label(ids[4:6], 1)
    for step, ap in ((0, 0.1), (1, 0.2)):
        for stage in ('train', 'evaluate', 'score', 'select')[:4 if step == 0 else 2]:
            ledger.finish_stage(step, stage, 2.0)
        ledger.steps[step].update(metrics={'coco/bbox_mAP': ap}, bbox_mAP=ap, bbox_mAP_50=2 * ap)
    return ledger


def test_summary_files(tmp_path):
    rows = write_summary(finished_ledger(), str(tmp_path))
    assert [r['num_images'] for r in rows] == [4, 6]
    assert [r['num_boxes'] for r in rows] == [8, 12]
    with open(tmp_path / 'summary.csv') as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == SUMMARY_COLUMNS
    assert table[1]['strategy'] == 'isal' and table[1]['seed'] == '3'
    assert float(table[1]['ap_per_10k_boxes']) == pytest.approx(1e4 * 0.2 / 12)
    assert table[1]['score_seconds'] == ''  # the last step neither scores nor selects
    rows_json = json.load(open(tmp_path / 'summary.json'))
    assert rows_json[0]['train_seconds'] == 2.0 and rows_json[0]['metrics'] == {
        'coco/bbox_mAP': 0.1}
    assert (tmp_path / 'ap_vs_boxes.png').stat().st_size > 1000


def rows(strategy, seed, points):
    return [dict(step=k, strategy=strategy, seed=seed, num_images=10 * (k + 1), num_boxes=b,
                 bbox_mAP=ap, bbox_mAP_50=ap) for k, (b, ap) in enumerate(points)]


def test_mean_curve_and_boxes_to_reach():
    runs = [rows('isal', 0, [(100, 0.1), (200, 0.3)]), rows('isal', 1, [(120, 0.2), (220, 0.5)])]
    curve = mean_curve(runs)
    assert [p['boxes'] for p in curve] == [110, 210]
    assert curve[1]['ap'] == pytest.approx(0.4) and curve[1]['ap_std'] == pytest.approx(0.1)
    assert boxes_to_reach(curve, 0.15) == pytest.approx(110)
    assert boxes_to_reach(curve, 0.275) == pytest.approx(160)
    assert boxes_to_reach(curve, 0.5) is None


def test_plot_runs_tool(tmp_path, capsys):
    runs = {'isal_0': rows('isal', 0, [(100, 0.1), (180, 0.3), (260, 0.4)]),
            'isal_1': rows('isal', 1, [(100, 0.1), (200, 0.32), (280, 0.42)]),
            'random_0': rows('random', 0, [(100, 0.1), (220, 0.25), (340, 0.35)])}
    for name, r in runs.items():
        os.makedirs(tmp_path / name)
        json.dump(r, open(tmp_path / name / 'summary.json', 'w'))
    out = tmp_path / 'overlay.png'
    argv = ['plot_runs.py', *(str(tmp_path / n) for n in runs), '--out', str(out)]
    old = sys.argv
    try:
        sys.argv = argv
        runpy.run_path(os.path.join(REPO, 'tools', 'plot_runs.py'), run_name='__main__')
    finally:
        sys.argv = old
    printed = capsys.readouterr().out
    assert out.stat().st_size > 1000
    assert 'boxes needed to reach bbox_mAP 0.3500' in printed
    # random reaches 0.35 at 340 boxes; isal's mean curve (100, 190, 270 boxes; 0.1, 0.31,
    # 0.41 AP) at 190 + 80 * 0.04 / 0.1 = 222 boxes
    assert '118 fewer boxes than random, 34.7%' in printed
    table, target = comparison_table(group_runs(list(runs.values())))
    assert target == pytest.approx(0.35)
    assert '   222' in table and '   340' in table


def test_plot_runs_needs_summaries(tmp_path):
    from mmdet_isal.active import load_summary
    with pytest.raises(FileNotFoundError, match='summary.json'):
        load_summary(str(tmp_path))
