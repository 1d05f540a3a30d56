"""The active-learning loop end to end on a tiny synthetic pool (tiny FCOS, CPU, 2 epochs),
through MMEngineTrainer: what the fake trainer of test_loop_protocol.py stands for, for real."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from mmdet_isal.active import ActiveLearningLoop, MMEngineTrainer, PoolLedger, build_pool
from tests.active.conftest import fake_run_loop

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


class Killed(Exception):
    """Stands for the process being killed in the middle of a stage."""


def selections(ledger):
    """What must not change between runs: labels, scores and ranks of every image."""
    return {i: (r['labeled_step'], r['scores'], r['ranks']) for i, r in ledger.images.items()}


@pytest.fixture(scope='module')
def random_run(pool_coco, al_cfg, tmp_path_factory):
    """An uninterrupted 2-step random run: (its config, its directory, its ledger)."""
    work_dir = tmp_path_factory.mktemp('random_run')
    cfg = al_cfg(pool_coco, work_dir)
    ledger = ActiveLearningLoop(cfg).run()
    return cfg, str(work_dir), ledger


@pytest.mark.slow
def test_two_step_loop_end_to_end(random_run, pool_coco):
    cfg, work_dir, ledger = random_run
    pool = build_pool(cfg.train_dataloader.dataset)
    for name in ('ledger.json', 'summary.csv', 'summary.json', 'ap_vs_boxes.png',
                 'al_loop.log', 'step_0/labeled.json', 'step_0/unlabeled.json',
                 'step_1/labeled.json', 'step_1/unlabeled.json'):
        assert osp.isfile(osp.join(work_dir, name)), name
    assert not osp.exists(osp.join(work_dir, 'step_2'))
    # step sizes: 8 initial images, +6 selected at step 0; step 1 (the last) selects nothing
    assert len(ledger.labeled_ids(0)) == 8 and len(ledger.labeled_ids(1)) == 14
    assert len(ledger.labeled_ids(99)) == 14
    assert len(ledger.ranking(0)) == 32 and ledger.ranking(1) == []
    assert ledger.selected_at(1) == sorted(ledger.ranking(0)[:6], key=pool.image_ids.index)
    for step in (0, 1):
        rec = ledger.steps[step]
        assert rec['finished'] and rec['bbox_mAP'] == rec['metrics']['coco/bbox_mAP']
        assert rec['bbox_mAP_50'] == rec['metrics']['coco/bbox_mAP_50']
        assert set(rec['stages']) == ({'train', 'evaluate', 'score', 'select'} if step == 0
                                      else {'train', 'evaluate'})
        assert osp.isfile(osp.join(work_dir, rec['checkpoint']))
        # the subsets on disk are exactly what the ledger says
        with open(osp.join(work_dir, f'step_{step}', 'labeled.json')) as f:
            labeled = json.load(f)
        assert [im['id'] for im in labeled['images']] == ledger.labeled_ids(step)
        assert len(labeled['annotations']) == ledger.num_boxes(ledger.labeled_ids(step))
    # ... and can be rebuilt from the ledger read back from disk
    back = PoolLedger.load(osp.join(work_dir, 'ledger.json'))
    assert back.state_dict() == ledger.state_dict()
    with open(osp.join(work_dir, 'summary.json')) as f:
        rows = json.load(f)
    assert [r['step'] for r in rows] == [0, 1]
    assert [r['num_images'] for r in rows] == [8, 14]
    assert rows[1]['ap_per_10k_boxes'] == pytest.approx(
        1e4 * rows[1]['bbox_mAP'] / rows[1]['num_boxes'])
    assert rows[0]['train_seconds'] > 0 and rows[0]['select_seconds'] is not None
    assert rows[1]['score_seconds'] is None
    # the pool file was never touched
    assert pool.ann_file == osp.join(str(pool_coco), 'annotations', 'instances_train.json')


@pytest.mark.slow
def test_random_selects_what_it_selects_with_the_fake_trainer(random_run, pool_coco,
                                                             fake_strategy, tmp_path):
    """Random ignores the model: the run with real training selects what the fake trainer's
    run with the same seed does (the fast tests' protocol is the real one)."""
    _, _, reference = random_run
    fake = fake_run_loop(pool_coco, tmp_path, strategy='random', steps=2).run()
    assert selections(fake) == selections(reference)


def run_tool(*args):
    """``python tools/al_loop.py ARGS`` in a fresh process, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    subprocess.run([sys.executable, osp.join(REPO, 'tools', 'al_loop.py'), *map(str, args)],
                   check=True, env=env, cwd=REPO)


@pytest.mark.slow
def test_killed_while_scoring_then_resumed(random_run, al_cfg, pool_coco, tmp_path):
    """Killed after step 0 was trained and evaluated; ``--resume`` in a new process (which must
    load step 0's checkpoint from disk) scores and selects as the uninterrupted run did."""
    _, _, reference = random_run
    cfg = al_cfg(pool_coco, tmp_path / 'run')

    class KilledWhileScoring(MMEngineTrainer):
        def model_of(self, job):
            raise Killed
    with pytest.raises(Killed):
        ActiveLearningLoop(cfg, trainer=KilledWhileScoring(cfg, seed=0)).run()
    on_disk = PoolLedger.load(str(tmp_path / 'run' / 'ledger.json'))
    assert on_disk.stage_done(0, 'evaluate') and not on_disk.stage_done(0, 'score')

    cfg.dump(str(tmp_path / 'cfg.py'))
    with pytest.raises(subprocess.CalledProcessError):  # a run is there: --resume is needed
        run_tool(tmp_path / 'cfg.py')
    run_tool(tmp_path / 'cfg.py', '--resume')
    resumed = PoolLedger.load(str(tmp_path / 'run' / 'ledger.json'))
    assert selections(resumed) == selections(reference)
    # step 0 was not trained or evaluated again
    assert resumed.steps[0]['checkpoint'] == on_disk.steps[0]['checkpoint']
    for key in ('bbox_mAP', 'metrics'):
        assert resumed.steps[0][key] == on_disk.steps[0][key]
    for stage in ('train', 'evaluate'):
        assert resumed.steps[0]['stages'][stage] == on_disk.steps[0]['stages'][stage]


@pytest.mark.slow
def test_killed_while_training_then_resumed(random_run, al_cfg, pool_coco, tmp_path,
                                            monkeypatch):
    """Killed after epoch 1 of step 1's training (its checkpoint saved): --resume continues
    that training from the checkpoint, and the run ends as an uninterrupted one."""
    from mmengine.hooks import CheckpointHook

    _, _, reference = random_run
    cfg = al_cfg(pool_coco, tmp_path)
    real_hook = CheckpointHook.after_train_epoch
    resumed_from = []

    def kill_after_first_epoch(self, runner):
        real_hook(self, runner)
        if runner.work_dir.endswith('step_1') and runner.epoch == 0 and not resumed_from:
            raise Killed
    monkeypatch.setattr(CheckpointHook, 'after_train_epoch', kill_after_first_epoch)
    with pytest.raises(Killed):
        ActiveLearningLoop(cfg).run()
    on_disk = PoolLedger.load(str(tmp_path / 'ledger.json'))
    assert on_disk.stage_done(0, 'select') and not on_disk.stage_done(1, 'train')
    assert os.listdir(tmp_path / 'step_1').count('epoch_1.pth') == 1

    from mmengine.runner import Runner
    real_resume = Runner.resume

    def spy_resume(self, filename, *args, **kwargs):
        resumed_from.append(filename)
        return real_resume(self, filename, *args, **kwargs)
    monkeypatch.setattr(Runner, 'resume', spy_resume)
    resumed = ActiveLearningLoop(cfg).run(resume=True)
    assert [osp.basename(f) for f in resumed_from] == ['epoch_1.pth']
    assert selections(resumed) == selections(reference)
    assert resumed.steps[1]['checkpoint'].endswith('epoch_2.pth')
    assert resumed.steps[0]['stages'] == on_disk.steps[0]['stages']  # step 0 untouched


def test_voc_lists_load_in_vocdataset(pool_voc, tmp_path):
    from mmdet.datasets import VOCDataset

    from mmdet_isal.datasets import SHAPES_CLASSES
    dataset_cfg = dict(data_root=str(pool_voc), ann_file='VOC2012/ImageSets/Main/train.txt',
                       data_prefix=dict(sub_data_root='VOC2012/'))
    pool = build_pool(dataset_cfg)
    chosen = pool.image_ids[::3]
    lab_file, unl_file = pool.write_split(chosen, tmp_path)
    for path, ids in ((lab_file, chosen), (unl_file, [i for i in pool.image_ids
                                                      if i not in chosen])):
        ds = VOCDataset(**dict(dataset_cfg, ann_file=path), metainfo=dict(classes=SHAPES_CLASSES),
                        test_mode=True, pipeline=[])
        assert [d['img_id'] for d in ds] == ids
        assert sum(len(d['instances']) for d in ds) == pool.boxes_of(ids)
        assert all(osp.isfile(d['img_path']) for d in ds)


@pytest.mark.slow
def test_voc_loop_with_box_budget(al_cfg, pool_voc, tmp_path):
    """A 2-step VOC run (VOCDataset, VOCMetric) with a box budget: one training, one selection
    checked, through tools/al_loop.py as a user runs it."""
    cfg = al_cfg(pool_voc, tmp_path, fmt='voc', budget=dict(boxes=30), steps=2)
    cfg.dump(str(tmp_path / 'cfg.py'))
    run_dir = tmp_path / 'run'
    run_tool(tmp_path / 'cfg.py', '--work-dir', run_dir, '--cfg-options', 'train_cfg.max_epochs=1')
    ledger = PoolLedger.load(str(run_dir / 'ledger.json'))
    chosen = ledger.ranking(0)[:len(ledger.selected_at(1))]
    assert set(chosen) == set(ledger.selected_at(1))
    boxes = ledger.num_boxes(chosen)
    assert boxes >= 30 and boxes - ledger.images[chosen[-1]]['num_boxes'] < 30
    with open(run_dir / 'step_1' / 'labeled.txt') as f:
        assert f.read().split() == ledger.labeled_ids(1)
    assert 'pascal_voc/mAP' in ledger.steps[1]['metrics']


@pytest.mark.slow
def test_a_detector_that_predicts_nothing_gets_ap_zero_and_the_run_goes_on(pool_coco, al_cfg,
                                                                           tmp_path):
    # CocoMetric returns no metric at all when there is no prediction: a weak detector on a
    # small initial set is exactly what the first steps of active learning have
    cfg = al_cfg(pool_coco, tmp_path)
    cfg.merge_from_dict({'model.test_cfg.score_thr': 1.0, 'train_cfg.max_epochs': 1})
    ledger = ActiveLearningLoop(cfg).run()
    for step in (0, 1):
        assert ledger.steps[step]['bbox_mAP'] == 0.0 and ledger.steps[step]['finished']
    assert len(ledger.labeled_ids(1)) == 14
