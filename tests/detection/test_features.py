"""The detection pass with pooled head features: what the hooks catch, and its invariances."""
import pytest
import torch

from mmdet_isal.detection import BatchSequence, build_scoring_dataset, count_pseudo_boxes
from mmdet_isal.detection.features import add_gaussian_noise, detect_pool, feature_modules
from tests.detection.test_losses import build_model

TRAIN = 'annotations/instances_train.json'


@pytest.mark.slow
def test_features_are_pooled_cls_and_reg_branches_per_level(shapes_coco, toy_cfg):
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    model = build_model(cfg)
    out = detect_pool(model, cfg, TRAIN, batch_size=5, with_features=True)
    batch = BatchSequence(build_scoring_dataset(cfg, TRAIN, with_boxes=False), 3)[0]
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        levels = model.extract_feat(data['inputs'])
        head = model.bbox_head
        pooled = []
        for branch in (head.cls_convs, head.reg_convs):
            for x in levels:
                for layer in branch:
                    x = layer(x)
                pooled.append(x.mean(dim=(2, 3)))
        expected = torch.cat(pooled, dim=1)
    ids = [s.metainfo['img_id'] for s in data['data_samples']]
    got = torch.stack([out[i].features for i in ids])
    assert got.shape == (3, 2 * 5 * 32)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the same detections as the pseudo-label count, whatever the batch size
    counts = count_pseudo_boxes(model, cfg, TRAIN, 0.0105)
    assert counts == {i: int((o.detections.scores >= 0.0105).sum()) for i, o in out.items()}
    again = detect_pool(model, cfg, TRAIN, batch_size=2, with_features=True)
    for i in out:
        torch.testing.assert_close(again[i].features, out[i].features, rtol=1e-4, atol=1e-5)
    # hooks are removed afterwards
    assert all(not m._forward_hooks for m in feature_modules(model))


def test_heads_without_taps_are_named(shapes_coco, toy_cfg):
    cfg = toy_cfg('faster_rcnn_shapes', shapes_coco)
    with pytest.raises(TypeError, match=r'rpn_head \(RPNHead\), roi_head.bbox_head '
                                        r'\(Shared2FCBBoxHead\).*HeadSpec with taps'):
        feature_modules(build_model(cfg))


def test_gaussian_noise_has_the_given_spread_and_is_clipped():
    img = torch.full((3, 64, 64), 128, dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    noisy = add_gaussian_noise(dict(inputs=[img], data_samples=[None]), 10.0, gen)['inputs'][0]
    assert abs(float(noisy.std()) - 10.0) < 0.3 and abs(float(noisy.mean()) - 128) < 0.3
    dark = add_gaussian_noise(dict(inputs=[torch.zeros_like(img)]), 50.0, gen)['inputs'][0]
    assert float(dark.min()) == 0.0 and float(dark.max()) <= 255
    with pytest.raises(ValueError, match='noise_sigma'):
        detect_pool(None, None, TRAIN, noise_sigma=-1)
