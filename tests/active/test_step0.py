"""A shared step 0 (the loop with the fake trainer): a strategy run takes a finished run's step 0
(checkpoint and evaluation, recorded by path, not trained again), selects exactly as a run that
trained it, resumes, and refuses a step 0 trained on other images."""
import os.path as osp

import pytest

from mmdet_isal.active import ActiveLearningLoop
from mmdet_isal.active.step0 import SharedStep0Trainer, step0_done
from tests.active.conftest import al_config
from tests.active.fake_trainer import FakeTrainer, Killed


def loop(root, work_dir, shared=None, trainer=None, **al):
    cfg = al_config(root, work_dir, **dict(dict(strategy='fake_by_id', steps=3), **al))
    return ActiveLearningLoop(cfg, trainer=trainer or FakeTrainer(), shared_step0=shared)


@pytest.fixture
def shared_run(pool_coco, fake_strategy, tmp_path):
    """The shared step 0 of seed 0: a run of one step."""
    work_dir = tmp_path / '_step0' / 'seed_0'
    ledger = loop(pool_coco, work_dir, steps=1, strategy='random').run()
    assert ledger.finished(1) and step0_done(str(work_dir))
    return str(work_dir)


@pytest.mark.slow
def test_a_run_takes_the_shared_step0_and_selects_as_if_it_trained_it(
        pool_coco, shared_run, fake_reference, tmp_path):
    trainer = FakeTrainer()
    run = loop(pool_coco, tmp_path / 'isal' / 'seed_0', shared_run, trainer)
    assert isinstance(run.trainer, SharedStep0Trainer)
    ledger = run.run()
    # step 0 neither trained nor evaluated here; its model read from the shared checkpoint
    assert ('train', 0) not in trainer.calls and ('evaluate', 0) not in trainer.calls
    assert [c for c in trainer.calls if c[0] == 'train'] == [('train', 1), ('train', 2)]
    shared_ckpt = osp.join(shared_run, 'step_0', 'fake.ckpt')
    assert trainer.loaded == [osp.join(run.work_dir, ledger.steps[0]['checkpoint'])]
    assert osp.samefile(trainer.loaded[0], shared_ckpt)
    assert ledger.steps[0]['checkpoint'] == osp.join('..', '..', '_step0', 'seed_0', 'step_0',
                                                     'fake.ckpt')
    assert ledger.steps[0]['step0_from'] == osp.join('..', '..', '_step0', 'seed_0')
    reference = fake_reference[3]
    assert ledger.steps[0]['bbox_mAP'] == reference.steps[0]['bbox_mAP']
    assert ledger.steps[0]['metrics'] == reference.steps[0]['metrics']
    # the same selections as the run that trained its own step 0
    for step in range(3):
        assert ledger.labeled_ids(step) == reference.labeled_ids(step)
        assert ledger.steps[step]['bbox_mAP'] == reference.steps[step]['bbox_mAP']


@pytest.mark.slow
def test_a_run_with_a_shared_step0_resumes(pool_coco, shared_run, fake_reference, tmp_path):
    work_dir = tmp_path / 'isal' / 'seed_0'
    with pytest.raises(Killed):
        loop(pool_coco, work_dir, shared_run, FakeTrainer(kill=('train', 1))).run()
    trainer = FakeTrainer()
    ledger = loop(pool_coco, work_dir, shared_run, trainer).run(resume=True)
    assert ('train', 0) not in trainer.calls and ledger.finished(3)
    assert ledger.labeled_ids(2) == fake_reference[3].labeled_ids(2)
    # resumed without the flag: step 0 is recorded, nothing to take from anywhere
    again = loop(pool_coco, work_dir, None, FakeTrainer()).run(resume=True)
    assert again.steps[0] == ledger.steps[0]


def test_a_step0_of_other_images_or_none_is_refused(pool_coco, shared_run, tmp_path):
    with pytest.raises(ValueError, match=r'trained step 0 on other images than this run .*the '
                                         r'seed, the pool or active_learning.initial differ'):
        loop(pool_coco, tmp_path / 'other_seed', shared_run, seed=1).prepare()
    with pytest.raises(ValueError, match='trained step 0 on other images'):
        loop(pool_coco, tmp_path / 'other_initial', shared_run,
             initial=dict(images=9)).prepare()
    with pytest.raises(RuntimeError, match='has no evaluated step 0 .*train it first'):
        loop(pool_coco, tmp_path / 'no_step0', str(tmp_path / 'nowhere')).prepare()
    assert not osp.exists(tmp_path / 'other_seed' / 'step_0')  # refused before any training
