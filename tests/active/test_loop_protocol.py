"""The loop's protocol with a fake trainer (no detector, no Runner): stage order, what the ledger
and the summaries hold, resume after a kill in any stage, budgets, the stop at target_ap, the
finished-run rule, finetuning, and what the ledger refuses."""
import csv
import json
import os.path as osp

import pytest

import mmdet_isal.active.loop as loop_module
from mmdet_isal.active import STAGES, PoolLedger
from mmdet_isal.active.experiment import run_finished
from mmdet_isal.active.report import SUMMARY_COLUMNS
from mmdet_isal.strategies.base import Ranking
from tests.active.fake_trainer import FakeTrainer, Killed, fake_ap, fake_ap50

#: Every trainer call of an uninterrupted 3-step run, in order.
CALLS = [('train', 0), ('evaluate', 0), ('model_of', 0), ('train', 1), ('evaluate', 1),
         ('model_of', 1), ('train', 2), ('evaluate', 2)]


def fake_order(ids, seen):
    """The fake strategy's ranking of ``ids`` by a model trained on ``seen`` images."""
    return sorted(ids, key=lambda i: (-((i * (1 + seen)) % 97), i))


def selections(ledger):
    """What must not change between runs: labels, scores and ranks of every image."""
    return {i: (r['labeled_step'], r['scores'], r['ranks']) for i, r in ledger.images.items()}


@pytest.mark.slow
def test_stages_run_in_order_and_the_ledger_holds_what_they_returned(fake_loop):
    loop = fake_loop()
    ledger = loop.run()
    trainer = loop.trainer
    assert trainer.calls == CALLS
    assert trainer.loaded == []  # the model just trained is the one scored, never read back
    assert trainer.releases == 1
    for step in range(3):
        rec, ids = ledger.steps[step], ledger.labeled_ids(step)
        boxes = ledger.num_boxes(ids)
        assert rec['finished'] and rec['checkpoint'] == f'step_{step}/fake.ckpt'
        assert set(rec['stages']) == set(STAGES if step < 2 else ('train', 'evaluate'))
        assert (rec['bbox_mAP'], rec['bbox_mAP_50']) == (fake_ap(boxes), fake_ap50(boxes))
        assert rec['metrics'] == {'fake/bbox_mAP': fake_ap(boxes), 'fake/note': 'x'}
        with open(osp.join(loop.work_dir, rec['checkpoint'])) as f:
            assert json.load(f)['ids'] == ids  # trained on the step's subset, in pool order
        assert trainer.jobs[step].labeled_ann_file == osp.join(loop.work_dir, f'step_{step}',
                                                               'labeled.json')
    assert [len(ledger.labeled_ids(s)) for s in range(3)] == [8, 14, 20]
    for step in (0, 1):
        seen = len(ledger.labeled_ids(step))  # the strategy was given this step's model
        order = fake_order(ledger.unlabeled_ids(step), seen)
        assert ledger.ranking(step) == order
        assert set(ledger.selected_at(step + 1)) == set(order[:6])
        rec = ledger.steps[step]
        assert rec['strategy_info'] == dict(model_images=seen, trace=[1.0, 2.0])
        assert (rec['num_scored'], rec['num_unscored']) == (len(order), 0)
        assert (rec['num_selected'], rec['num_selected_boxes']) == (
            6, ledger.num_boxes(order[:6]))
        assert all(ledger.images[i]['details'][step] == dict(num_pseudo_boxes=i % 3)
                   for i in order)
    assert PoolLedger.load(loop.ledger_path).state_dict() == ledger.state_dict()

    with open(osp.join(loop.work_dir, 'summary.json')) as f:
        rows = json.load(f)
    assert [r['num_images'] for r in rows] == [8, 14, 20]
    for r in rows:
        assert r['bbox_mAP'] == fake_ap(r['num_boxes'])
        assert r['ap_per_10k_boxes'] == 10000.0 * r['bbox_mAP'] / r['num_boxes']
    assert rows[2]['score_seconds'] is None and rows[0]['picked_true_boxes'] is not None
    with open(osp.join(loop.work_dir, 'summary.csv')) as f:
        assert tuple(next(csv.reader(f))) == SUMMARY_COLUMNS
    assert osp.getsize(osp.join(loop.work_dir, 'ap_vs_boxes.png')) > 1000
    with open(osp.join(loop.work_dir, 'al_loop.log')) as f:
        log = f.read()
    assert 'bbox mAP per strategy and step' in log and 'step_2: evaluate finished' in log


# (trainer call, step) at which a 2-step run is killed; ('select', 0): in step 0's select
# stage, after it labeled the images in memory but before the ledger was saved
KILLS = [('train', 0), ('evaluate', 0), ('model_of', 0), ('select', 0), ('train', 1),
         ('evaluate', 1)]


@pytest.mark.slow
@pytest.mark.parametrize('kill', KILLS)
def test_a_run_killed_in_any_stage_resumes_where_it_was(kill, fake_loop, fake_reference,
                                                       monkeypatch):
    reference, calls = fake_reference[2], CALLS[:5]
    if kill == ('select', 0):
        def killed(*args, **kwargs):
            raise Killed('select')
        monkeypatch.setattr(loop_module, 'selection_diagnostics', killed)
        redone = calls.index(('train', 1))
    else:
        redone = calls.index(kill)
    loop = fake_loop(trainer=FakeTrainer(kill=kill), steps=2)
    with pytest.raises(Killed):
        loop.run()
    assert loop.trainer.releases == 1
    monkeypatch.undo()
    on_disk = PoolLedger.load(loop.ledger_path)
    step = kill[1]
    assert not on_disk.steps.get(step, {}).get('finished')
    if kill == ('select', 0):
        assert on_disk.stage_done(0, 'score') and not on_disk.stage_done(0, 'select')
        assert on_disk.labeled_ids(1) == on_disk.labeled_ids(0)  # the labels were not saved

    resumed = fake_loop(trainer=FakeTrainer(), steps=2)
    ledger = resumed.run(resume=True)
    # nothing done before the kill is done again, everything after it is
    assert resumed.trainer.calls == calls[redone:]
    first = calls[redone]
    assert resumed.trainer.loaded == ([] if first[0] == 'train' else
                                      [osp.join(resumed.work_dir, f'step_{first[1]}',
                                                'fake.ckpt')])
    assert selections(ledger) == selections(reference)
    for s in range(2):
        for key in ('bbox_mAP', 'bbox_mAP_50', 'metrics', 'checkpoint', 'strategy_info',
                    'selection', 'finished'):
            assert ledger.steps[s].get(key) == reference.steps[s].get(key), (s, key)
        for stage, record in on_disk.steps.get(s, {}).get('stages', {}).items():
            assert ledger.steps[s]['stages'][stage] == record  # not run again


@pytest.mark.slow
def test_target_ap_stops_the_run_and_a_stopped_step_is_finished_once(fake_loop,
                                                                     fake_reference):
    reference = fake_reference[3]
    ap0, ap1 = (reference.steps[s]['bbox_mAP'] for s in (0, 1))
    target = round((ap0 + ap1) / 2, 4)
    loop = fake_loop(target_ap=target)
    ledger = loop.run()
    assert loop.trainer.calls == CALLS[:5]  # step 1 evaluated, then nothing
    assert ledger.steps[1]['stopped'] == f'bbox_mAP {ap1:.4f} >= target_ap {target}'
    assert set(ledger.steps[1]['stages']) == {'train', 'evaluate'} and 2 not in ledger.steps
    assert ledger.steps[1]['finished'] and ledger.finished(3) and ledger.next_stage(3) is None
    assert ledger.labeled_ids(2) == ledger.labeled_ids(1)  # nothing selected after the stop
    assert run_finished(loop.work_dir, 3)
    again = fake_loop(trainer=FakeTrainer())
    again.run(resume=True)
    assert again.trainer.calls == []

    # killed between the stopping step's evaluation and its end: not finished, and resuming
    # finishes it without running a stage or selecting
    state = json.load(open(loop.ledger_path))
    state['steps'][1]['finished'] = False
    json.dump(state, open(loop.ledger_path, 'w'))
    on_disk = PoolLedger.load(loop.ledger_path)
    assert not on_disk.finished(3) and on_disk.next_stage(3) == 'step_1 finish'
    assert not run_finished(loop.work_dir, 3)
    last = fake_loop(trainer=FakeTrainer())
    ledger = last.run(resume=True)
    assert last.trainer.calls == [] and ledger.steps[1]['finished'] and 2 not in ledger.steps
    assert ledger.labeled_ids(2) == ledger.labeled_ids(1) and run_finished(loop.work_dir, 3)


@pytest.mark.slow
@pytest.mark.parametrize('retrain, sources', [('scratch', None), ('finetune', (0, 1)),
                                               ('step0', (0, 0))])
def test_each_step_starts_from_the_checkpoint_its_retrain_mode_names(retrain, sources,
                                                                     fake_loop):
    loop = fake_loop(retrain=retrain)
    loop.run()
    starts = [job.init_checkpoint for job in loop.trainer.jobs]
    if sources is None:
        assert starts == [None, None, None]
    else:
        assert starts == [None] + [osp.join(loop.work_dir, f'step_{s}', 'fake.ckpt')
                                   for s in sources]


def test_a_box_budget_takes_the_shortest_prefix_of_the_ranking(fake_loop):
    ledger = fake_loop(budget=dict(boxes=30), steps=2).run()
    ranked = ledger.ranking(0)
    chosen = set(ledger.selected_at(1))
    n = len(chosen)
    assert chosen == set(ranked[:n])
    assert ledger.num_boxes(ranked[:n]) >= 30 > ledger.num_boxes(ranked[:n - 1])
    assert ledger.steps[0]['num_selected_boxes'] == ledger.num_boxes(ranked[:n])


def test_a_nan_from_the_strategy_is_refused_naming_it(fake_loop):
    loop = fake_loop(strategy=dict(type='fake_by_id', nan_info=True))
    with pytest.raises(ValueError, match=r"^step_0 score: strategy_info\['trace'\]\[1\] is nan"):
        loop.run()
    on_disk = PoolLedger.load(loop.ledger_path)
    assert on_disk.stage_done(0, 'evaluate') and not on_disk.stage_done(0, 'score')
    assert all(0 not in r['scores'] for r in on_disk.images.values())


@pytest.mark.slow
def test_selections_of_random_depend_on_the_seed_only(fake_loop):
    runs = {name: fake_loop(name, strategy='random', steps=2, **al).run()
            for name, al in (('a', {}), ('b', {}), ('c', dict(seed=1)))}
    assert selections(runs['a']) == selections(runs['b'])
    assert runs['a'].labeled_ids(0) != runs['c'].labeled_ids(0)
    assert runs['a'].selected_at(1) != runs['c'].selected_at(1)


def test_every_process_labels_the_main_process_ranking(fake_loop, monkeypatch):
    loop = fake_loop(steps=2)
    loop.prepare()
    main = list(reversed(loop.ledger.unlabeled_ids(0)))

    def broadcast(objects, src=0):  # what another process receives from the main one
        if isinstance(objects[0], Ranking):
            objects[0] = Ranking(main, {i: float(k) for k, i in enumerate(main)})
    monkeypatch.setattr(loop_module, 'broadcast_object_list', broadcast)
    ledger = loop.run()
    assert ledger.ranking(0) == main and set(ledger.selected_at(1)) == set(main[:6])
