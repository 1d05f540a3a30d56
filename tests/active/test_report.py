"""The report stack for one run and several: summaries, the one interpolation, mean ± sample std
over seeds, the one plot, the one text report, and tools/plot_runs.py."""
import csv
import json
import os
import re
import runpy
import sys

import numpy as np
import pytest

from mmdet_isal.active import (PoolLedger, format_report, group_runs, report_data, summary_rows,
                               write_summary)
from mmdet_isal.active.report import (SUMMARY_COLUMNS, aggregate, boxes_at_ap, common_ap,
                                      mean_std, reach, run_results)

from tests.active.conftest import PLOT_SIZE, png_size

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
    assert float(table[1]['ap_per_10k_boxes']) == 1e4 * 0.2 / 12
    assert table[1]['score_seconds'] == ''  # the last step neither scores nor selects
    rows_json = json.load(open(tmp_path / 'summary.json'))
    assert rows_json[0]['train_seconds'] == 2.0 and rows_json[0]['metrics'] == {
        'coco/bbox_mAP': 0.1}
    assert png_size(tmp_path / 'ap_vs_boxes.png') == PLOT_SIZE
    os.remove(tmp_path / 'ap_vs_boxes.png')
    write_summary(finished_ledger(), str(tmp_path), plot=False)
    assert not (tmp_path / 'ap_vs_boxes.png').exists()


def test_one_run_is_an_experiment_with_one_seed():
    data = report_data(run_results(summary_rows(finished_ledger())), baseline=None)
    assert [(r['strategy'], r['step'], r['seeds']) for r in data['rows']] == [('isal', 0, 1),
                                                                             ('isal', 1, 1)]
    assert data['rows'][1]['bbox_mAP_mean'] == 0.2 and data['rows'][1]['bbox_mAP_std'] is None
    assert data['comparisons'] is None and 'note' not in data
    text = format_report(data)
    # no annotation hours: the ledger was recorded without a cost model
    assert text.splitlines()[3].split() == ['isal', '1', '1', '6', '12', 'n/a', '0.2000',
                                            '0.4000']
    assert not any('±' in line for line in text.splitlines()[1:]) and 'random' not in text


def rows(strategy, seed, points):
    return [dict(step=k, strategy=strategy, seed=seed, num_images=10 * (k + 1), num_boxes=b,
                 bbox_mAP=ap, bbox_mAP_50=ap) for k, (b, ap) in enumerate(points)]


def test_reach_is_linear_between_points_and_says_nothing_outside():
    points = [(0.1, 100.0), (0.3, 200.0), (0.3, 250.0), (0.2, 300.0), (0.5, 400.0)]
    assert reach(points, 0.1) == 100.0  # at the first point
    assert reach(points, 0.05) is None  # below it: the curve does not say
    assert reach(points, 0.15) == 100.0 + (0.15 - 0.1) / (0.3 - 0.1) * 100.0
    assert reach(points, 0.3) == 200.0  # the first point that reaches it
    assert reach(points, 0.4) == 300.0 + (0.4 - 0.2) / (0.5 - 0.2) * 100.0  # first crossing
    assert reach(points, 0.51) is None and reach([], 0.1) is None
    assert reach([(1.0, 5.0), (1.0, 7.0)], 1.0) == 5.0


def test_mean_and_sample_std_over_seeds():
    mean, std = mean_std([0.3, 0.5, 0.7])
    assert mean == pytest.approx(0.5, abs=1e-15)
    assert std == pytest.approx(0.2, abs=1e-15)  # sqrt(((-0.2)^2 + 0 + 0.2^2) / (3 - 1))
    assert std == np.std([0.3, 0.5, 0.7], ddof=1)
    assert mean_std([0.3]) == (0.3, None) and mean_std([]) == (None, None)


def test_several_runs_mean_curves_and_boxes_at_a_common_ap():
    runs = {'isal': {0: rows('isal', 0, [(100, 0.1), (200, 0.3)]),
                     1: rows('isal', 1, [(120, 0.2), (220, 0.5)])}}
    curve = aggregate(runs)
    assert [r['boxes_mean'] for r in curve] == [110, 210]
    assert curve[1]['bbox_mAP_mean'] == pytest.approx(0.4, abs=1e-15)
    # sample std (ddof=1): |0.5 - 0.3| / sqrt(2); the loop's reports used ddof=0 (0.1) before
    assert curve[1]['bbox_mAP_std'] == pytest.approx(0.2 / 2 ** 0.5, abs=1e-15)
    assert curve[0]['boxes_std'] == pytest.approx(20 / 2 ** 0.5, abs=1e-12)
    assert boxes_at_ap(curve, curve[0]['bbox_mAP_mean']) == {'isal': 110.0}  # (0.1 + 0.2) / 2
    # 110 + (0.275 - 0.15) / (0.4 - 0.15) * 100
    assert boxes_at_ap(curve, 0.275) == {'isal': pytest.approx(160, abs=1e-12)}
    assert boxes_at_ap(curve, 0.5) == {'isal': None} == boxes_at_ap(curve, 0.1)
    assert common_ap(curve) == pytest.approx(0.4, abs=1e-15)


def write_runs(tmp_path, runs):
    for name, r in runs.items():
        os.makedirs(tmp_path / name)
        json.dump(r, open(tmp_path / name / 'summary.json', 'w'))
    return [str(tmp_path / name) for name in runs]


def run_plot_runs(argv):
    old = sys.argv
    try:
        sys.argv = ['plot_runs.py', *argv]
        runpy.run_path(os.path.join(REPO, 'tools', 'plot_runs.py'), run_name='__main__')
    finally:
        sys.argv = old


def test_plot_runs_tool(tmp_path, capsys):
    runs = {'isal_0': rows('isal', 0, [(100, 0.1), (180, 0.3), (260, 0.4)]),
            'isal_1': rows('isal', 1, [(100, 0.1), (200, 0.32), (280, 0.42)]),
            'random_0': rows('random', 0, [(100, 0.1), (220, 0.25), (340, 0.35)])}
    out = tmp_path / 'overlay.png'
    run_plot_runs([*write_runs(tmp_path, runs), '--out', str(out)])
    printed = capsys.readouterr().out
    assert png_size(out) == PLOT_SIZE
    assert 'boxes needed to reach bbox_mAP 0.3500' in printed
    # random reaches 0.35 at 340 boxes; isal's mean curve (100, 190, 270 boxes; 0.1, 0.31,
    # 0.41 AP) at 190 + 80 * 0.04 / 0.1 = 222 boxes
    assert '118 fewer boxes than random, 34.7%' in printed
    assert re.search(r'^  isal +222  \(118 fewer', printed, re.M)
    assert re.search(r'^  random +340$', printed, re.M)
    # isal seed 0 against random seed 0: random's step-1 AP 0.25 at 220 boxes, isal's curve
    # there at 100 + 80 * 0.15 / 0.2 = 160 boxes, a saving of 1 - 160 / 220 = 27.3 %; and at
    # 10 + 10 * 0.15 / 0.2 = 17.5 images against random's 20, 12.5 %; no hours recorded
    assert "Saving at random's AP" in printed
    assert re.search(r'^isal +1 +0.2500 +n/a +n/a +\+27.3 % +\+12.5 %  1/1 reach$', printed,
                     re.M)
    assert '0.3100 ± 0.0141' in printed  # |0.32 - 0.3| / sqrt(2)
    run_plot_runs([*write_runs(tmp_path / 'x', {'isal_0': runs['isal_0']}), '--out', str(out),
                   '--ap', '0.05'])
    assert re.search(r'^  isal +above it from the first step$', capsys.readouterr().out, re.M)


def test_plot_runs_refuses_a_strategy_and_seed_twice(tmp_path):
    dirs = write_runs(tmp_path, {'a': rows('isal', 0, [(100, 0.1)]),
                                 'b': rows('isal', 0, [(120, 0.2)])})
    with pytest.raises(SystemExit, match=r"a and .*b are both runs of strategy 'isal' with "
                                          r"seed 0"):
        run_plot_runs([*dirs, '--out', str(tmp_path / 'x.png')])
    assert list(group_runs([rows('isal', 0, [(1, 0.1)]), []])) == ['isal']


def test_plot_runs_needs_summaries(tmp_path):
    from mmdet_isal.active import load_summary
    with pytest.raises(FileNotFoundError, match='summary.json'):
        load_summary(str(tmp_path))


def test_one_fixed_colour_per_strategy_random_black():
    from mmdet_isal.active.report import strategy_colours
    from mmdet_isal.active.report.render import PALETTE, STRATEGY_COLOURS
    labels = ['isal', 'random', 'isal_cost', 'matched_isal', 'entropy', 'fewest_detections']
    colours = strategy_colours(labels)
    assert colours['random'] == '#000000' and colours['isal'] == STRATEGY_COLOURS['isal']
    assert len(set(colours.values())) == len(labels)  # never two alike in one figure
    # the same label has the same colour in another figure, whatever the others
    for other in (['isal_cost', 'random'], ['isal_cost'], labels[::-1]):
        assert strategy_colours(other)['isal_cost'] == colours['isal_cost']
    assert colours['isal_cost'] in PALETTE
    many = strategy_colours([f's{k}' for k in range(len(PALETTE))])
    assert len(set(many.values())) == len(PALETTE)


def test_titles_name_the_data_set_the_model_and_the_protocol():
    from mmdet_isal.active.report import model_description, protocol_title
    from mmdet_isal.active.report.render import dataset_name
    assert dataset_name('/x/data/shapes/annotations/instances_train.json') == 'shapes'
    assert dataset_name('/d/VOCdevkit/VOC2012/ImageSets/Main/train.txt') == 'VOCdevkit'
    fcos = dict(type='FCOS', backbone=dict(type='ResNet', depth=18))
    assert model_description(fcos) == 'FCOS (ResNet-18)'
    assert model_description(dict(type='LossPredictionDetector', detector=fcos)) == \
        'LossPredictionDetector of FCOS (ResNet-18)'
    title = protocol_title('shapes', 'FCOS (ResNet-18)', dict(
        initial=dict(images=300), budget=dict(seconds=3600), steps=5, retrain='scratch',
        cost=dict(per_image=8.0, per_box=7.0)))
    assert title == ('shapes, FCOS (ResNet-18): 300 images initial, +3600 s x 4, from '
                     'scratch; 8 s per image + 7 s per box')
    # one label per image: the cost of a labeled image, 8 + 7 s
    al = dict(initial=dict(images=2000), budget=dict(images=2000), steps=6,
              cost=dict(per_image=8.0, per_box=7.0))
    assert protocol_title('shapes_cls', 'ImageClassifier (ResNet-18)', al,
                          labels_are_boxes=False) == (
        'shapes_cls, ImageClassifier (ResNet-18): 2000 images initial, +2000 images x 5, '
        'from scratch; 15 s per labeled image')
    # a run's title reads the task from its ledger's meta (none recorded: detection)
    from mmdet_isal.active.report.files import run_title
    meta = dict(pool=dict(ann_file='/d/shapes_cls/train.txt'), model='M', active_learning=al)
    assert run_title(dict(meta, task='classification')).endswith('; 15 s per labeled image')
    assert run_title(meta).endswith('; 8 s per image + 7 s per box')


def test_savings_labels_keep_apart():
    """Labels of random's levels stay on their lines where they fit; closer lines push them
    up by just the gap, in the lines' order, and near the top they are pushed down."""
    from mmdet_isal.active.report.render import label_heights
    assert label_heights([]) == []
    assert label_heights([0.2, 0.5, 0.8]) == [0.2, 0.5, 0.8]
    # 0.50 and 0.51 (given out of order): the higher line's label goes to 0.50 + 0.035
    out = label_heights([0.51, 0.2, 0.50], gap=0.035)
    assert out[1] == 0.2 and out[2] == 0.50 and abs(out[0] - 0.535) < 1e-12
    # three lines at the top: the top one at 0.96, the others a gap below each other
    out = label_heights([0.95, 0.955, 0.96], gap=0.04, top=0.96)
    assert [round(h, 10) for h in out] == [0.88, 0.92, 0.96]


def test_the_plot_has_three_panels_and_random_levels(tmp_path):
    from mmdet_isal.active.report import plot_curves
    results = {name: {seed: [dict(r, annotation_hours=r['num_boxes'] / 500) for r in rows(
        name, seed, pts)] for seed in (0, 1)} for name, pts in (
        ('random', [(100, 0.1), (220, 0.25), (340, 0.35)]),
        ('isal', [(100, 0.1), (180, 0.3), (260, 0.4)]))}
    data = report_data(results)
    out = tmp_path / 'p.png'
    plot_curves(data['rows'], str(out), title='shapes, FCOS: a protocol',
                savings=data['comparisons']['savings'])
    assert png_size(out) == PLOT_SIZE
    # without hours (runs recorded before the cost model) the first panel says so
    plot_curves(report_data({'isal': {0: rows('isal', 0, [(1, 0.1), (2, 0.2)])}})['rows'],
                str(out))
    assert png_size(out) == PLOT_SIZE


def test_one_label_per_image_reads_in_accuracy_and_images(tmp_path):
    """A classification experiment (one label per image, accuracy): no box column, no box
    diagnostics, no sensitivity table (a saving is the same at every cost ratio), savings in
    hours and images, and the plot's two panels; the numbers as a hand computation gives."""
    from mmdet_isal.active.report import one_label_per_image, plot_curves

    def cls_rows(strategy, seed, accs):
        return [dict(step=k, strategy=strategy, seed=seed, num_images=100 * (k + 1),
                     num_boxes=100 * (k + 1), annotation_hours=100 * (k + 1) * 15 / 3600,
                     accuracy=a, mean_class_accuracy=a / 2) for k, a in enumerate(accs)]
    results = {'random': {1: cls_rows('random', 1, [0.4, 0.5, 0.6]),
                          2: cls_rows('random', 2, [0.4, 0.5, 0.6])},
               'isal': {1: cls_rows('isal', 1, [0.4, 0.6, 0.7]),
                        2: cls_rows('isal', 2, [0.4, 0.56, 0.64])}}
    data = report_data(results)
    assert one_label_per_image(data['rows'])
    text = format_report(data)
    lines = text.splitlines()
    assert lines[0].startswith('accuracy per strategy and step')
    assert lines[1].split() == ['strategy', 'seeds', 'step', 'images', 'hours', 'accuracy',
                                'mean_class_accuracy']
    assert 'boxes' not in text and 'Sensitivity' not in text and ' AP' not in text
    assert "Saving at random's accuracy" in text
    # isal reaches random's step-1 accuracy 0.5 at 150 images (seed 1: halfway from 0.4 to
    # 0.6) and at 100 + 100 x 0.1/0.16 = 162.5 images (seed 2): savings 25 % and 18.75 %,
    # median 21.875 %, the same in hours
    row = next(line.split() for line in lines
               if line.split()[:2] == ['isal', '1'] and '%' in line)
    assert row[2:6] == ['0.5000', '0.83', '+21.9', '%'] and row[6:8] == ['+21.9', '%']
    # accuracy at random's images: +0.08 ± 0.0283 at step 1 (0.1 and 0.06), held on 2 of 2
    diff = next(line for line in lines if line.split()[:3] == ['isal', '1', '200'])
    assert diff.split()[3:8] == ['0.5000', '0.5800', '+0.0800', '±', '0.0283']
    assert diff.split()[8] == '2/2'
    out = tmp_path / 'p.png'
    plot_curves(data['rows'], str(out), savings=data['comparisons']['savings'])
    two_panels = png_size(out)
    assert two_panels[1] == PLOT_SIZE[1] and two_panels[0] < PLOT_SIZE[0]
    # detection rows (more boxes than images) keep the boxes
    assert not one_label_per_image(report_data({'isal': {0: rows('isal', 0, [(20, 0.1)])}})[
        'rows'])


def write_experiment(exp, results, seeds):
    """An experiment directory as tools/al_experiment.py leaves it: each run's summary.json
    (``results``: ``{label: {seed: rows}}``) and the meta file naming the labels and ``seeds``."""
    for label, by_seed in results.items():
        for seed, run_rows in by_seed.items():
            (exp / label / f'seed_{seed}').mkdir(parents=True)
            (exp / label / f'seed_{seed}' / 'summary.json').write_text(json.dumps(run_rows))
    (exp / 'experiment_meta.json').write_text(json.dumps(dict(
        strategies={label: label for label in results}, seeds=seeds)))
    return exp


def test_step_differences_at_equal_cost_by_hand(tmp_path, capsys):
    """a - b at the same step, seed by seed (a seconds budget: equal cost per step), and
    tools/compare_steps.py on an experiment directory, with its errors."""
    from mmdet_isal.active.report import format_step_differences, step_differences

    def run(strategy, seed, aps):
        return [dict(r, annotation_hours=1.0 + r['step']) for r in rows(strategy, seed, [
            (10 * (k + 1), ap) for k, ap in enumerate(aps)])]
    results = {'random': {1: run('random', 1, [0.1, 0.2, 0.3]),
                          2: run('random', 2, [0.1, 0.25, 0.3])},
               'isal': {1: run('isal', 1, [0.1, 0.24, 0.28]),
                        2: run('isal', 2, [0.1, 0.27]),  # one step fewer
                        3: run('isal', 3, [0.1, 0.9, 0.9])}}  # no random run of seed 3
    got = step_differences(results, [('isal', 'random')])
    assert [(r['step'], r['seeds']) for r in got] == [(0, 2), (1, 2), (2, 1)]
    assert got[1]['difference_mean'] == pytest.approx(0.03)  # 0.04 and 0.02
    assert got[1]['difference_std'] == pytest.approx(np.std([0.04, 0.02], ddof=1))
    assert got[1]['above'] == 2 and got[1]['a_hours_mean'] == got[1]['b_hours_mean'] == 2.0
    assert got[2]['difference_mean'] == pytest.approx(-0.02) and got[2]['above'] == 0
    assert got[2]['difference_std'] is None  # one seed
    line = next(x for x in format_step_differences(got).splitlines()
                if x.split()[:4] == ['isal', '-', 'random', '1'])
    assert line.split()[4:11] == ['2.00', '2.00', '0.2550', '0.2250', '+0.0300', '±', '0.0141']
    assert line.split()[11] == '2/2'
    with pytest.raises(KeyError, match="no runs of 'coreset'"):
        step_differences(results, [('coreset', 'random')])
    # the tool reads an experiment directory: its meta file and each run's summary.json
    exp = write_experiment(tmp_path / 'exp', results, seeds=[1, 2, 3])
    tool = runpy.run_path(os.path.join(REPO, 'tools', 'compare_steps.py'))
    tool['main']([str(exp), '--out', str(tmp_path / 't.txt')])  # default: against random
    printed = capsys.readouterr().out
    assert 'isal - random' in printed and (tmp_path / 't.txt').read_text() == printed
    for argv, message in (([str(tmp_path)], 'is not an experiment directory'),
                          ([str(exp), 'isal'], "write it as A:B"),
                          ([str(exp), 'isal:coreset'], "no runs of 'coreset'")):
        with pytest.raises(SystemExit, match=message):
            tool['main'](argv)


def test_step_differences_of_another_metric(tmp_path, capsys):
    """metric=: a column of the rows or a key of their evaluator's metrics, by hand; a metric
    a row lacks is named with what it has."""
    from mmdet_isal.active.report import format_step_differences, step_differences

    def run(strategy, seed, values):
        return [dict(r, metrics={'classification/prior_corrected_accuracy': v, 'note': 'x'})
                for r, v in zip(rows(strategy, seed, [(10, 0.1), (20, 0.2)]), values)]
    results = {'random': {1: run('random', 1, [0.5, 0.6]), 2: run('random', 2, [0.5, 0.7])},
               'isal': {1: run('isal', 1, [0.5, 0.65]), 2: run('isal', 2, [0.5, 0.68])}}
    key = 'classification/prior_corrected_accuracy'
    got = step_differences(results, [('isal', 'random')], metric=key)
    assert got[1]['metric'] == key and got[1]['above'] == 1
    assert got[1]['difference_mean'] == pytest.approx((0.05 - 0.02) / 2)
    assert got[1][f'a_{key}_mean'] == pytest.approx(0.665)
    text = format_step_differences(got)
    assert text.startswith('Prior_corrected_accuracy of a minus prior_corrected_accuracy of b')
    assert step_differences(results, [('isal', 'random')], metric='bbox_mAP')[1][
        'difference_mean'] == pytest.approx(0.0)
    with pytest.raises(KeyError, match=r"no metric 'accuracy'; its evaluator gave \['classif"):
        step_differences(results, [('isal', 'random')], metric='accuracy')
    exp = write_experiment(tmp_path / 'exp', results, seeds=[1, 2])
    tool = runpy.run_path(os.path.join(REPO, 'tools', 'compare_steps.py'))
    tool['main']([str(exp), '--metric', key])
    assert '+0.0150' in capsys.readouterr().out
    tool['main']([str(exp), '--metric', key, '--seeds', '2'])  # seed 2 only: 0.68 - 0.7
    assert '-0.0200' in capsys.readouterr().out
    with pytest.raises(SystemExit, match=r'no run of seeds \[7\]'):
        tool['main']([str(exp), '--seeds', '7'])
    with pytest.raises(SystemExit, match="no metric 'nope'"):
        tool['main']([str(exp), '--metric', 'nope'])
