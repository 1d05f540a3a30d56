"""The tiny configs train through MMEngineTrainer and evaluate with mmdet's CocoMetric; a
trainer started afresh (a restarted run) loads the same model from the checkpoint and evaluates
it to the same numbers."""
import os.path as osp

import pytest
import torch
from mmengine.logging import MessageHub

from mmdet_isal.active import MMEngineTrainer, StepJob

pytestmark = pytest.mark.slow  # trains the tiny detectors


@pytest.mark.parametrize('name', ['fcos_shapes', 'faster_rcnn_shapes'])
def test_tiny_detector_trains_evaluates_and_reloads(name, shapes_coco, toy_cfg, tmp_path):
    cfg = toy_cfg(name, shapes_coco)
    job = StepJob(0, str(tmp_path / 'step_0'),
                  osp.join(shapes_coco, 'annotations', 'instances_train.json'))
    trainer = MMEngineTrainer(cfg, seed=0)
    checkpoint = trainer.train(job)
    assert checkpoint == str(tmp_path / 'step_0' / 'epoch_1.pth')
    losses = MessageHub.get_current_instance().get_scalar('train/loss').data[0]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))  # 24 images / 4
    results = trainer.evaluate(job)
    assert set(results) == {'metrics', 'bbox_mAP', 'bbox_mAP_50'}
    assert results['bbox_mAP'] == results['metrics']['coco/bbox_mAP']
    assert results['bbox_mAP_50'] == results['metrics']['coco/bbox_mAP_50']
    trained = trainer.model_of(job)
    assert not trained.model.training and trained.cfg.work_dir == job.work_dir
    state = {k: v.clone() for k, v in trained.model.state_dict().items()}
    trainer.release()

    restarted = MMEngineTrainer(cfg, seed=0)
    again = StepJob(0, job.work_dir, job.labeled_ann_file, checkpoint=checkpoint)
    reloaded = restarted.model_of(again).model.state_dict()
    assert reloaded.keys() == state.keys()
    assert all(torch.equal(reloaded[k], state[k]) for k in state)
    assert restarted.evaluate(again) == results
    restarted.release()
