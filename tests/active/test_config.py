"""The active_learning block and the loop's set-up errors (no training here)."""
import os

import pytest
from mmengine.config import Config

from mmdet_isal.active import ActiveLearningConfig, ActiveLearningLoop, Budget, PoolLedger


def test_defaults_and_round_trip():
    al = ActiveLearningConfig.from_dict(
        dict(initial=dict(images=5), budget=dict(boxes=20), steps=3))
    assert al.strategy == 'isal' and al.retrain == 'scratch' and al.seed == 0
    assert al.initial == Budget('images', 5) and al.budget == Budget('boxes', 20)
    assert ActiveLearningConfig.from_dict(al.to_dict()) == al
    al = ActiveLearningConfig.from_dict(
        dict(strategy=dict(type='isal', scorer=dict(depth=3)), initial=dict(images=5),
             budget=dict(images=2), steps=1))
    assert al.strategy_name == 'isal'


@pytest.mark.parametrize('block, match', [
    (None, 'no active_learning block'),
    (dict(initial=dict(images=5), budget=dict(images=2), steps=2, stpes=3, foo=1),
     'unknown key.*foo, stpes'),
    (dict(initial=dict(images=5), steps=2), 'missing budget'),
    (dict(initial=dict(images=5), budget=dict(images=2), steps=0), 'steps must be'),
    (dict(initial=dict(images=5), budget=dict(images=2), steps=2, retrain='warm'), 'retrain'),
    (dict(initial=dict(images=5), budget=dict(images=2), steps=2, target_ap=25), 'target_ap'),
    (dict(initial=dict(images=5), budget=dict(images=2), steps=2, strategy=dict(a=1)),
     'strategy'),
    (dict(initial=dict(images=5), budget=dict(images=2), steps=2,
          finetune_cfg=dict(train_cfg=dict(max_epochs=1))),
     r"finetune_cfg applies to the steps that start from a checkpoint: set retrain='finetune' "
     r"or 'step0'"),
    (dict(initial=dict(images=5), budget=dict(images=2), steps=2, retrain='step0',
          finetune_cfg=[1]), r'finetune_cfg must be a dict \(a config fragment\) or None'),
])
def test_errors_name_the_key(block, match):
    with pytest.raises((KeyError, ValueError), match=match):
        ActiveLearningConfig.from_dict(block)


def loop_cfg(root, work_dir, **al):
    dataset = dict(type='CocoDataset', data_root=str(root), data_prefix=dict(img='images/'))
    return Config(dict(
        work_dir=str(work_dir),
        active_learning=dict(dict(strategy='random', initial=dict(images=10),
                                  budget=dict(images=5), steps=3), **al),
        train_dataloader=dict(dataset=dict(dataset, ann_file='annotations/instances_train.json')),
        val_dataloader=dict(dataset=dict(dataset, ann_file='annotations/instances_val.json')),
        val_evaluator=dict(type='CocoMetric'), train_cfg=dict(max_epochs=1)))


def test_budget_larger_than_pool(pool_coco, tmp_path):
    with pytest.raises(ValueError, match=r'initial=\{.images.: 41\} is larger'):
        ActiveLearningLoop(loop_cfg(pool_coco, tmp_path, initial=dict(images=41))).run()
    with pytest.raises(ValueError, match=r'4 more selection\(s\) .* need 32 images, but the '
                                         r'pool .* has only 30'):
        ActiveLearningLoop(loop_cfg(pool_coco, tmp_path / 'b', budget=dict(images=8),
                                    steps=5)).run()
    with pytest.raises(ValueError, match=r'need 1000 boxes'):
        ActiveLearningLoop(loop_cfg(pool_coco, tmp_path / 'c', budget=dict(boxes=500))).run()


def test_missing_files_are_named(pool_coco, tmp_path):
    cfg = loop_cfg(pool_coco, tmp_path)
    cfg.train_dataloader.dataset.ann_file = 'annotations/missing.json'
    with pytest.raises(FileNotFoundError, match='missing.json'):
        ActiveLearningLoop(cfg)
    cfg = loop_cfg(pool_coco, tmp_path, reference='/nowhere/ref.json')
    with pytest.raises(FileNotFoundError, match='active_learning.reference /nowhere/ref.json'):
        ActiveLearningLoop(cfg)
    cfg = loop_cfg(pool_coco, tmp_path)
    cfg.val_evaluator = None
    with pytest.raises(KeyError, match='no val_evaluator'):
        ActiveLearningLoop(cfg)


def test_existing_run_needs_resume_and_same_settings(pool_coco, tmp_path, monkeypatch):
    monkeypatch.setattr(ActiveLearningLoop, '_run_step', lambda self, step: None)
    ActiveLearningLoop(loop_cfg(pool_coco, tmp_path)).run()
    ledger = PoolLedger.load(str(tmp_path / 'ledger.json'))
    assert len(ledger.labeled_ids(0)) == 10
    with pytest.raises(FileExistsError, match='--resume'):
        ActiveLearningLoop(loop_cfg(pool_coco, tmp_path)).run()
    with pytest.raises(ValueError, match=r"seed: 0 -> 1"):
        ActiveLearningLoop(loop_cfg(pool_coco, tmp_path, seed=1)).run(resume=True)
    # what only affects the steps to come may change
    ActiveLearningLoop(loop_cfg(pool_coco, tmp_path, steps=4, target_ap=0.5,
                                scorer=dict(damping=0.1))).run(resume=True)
    os.remove(tmp_path / 'ledger.json')
    os.makedirs(tmp_path / 'step_0')
    with pytest.raises(FileExistsError, match='step_0... but no ledger.json'):
        ActiveLearningLoop(loop_cfg(pool_coco, tmp_path)).run(resume=True)


def test_every_process_starts_the_run_the_main_process_saw(pool_coco, tmp_path, monkeypatch):
    """A distributed start: the main process writes the new ledger at the end of prepare(); a
    process that looks at the directory after that must not take it for an old run (it once
    stopped a 2-process loop with "already holds an active-learning run"). Every process acts
    on the main process's look, broadcast."""
    import mmdet_isal.active.loop as loop_module
    main = ActiveLearningLoop(loop_cfg(pool_coco, tmp_path))
    main.prepare()
    assert os.path.exists(tmp_path / 'ledger.json')
    # another process, later: the broadcast brings the main process's look (nothing there yet)
    monkeypatch.setattr(loop_module, 'is_main_process', lambda: False)

    def broadcast(objects, src=0):
        objects[0] = (False, [])

    monkeypatch.setattr(loop_module, 'broadcast_object_list', broadcast)
    written = os.stat(tmp_path / 'ledger.json').st_mtime_ns
    other = ActiveLearningLoop(loop_cfg(pool_coco, tmp_path))
    other.prepare()
    assert other.ledger.labeled_ids(0) == main.ledger.labeled_ids(0)
    assert os.stat(tmp_path / 'ledger.json').st_mtime_ns == written  # only the main writes


def test_initial_set_depends_on_seed_only(pool_coco, tmp_path, monkeypatch):
    monkeypatch.setattr(ActiveLearningLoop, '_run_step', lambda self, step: None)
    first = {}
    for strategy in ('random', 'isal'):
        for seed in (0, 1):
            d = tmp_path / f'{strategy}{seed}'
            ActiveLearningLoop(loop_cfg(pool_coco, d, strategy=strategy, seed=seed)).run()
            first[strategy, seed] = PoolLedger.load(str(d / 'ledger.json')).labeled_ids(0)
    assert first['random', 0] == first['isal', 0] != first['random', 1] == first['isal', 1]


def test_a_finetune_cfg_schedules_only_the_steps_that_start_from_a_checkpoint(tmp_path):
    from mmdet_isal.active import MMEngineTrainer, StepJob
    fragment = dict(train_cfg=dict(_delete_=True, type='IterBasedTrainLoop', max_iters=7),
                    param_scheduler=[dict(type='ConstantLR', factor=1.0)])
    al = ActiveLearningConfig.from_dict(dict(initial=dict(images=5), budget=dict(images=2),
                                             steps=3, retrain='step0', finetune_cfg=fragment))
    assert al.finetune_cfg == fragment and ActiveLearningConfig.from_dict(al.to_dict()) == al
    cfg = loop_cfg('root', tmp_path, retrain='step0', finetune_cfg=fragment)
    cfg.param_scheduler = [dict(type='MultiStepLR', milestones=[1])]
    trainer = MMEngineTrainer(cfg, finetune_cfg=al.finetune_cfg)
    first = trainer.step_cfg(StepJob(0, str(tmp_path / 'step_0'), 'l0.json'))
    later = trainer.step_cfg(StepJob(2, str(tmp_path / 'step_2'), 'l2.json',
                                     init_checkpoint='step_0/iter_9.pth'))
    assert first.train_cfg.max_epochs == 1 and first.param_scheduler[0]['type'] == 'MultiStepLR'
    assert later.train_cfg.to_dict() == dict(type='IterBasedTrainLoop', max_iters=7,
                                             val_begin=2 ** 62)
    assert later.param_scheduler == [dict(type='ConstantLR', factor=1.0)]
    assert cfg.train_cfg.max_epochs == 1  # the user's config is left as it was
