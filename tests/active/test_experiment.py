"""The experiment: strategy specs, aggregation over seeds, savings against random, the
experiment's files, and the runner (strategies x seeds end to end with resume)."""
import csv
import json
import os
import os.path as osp
import re
import runpy

import pytest

from mmdet_isal.active import PoolLedger
from mmdet_isal.active.experiment import Experiment, experiment_config, plan_runs
from mmdet_isal.active.report import (EXPERIMENT_COLUMNS, aggregate, aggregate_class_mix,
                                      aggregate_selections, ap_at_images, boxes_needed,
                                      compare_with_baseline, format_report, write_experiment)
from mmdet_isal.active.report.aggregate import total_variation
from mmdet_isal.active.strategy_specs import parse_strategy_spec, parse_strategy_specs
from tests.active.conftest import PLOT_SIZE, png_size

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LOOP_SCRIPT = osp.join(REPO, 'tools', 'al_loop.py')
TINY_SCORER = dict(hessian_images=4, repeats=1, depth=2, power_iters=2, batch_size=4)
SEEDS = (0, 1)  # of the end-to-end run


def rows(seed, points, strategy='x'):
    """Summary rows of one run: step k has 10 (k + 1) images and the given (boxes, AP)."""
    return [dict(step=k, strategy=strategy, seed=seed, num_images=10 * (k + 1), num_boxes=b,
                 bbox_mAP=ap, bbox_mAP_50=2 * ap) for k, (b, ap) in enumerate(points)]


RESULTS = {
    'random': {1: rows(1, [(100, 0.10), (200, 0.20), (300, 0.30)]),
               2: rows(2, [(100, 0.12), (210, 0.22), (320, 0.32)])},
    'isal': {1: rows(1, [(100, 0.10), (150, 0.25), (200, 0.35)]),
             2: rows(2, [(100, 0.12), (160, 0.18), (230, 0.30)])},
}


# --- pure functions -----------------------------------------------------------------------------
def test_aggregate_mean_and_sample_std_over_seeds():
    agg = {(r['strategy'], r['step']): r for r in aggregate(RESULTS)}
    assert len(agg) == 6
    r = agg['random', 1]
    assert r['seeds'] == 2 and r['images_mean'] == 20 and r['images_std'] == 0
    assert r['boxes_mean'] == pytest.approx(205) and r['boxes_std'] == pytest.approx(50 ** 0.5)
    assert r['bbox_mAP_mean'] == pytest.approx(0.21)
    assert r['bbox_mAP_std'] == pytest.approx(0.02 / 2 ** 0.5)  # ddof=1
    assert r['bbox_mAP_50_mean'] == pytest.approx(0.42)
    one = aggregate({'isal': {1: RESULTS['isal'][1]}})[1]
    assert one['seeds'] == 1 and one['bbox_mAP_std'] is None  # no std from one seed
    # a seed that stopped early counts only where it has the step
    short = aggregate({'isal': {1: RESULTS['isal'][1], 2: RESULTS['isal'][2][:2]}})
    assert [r['seeds'] for r in short] == [2, 2, 1]


def test_selection_diagnostics_averaged_over_the_seeds_that_have_them():
    one = rows(1, [(100, 0.1), (200, 0.2)])
    two = rows(2, [(100, 0.1), (200, 0.2)])
    one[0].update(picked_true_boxes=2.0, picked_pseudo_boxes=4.0, spearman_score_pseudo_boxes=0.5)
    two[0].update(picked_true_boxes=3.0, picked_pseudo_boxes=None,
                  spearman_score_pseudo_boxes=-0.1)
    out = aggregate_selections({'isal': {1: one, 2: two}})
    assert len(out) == 1 and out[0]['step'] == 0 and out[0]['seeds'] == 2  # last step: no pick
    assert out[0]['picked_true_boxes'] == pytest.approx(2.5)
    assert out[0]['picked_pseudo_boxes'] == 4.0  # the seed that has it
    assert out[0]['spearman_score_pseudo_boxes'] == pytest.approx(0.2)
    assert out[0]['pool_no_pseudo_box'] is None
    text = format_report(dict(rows=aggregate({'isal': {1: one, 2: two}}), selections=out,
                              comparisons=None))
    assert 'What each selection picked' in text and '2.50' in text and '+0.20' in text


def test_a_classification_report_shows_how_often_pseudo_labels_are_right():
    def cls_rows(seed, accuracy, picked):
        return [dict(step=k, strategy='isal', seed=seed, num_images=10 * (k + 1),
                     num_boxes=10 * (k + 1), accuracy=a, mean_class_accuracy=a,
                     picked_true_boxes=1.0 if k == 0 else None,
                     picked_pseudo_label_accuracy=picked if k == 0 else None,
                     pool_pseudo_label_accuracy=0.8 if k == 0 else None)
                for k, a in enumerate(accuracy)]

    results = {'isal': {1: cls_rows(1, [0.5, 0.6], 0.4), 2: cls_rows(2, [0.5, 0.7], 0.5)}}
    text = format_report(dict(rows=aggregate(results), selections=aggregate_selections(results),
                              comparisons=None))
    assert 'How often the pseudo-labels' in text and 'What each selection picked' not in text
    assert re.search(r'isal +0 +45\.0% +80\.0%', text)


def test_class_mix_of_the_picks_against_their_pool_by_hand():
    one = rows(1, [(100, 0.1), (200, 0.2)])
    two = rows(2, [(100, 0.1), (200, 0.2)])
    # seed 1 picks a: 3, b: 1 from a pool a: 1, b: 1 -> shares (3/4, 1/4) vs (1/2, 1/2), TV 1/4;
    # seed 2 picks only c from a pool a: 2, c: 2 -> (0, 0, 1) vs (1/2, 0, 1/2), TV 1/2
    one[0].update(picked_class_histogram={'a': 3, 'b': 1}, pool_class_histogram={'a': 5, 'b': 5})
    two[0].update(picked_class_histogram={'c': 2}, pool_class_histogram={'a': 4, 'c': 4})
    two[1].update(picked_class_histogram={'c': 2})  # no pool histogram (an older run): left out
    out = aggregate_class_mix({'isal': {1: one, 2: two}})
    assert len(out) == 1 and out[0]['step'] == 0 and out[0]['seeds'] == 2
    assert out[0]['classes'] == ['a', 'b', 'c']
    assert out[0]['picked_share'] == pytest.approx(dict(a=0.375, b=0.125, c=0.5))
    assert out[0]['pool_share'] == pytest.approx(dict(a=0.5, b=0.25, c=0.25))
    assert out[0]['tv_mean'] == pytest.approx(0.375)
    assert out[0]['tv_std'] == pytest.approx(0.25 / 2 ** 0.5)  # ddof=1
    assert total_variation(dict(a=0.5, b=0.5), dict(a=0.5, b=0.5)) == 0
    assert total_variation(dict(a=1.0), dict(b=1.0)) == 1
    text = format_report(dict(rows=aggregate({'isal': {1: one, 2: two}}), selections=[],
                              class_mix=out, comparisons=None))
    assert 'Class mix of each selection' in text
    assert re.search(r'isal +0 +0\.375 ± 0\.177 +38/50 +12/25 +50/25', text)


def test_boxes_needed_interpolates_along_the_own_curve():
    isal1 = RESULTS['isal'][1]
    assert boxes_needed(isal1, 0.10) == pytest.approx(100)  # at its first point
    assert boxes_needed(isal1, 0.20) == pytest.approx(100 + 50 * 0.10 / 0.15)
    assert boxes_needed(isal1, 0.35) == pytest.approx(200)
    assert boxes_needed(isal1, 0.05) is None  # below its first point: not measurable
    assert boxes_needed(isal1, 0.36) is None  # never reached
    # not monotone: the first crossing counts
    bumpy = rows(0, [(100, 0.1), (200, 0.3), (300, 0.2), (400, 0.4)])
    assert boxes_needed(bumpy, 0.25) == pytest.approx(175)


def test_ap_at_images():
    isal1 = RESULTS['isal'][1]  # images 10, 20, 30
    assert ap_at_images(isal1, 10) == pytest.approx(0.10)
    assert ap_at_images(isal1, 25) == pytest.approx(0.30)
    assert ap_at_images(isal1, 30) == pytest.approx(0.35)
    assert ap_at_images(isal1, 5) is None and ap_at_images(isal1, 31) is None


def test_savings_and_matched_images_by_hand():
    comp = compare_with_baseline(RESULTS)
    per_seed = {(r['seed'], r['step']): r for r in comp['per_seed']}
    assert len(per_seed) == 6 and {r['strategy'] for r in comp['per_seed']} == {'isal'}
    # seed 1, step 1: random 0.20 AP at 200 boxes; isal reaches 0.20 at 100 + 50 * 2/3
    assert per_seed[1, 1]['boxes_needed'] == pytest.approx(400 / 3)
    assert per_seed[1, 1]['saving'] == pytest.approx(1 - (400 / 3) / 200)
    assert per_seed[1, 2]['saving'] == pytest.approx(1 - 175 / 300)
    # seed 2, step 1: 0.22 between (160, 0.18) and (230, 0.30): 160 + 70 / 3
    assert per_seed[2, 1]['boxes_needed'] == pytest.approx(160 + 70 / 3)
    assert per_seed[2, 1]['saving'] == pytest.approx(1 - (160 + 70 / 3) / 210)
    assert per_seed[2, 2]['boxes_needed'] is None and per_seed[2, 2]['saving'] is None
    assert per_seed[1, 0]['saving'] == 0 and per_seed[2, 0]['saving'] == 0

    savings = {r['step']: r for r in comp['savings']}
    s1 = [1 - (400 / 3) / 200, 1 - (160 + 70 / 3) / 210]
    assert savings[1]['saving_mean'] == pytest.approx(sum(s1) / 2)
    assert savings[1]['saving_std'] == pytest.approx(abs(s1[0] - s1[1]) / 2 ** 0.5)
    assert (savings[1]['holds'], savings[1]['defined'], savings[1]['seeds']) == (2, 2, 2)
    assert savings[1]['random_boxes_mean'] == pytest.approx(205)
    assert savings[1]['boxes_needed_mean'] == pytest.approx((400 / 3 + 160 + 70 / 3) / 2)
    assert (savings[2]['holds'], savings[2]['defined'], savings[2]['seeds']) == (1, 1, 2)
    assert savings[2]['saving_mean'] == pytest.approx(1 - 175 / 300)
    assert savings[2]['saving_std'] is None
    assert savings[0]['holds'] == 0 and savings[0]['saving_mean'] == 0  # equal is not a saving

    # equal images at every step here: the difference is isal's AP minus random's
    matched = {r['step']: r for r in comp['matched_images']}
    assert per_seed[1, 1]['ap_difference'] == pytest.approx(0.05)
    assert per_seed[2, 1]['ap_difference'] == pytest.approx(-0.04)
    assert matched[1]['ap_difference_mean'] == pytest.approx(0.005)
    assert matched[1]['ap_difference_std'] == pytest.approx(0.09 / 2 ** 0.5)
    assert (matched[1]['holds'], matched[1]['defined']) == (1, 2)
    assert matched[2]['ap_difference_mean'] == pytest.approx((0.05 - 0.02) / 2)
    assert matched[1]['images_mean'] == 20


def test_write_experiment_files(tmp_path):
    data = write_experiment(str(tmp_path), RESULTS, header=dict(seeds=[1, 2]))
    with open(tmp_path / 'experiment.csv') as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == EXPERIMENT_COLUMNS
    assert [(r['strategy'], r['step'], r['seeds']) for r in table][:2] == [
        ('random', '0', '2'), ('random', '1', '2')]
    assert float(table[1]['boxes_mean']) == pytest.approx(205)
    with open(tmp_path / 'experiment.json') as f:
        stored = json.load(f)
    assert stored == json.loads(json.dumps(data))
    assert stored['seeds'] == [1, 2] and stored['baseline'] == 'random'
    assert set(stored['comparisons']) == {'definitions', 'per_seed', 'savings',
                                          'matched_images', 'sensitivity'}
    assert png_size(tmp_path / 'experiment.png') == PLOT_SIZE
    text = format_report(data)
    assert (tmp_path / 'report.txt').read_text() == text + '\n'
    assert 'bbox mAP per strategy and step' in text and "Saving at random's AP" in text
    # isal's step-1 saving in boxes: the median of two seeds (their mean), both reach it
    assert re.search(r'^isal +1 +0.2100 +n/a +n/a +\+23.0 % +.* 2/2 reach$', text, re.M)
    assert re.search(r'^isal +1 +n/a +\+23.0 ± 14.6 % .* 2/2 reach$', text, re.M)
    # step 2: seed 2 never reaches random's AP: the median falls on it, and the mean over the
    # seed that reaches it is printed with the count
    assert re.search(r'^isal +2 +0.3100 +n/a +not reached +not reached +not reached  '
                     r'1/2 reach, 1 not reached$', text, re.M)
    assert re.search(r'^isal +2 +n/a +\+41.7 % .* 1/2 reach, 1 not reached$', text, re.M)
    assert 'Sensitivity' in text and 'undefined' not in text

    # without random: the table, no savings, and a note saying so
    data = write_experiment(str(tmp_path), {'isal': RESULTS['isal']})
    assert data['comparisons'] is None and 'random' in data['note']
    assert data['note'] in format_report(data)


# --- strategy specs -----------------------------------------------------------------------------
def test_parse_strategy_spec():
    spec = parse_strategy_spec('isal')
    assert (spec.label, spec.strategy) == ('isal', 'isal')
    spec = parse_strategy_spec('isal_per_image=isal(scorer.loss_normalizer=per_image)')
    assert spec.label == 'isal_per_image'
    assert spec.strategy == dict(type='isal', scorer=dict(loss_normalizer='per_image'))
    spec = parse_strategy_spec(" cheap = isal(scorer.hessian_images=4, scorer.params=['a.b', "
                               "'c'], scorer.score_thr=0.2, scorer.depth=None, x='1,2') ")
    assert spec.label == 'cheap' and spec.strategy == dict(
        type='isal', x='1,2', scorer=dict(hessian_images=4, params=['a.b', 'c'], score_thr=0.2,
                                          depth=None))
    assert parse_strategy_spec('rnd=random').strategy == 'random'
    assert parse_strategy_spec('r=random()').strategy == dict(type='random')


@pytest.mark.parametrize('entry, why', [
    ('isal(scorer.depth=2)', 'needs a label'),
    ('x=isal(scorer)', 'is not key=value'),
    ('x=isal(scorer.depth=)', 'is not key=value'),
    ('x=isal(scorer.a=1, scorer.a=2)', 'given twice'),
    ('x=isal(scorer=1, scorer.a=2)', 'set to a value'),
    ('x=isal(type=random)', 'other than type'),
    ('x=isal(a=[1, 2)', 'unbalanced'),
    ('two words=isal', 'not understood'),
    ('=isal', 'not understood'),
    ('', 'not understood'),
])
def test_bad_strategy_specs(entry, why):
    with pytest.raises(ValueError, match=why) as info:
        parse_strategy_spec(entry)
    assert repr(entry) in str(info.value) and 'LABEL=TYPE(key=value, ...)' in str(info.value)


def test_parse_strategy_specs_checks_labels_and_registry():
    specs = parse_strategy_specs(['isal', 'random', 'x=isal(scorer.depth=3)'])
    assert [s.label for s in specs] == ['isal', 'random', 'x']
    with pytest.raises(ValueError, match="both have the label 'random'"):
        parse_strategy_specs(['random', 'random=isal'])
    with pytest.raises(ValueError, match="'nope'.*no strategy 'nope' is registered.*random"):
        parse_strategy_specs(['nope'])
    with pytest.raises(ValueError, match="'r=random\\(foo=1\\)': random cannot be built"):
        parse_strategy_specs(['r=random(foo=1)'])
    with pytest.raises(ValueError, match='at least one'):
        parse_strategy_specs([])


def test_plan_runs_seed_by_seed(tmp_path):
    runs = plan_runs(parse_strategy_specs(['isal', 'random']), [1, 2], str(tmp_path))
    assert [(r.label, r.seed) for r in runs] == [('isal', 1), ('random', 1), ('isal', 2),
                                                 ('random', 2)]
    assert runs[1].work_dir == osp.join(str(tmp_path), 'random', 'seed_1')
    assert runs[1].log_file == osp.join(runs[1].work_dir, 'console.log')


# --- settings kept across reruns ----------------------------------------------------------------
@pytest.mark.slow  # a subprocess importing mmdet, or a Runner: seconds each
def test_meta_refuses_mixed_protocols(al_cfg, pool_coco, tmp_path):
    cfg = al_cfg(pool_coco, tmp_path / 'unused')
    exp_dir = str(tmp_path / 'exp')
    Experiment(cfg, ['random', 'r2=random'], [1], exp_dir).prepare()
    with open(osp.join(exp_dir, 'experiment_meta.json')) as f:
        meta = json.load(f)
    assert meta['strategies'] == {'random': 'random', 'r2': 'random'} and meta['seeds'] == [1]
    run_cfg = open(osp.join(exp_dir, 'r2', 'seed_1', 'config.py')).read()
    assert "seed=1" in run_cfg and "strategy='random'" in run_cfg

    # more seeds, another strategy, more steps: the same protocol, accepted and recorded
    more = al_cfg(pool_coco, tmp_path / 'unused', steps=3)
    tuples = "x=isal(scorer.params=('a', 'b'))"  # stored as a JSON list, still the same
    Experiment(more, ['random', tuples], [2, 1], exp_dir).prepare()
    Experiment(more, [tuples], [2], exp_dir).prepare()
    with open(osp.join(exp_dir, 'experiment_meta.json')) as f:
        meta = json.load(f)
    assert set(meta['strategies']) == {'random', 'r2', 'x'} and meta['seeds'] == [1, 2]

    other = al_cfg(pool_coco, tmp_path / 'unused')
    other.merge_from_dict({'train_cfg.max_epochs': 5})
    with pytest.raises(ValueError, match='another protocol.*train_cfg.max_epochs: 2 -> 5'):
        Experiment(other, ['random'], [1], exp_dir).prepare()
    with pytest.raises(ValueError, match="another protocol.*active_learning.budget"):
        Experiment(al_cfg(pool_coco, tmp_path, budget=dict(images=4)), ['random'], [1],
                   exp_dir).prepare()
    with pytest.raises(ValueError, match="label 'r2' is .*'isal'.* but was 'random'"):
        Experiment(cfg, ['r2=isal'], [1], exp_dir).prepare()
    with pytest.raises(ValueError, match='--seeds must be distinct'):
        Experiment(cfg, ['random'], [1, 1], exp_dir)

    cfg.dump(str(tmp_path / 'cfg.py'))
    with pytest.raises(ValueError, match='active_learning.seed: the experiment sets'):
        experiment_config(str(tmp_path / 'cfg.py'), {'active_learning.seed': 3})
    assert experiment_config(str(tmp_path / 'cfg.py'),
                             {'train_cfg.max_epochs': 1}).train_cfg.max_epochs == 1


#: Stands for tools/al_loop.py in the runner's tests: prints a line, and fails like the tool
#: (one message, exit code 1) for the runs of the label 'bad' and for the shared step 0 of seed
#: 3.
FAKE_LOOP = """import sys
work_dir = sys.argv[sys.argv.index('--work-dir') + 1]
print('step 1/2 (step_0): 8 labeled images', flush=True)
if work_dir.split('/')[-2] == 'bad':
    sys.exit('al_loop.py: error: 2 more selection(s) of active_learning.budget do not fit')
if work_dir.endswith('_step0/seed_3'):
    sys.exit('al_loop.py: error: the step-0 training broke')
"""


@pytest.mark.slow  # a subprocess importing mmdet, or a Runner: seconds each
def test_every_run_runs_and_a_failed_one_is_reported_with_its_log(al_cfg, pool_coco, tmp_path):
    """Each run is the loop script on the run's config with --resume, its output in its
    console.log; a run that fails is named with its exit code, its last log line and its log,
    and the others still run. The shared step 0 of each seed runs first, once, and every run of
    the seed gets --shared-step0 to it; when it fails, the runs of its seed fail with it and
    the others go on."""
    script = tmp_path / 'fake_loop.py'
    script.write_text(FAKE_LOOP)
    cfg = al_cfg(pool_coco, tmp_path / 'unused')
    exp_dir = str(tmp_path / 'exp')
    experiment = Experiment(cfg, ['random', 'bad=random'], [1, 2, 3], exp_dir)
    experiment.prepare()
    step0_cfg = open(osp.join(exp_dir, '_step0', 'seed_2', 'config.py')).read()
    assert 'steps=1' in step0_cfg and 'seed=2' in step0_cfg
    lines = []
    outcomes = experiment.run(str(script), jobs=2, echo=lines.append)
    assert [(o.run.label, o.run.seed, o.status, o.returncode) for o in outcomes] == [
        ('random', 1, 'finished', 0), ('bad', 1, 'failed', 1), ('random', 2, 'finished', 0),
        ('bad', 2, 'failed', 1), ('random', 3, 'failed', None), ('bad', 3, 'failed', None)]
    failed = outcomes[1]
    assert failed.message == ('al_loop.py: error: 2 more selection(s) of '
                              'active_learning.budget do not fit')
    # three step-0 runs (first, before any strategy run), then the four runs of seeds 1 and 2
    started = [line for line in lines if 'started, log' in line]
    assert len(started) == 3 + 4
    assert [line.split(']')[0] for line in started[:3]] == [
        '[step 0 of seed 1', '[step 0 of seed 2', '[step 0 of seed 3']
    assert any(line.startswith('[2/6] bad seed 1: FAILED (exit code 1)') and
               failed.run.log_file in line for line in lines)
    assert any(line.startswith('[step 0 of seed 3] _step0 seed 3: FAILED (exit code 1)')
               for line in lines)
    assert outcomes[4].message.startswith('the shared step 0 of seed 3 failed (log ')
    log = open(failed.run.log_file).read().splitlines()
    assert log[1].endswith(f'{script} {failed.run.config_file} --work-dir {failed.run.work_dir} '
                           f'--resume --shared-step0 {exp_dir}/_step0/seed_1')
    assert log[2] == 'step 1/2 (step_0): 8 labeled images'
    with pytest.raises(ValueError, match='--jobs must be an integer >= 1'):
        experiment.run(str(script), jobs=0)
    with pytest.raises(ValueError, match="label '_step0' is reserved"):
        Experiment(cfg, ['_step0=random'], [1], exp_dir)


# --- end to end ---------------------------------------------------------------------------------
def ledgers(exp_dir):
    """{(label, seed): ledger} of every run in ``exp_dir``."""
    out = {}
    for label in ('isal', 'random'):
        for seed in SEEDS:
            path = osp.join(exp_dir, label, f'seed_{seed}', 'ledger.json')
            out[label, seed] = PoolLedger.load(path)
    return out


def checkpoints(exp_dir):
    """{path: mtime} of every checkpoint under ``exp_dir``."""
    return {osp.join(d, f): os.stat(osp.join(d, f)).st_mtime_ns
            for d, _, files in os.walk(exp_dir) for f in files if f.endswith('.pth')}


@pytest.mark.slow
def test_experiment_end_to_end_and_resume(al_cfg, pool_coco, tmp_path, capsys):
    """isal and random x seeds 0, 1 x 2 steps of 2 epochs, two runs at a time, step 0 trained
    once per seed and shared; then one run is made unfinished (its last evaluation undone) and
    the same command through the tool evaluates it again, trains nothing and skips the finished
    runs.

    (2 epochs: after 1 epoch the tiny FCOS may detect nothing on the val set, and mmdet's
    CocoMetric then returns no metrics at all, which the loop refuses.)"""
    cfg = al_cfg(pool_coco, tmp_path / 'unused', scorer=TINY_SCORER)
    exp_dir = str(tmp_path / 'exp')
    experiment = Experiment(cfg, ['isal', 'random'], SEEDS, exp_dir)
    experiment.prepare()
    lines = []
    outcomes = experiment.run(LOOP_SCRIPT, jobs=2, echo=lines.append)
    assert [o.status for o in outcomes] == ['finished'] * 4, lines
    assert sum('started' in line for line in lines) == 2 + 4  # the shared step 0s, the runs
    experiment.report()

    runs = ledgers(exp_dir)
    for (label, seed), ledger in runs.items():
        assert ledger.seed == seed and ledger.strategy == label
        assert all(ledger.steps[s]['finished'] for s in (0, 1))
        assert osp.isfile(osp.join(exp_dir, label, f'seed_{seed}', 'console.log'))
        # step 0 is the shared one: its checkpoint and evaluation, never trained here
        shared = PoolLedger.load(osp.join(exp_dir, '_step0', f'seed_{seed}', 'ledger.json'))
        assert ledger.steps[0]['checkpoint'] == osp.join(
            '..', '..', '_step0', f'seed_{seed}', shared.steps[0]['checkpoint'])
        assert ledger.steps[0]['step0_from'] == osp.join('..', '..', '_step0', f'seed_{seed}')
        assert ledger.steps[0]['metrics'] == shared.steps[0]['metrics']
        assert ledger.labeled_ids(0) == shared.labeled_ids(0)
        assert not [f for _, _, files in os.walk(osp.join(exp_dir, label, f'seed_{seed}',
                                                          'step_0')) for f in files
                    if f.endswith('.pth')]
    # one protocol: the same seed starts from the same images, another seed from others
    assert runs['isal', 0].labeled_ids(0) == runs['random', 0].labeled_ids(0)
    assert runs['isal', 0].labeled_ids(0) != runs['isal', 1].labeled_ids(0)
    assert runs['isal', 0].steps[0]['num_scored'] + runs['isal', 0].steps[0][
        'num_unscored'] == 32

    with open(osp.join(exp_dir, 'experiment.csv')) as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0]) == EXPERIMENT_COLUMNS
    assert [(r['strategy'], r['step'], r['seeds']) for r in table] == [
        ('isal', '0', '2'), ('isal', '1', '2'), ('random', '0', '2'), ('random', '1', '2')]
    assert [float(r['images_mean']) for r in table] == [8, 14, 8, 14]
    with open(osp.join(exp_dir, 'experiment.json')) as f:
        data = json.load(f)
    assert data['baseline'] == 'random' and len(data['comparisons']['per_seed']) == 4
    assert [r['finished'] for r in data['runs']] == [True] * 4
    assert png_size(osp.join(exp_dir, 'experiment.png')) == PLOT_SIZE

    # undo the last evaluation of random seed 1: that run is unfinished now
    path = osp.join(exp_dir, 'random', 'seed_1', 'ledger.json')
    with open(path) as f:
        state = json.load(f)
    step1 = state['steps'][1]
    del step1['stages']['evaluate']
    step1.update(finished=False, metrics=None)
    with open(path, 'w') as f:
        json.dump(state, f)
    before_ckpts = checkpoints(exp_dir)
    before_ledgers = {k: os.stat(osp.join(exp_dir, k[0], f'seed_{k[1]}', 'ledger.json'))
                      .st_mtime_ns for k in runs}
    capsys.readouterr()
    cfg.dump(str(tmp_path / 'cfg.py'))
    tool = runpy.run_path(osp.join(REPO, 'tools', 'al_experiment.py'), run_name='tool')
    tool['main']([str(tmp_path / 'cfg.py'), '--strategies', 'isal', 'random', '--seeds', '0',
                  '1', '--work-dir', exp_dir])
    printed = capsys.readouterr().out
    assert printed.count('finished before, skipped') == 3
    assert 'random seed 1: resuming' in printed and 'random seed 1: finished in' in printed
    assert "Saving at random's AP" in printed and 'AP at random' in printed

    assert checkpoints(exp_dir) == before_ckpts  # nothing was trained again
    resumed = ledgers(exp_dir)
    for key, ledger in resumed.items():
        for step in (0, 1):
            assert ledger.steps[step]['stages']['train'] == runs[key].steps[step]['stages'][
                'train']
        changed = os.stat(osp.join(exp_dir, key[0], f'seed_{key[1]}', 'ledger.json')
                          ).st_mtime_ns != before_ledgers[key]
        assert changed == (key == ('random', 1)), key
    again = resumed['random', 1].steps[1]
    assert again['finished'] and again['metrics'] is not None
    assert again['bbox_mAP'] == pytest.approx(runs['random', 1].steps[1]['bbox_mAP'])
