"""The tiny configs train a few iterations and evaluate with mmdet's CocoMetric."""
import pytest


@pytest.mark.parametrize('name', ['fcos_shapes', 'faster_rcnn_shapes'])
def test_tiny_detector_trains_and_evaluates(name, shapes_coco, toy_cfg, tmp_path):
    from mmengine.runner import Runner
    cfg = toy_cfg(name, shapes_coco)
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 6 and all(l == l and l > 0 for l in losses)  # 24 images / batch 4
    metrics = runner.val()
    assert set(metrics) >= {'coco/bbox_mAP', 'coco/bbox_mAP_50'}
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0
