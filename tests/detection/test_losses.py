"""Per-image detection losses on tiny FCOS and Faster R-CNN (CPU, float64, 64-pixel images)."""
import contextlib
import copy
import functools
from functools import partial

import pytest
import torch

from mmdet_isal.detection import (BatchSequence, FeatureCache, build_scoring_dataset,
                                  parameter_preset, per_image_losses, scoring_mode,
                                  sum_detection_losses)
from mmdet_isal.detection.patches import image_seed, seeded
from mmdet_isal.influence import restrict_grad, select_parameters
from mmdet_isal.influence.hvp import mean_hvp

DETECTORS = ['fcos_shapes', 'faster_rcnn_shapes']


def build_model(cfg, dtype=torch.float32):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(dtype).eval()


def batches(cfg, ann='annotations/instances_train.json', batch_size=4, n=8, boxes=True):
    ds = build_scoring_dataset(cfg, ann, with_boxes=boxes)
    return BatchSequence(ds, batch_size, indices=range(n))


# mmcv's CPU nms and RoIAlign kernels take float32 only: Faster R-CNN (and anything that
# predicts, such as pseudo-labelling) runs in float32; FCOS's ground-truth losses in float64.
DTYPES = {'fcos_shapes': torch.float64, 'faster_rcnn_shapes': torch.float32}


@pytest.fixture(params=DETECTORS, scope='module')
def detector(request, shapes_coco):
    from tests.conftest import toy_config
    cfg = toy_config(request.param, shapes_coco)
    return request.param, cfg, build_model(cfg, DTYPES[request.param])


@pytest.mark.slow
def test_losses_do_not_depend_on_the_batch(detector):
    name, cfg, model = detector
    together = per_image_losses(model, batches(cfg, batch_size=4, n=4)[0])
    alone = torch.cat([per_image_losses(model, b) for b in batches(cfg, batch_size=1, n=4)])
    assert together.shape == (4,)
    assert torch.isfinite(together).all() and (together > 0).all()
    torch.testing.assert_close(together, alone, rtol=1e-6, atol=0)


def test_padding_of_a_larger_neighbour_does_not_change_a_loss(detector):
    """An image batched with a larger one gets padded; its loss must not change."""
    name, cfg, model = detector
    small, large = batches(cfg, batch_size=1, n=2)
    big = copy.deepcopy(large)
    big['inputs'] = [torch.nn.functional.pad(big['inputs'][0], (0, 64, 0, 32))]
    big['data_samples'][0].set_metainfo(dict(img_shape=tuple(big['inputs'][0].shape[-2:])))
    mixed = dict(inputs=small['inputs'] + big['inputs'],
                 data_samples=small['data_samples'] + big['data_samples'])
    torch.testing.assert_close(per_image_losses(model, mixed)[0],
                               per_image_losses(model, small)[0], rtol=1e-6, atol=0)


def mmdet_training_loss(model, batch, seed=0):
    """mmdet's own training loss of a batch of one: the model in train mode with its norm
    layers in eval mode (so that nothing but the mode of the heads differs from scoring), the
    samplers seeded as per_image_losses seeds them. The model is back in eval mode after."""
    from tests.conftest import mmdet_training_mode
    data = model.data_preprocessor(copy.deepcopy(batch), training=True)
    with mmdet_training_mode(model), scoring_mode(), seeded(
            image_seed(seed, data['data_samples'][0])):
        return model.loss(data['inputs'], data['data_samples'])


def test_single_image_loss_equals_mmdet_training_loss_without_acc(detector):
    """For one image, the per-image loss is mmdet's own training loss: every 'loss' key, never
    'acc', computed from the heads' training outputs although the model is in eval mode (the
    toy FCOS has norm_on_bbox, whose inference output is the box regression times the
    stride)."""
    name, cfg, model = detector
    if name == 'fcos_shapes':
        assert model.bbox_head.norm_on_bbox
    batch = batches(cfg, batch_size=1, n=1)[0]
    reference = mmdet_training_loss(model, batch)
    if name == 'faster_rcnn_shapes':
        assert 'acc' in reference  # the entry the authors' code wrongly summed
    expected = sum_detection_losses(reference)
    torch.testing.assert_close(per_image_losses(model, batch)[0], expected, rtol=1e-9, atol=0)
    assert not any(m.training for m in model.modules())  # the heads' flags are restored


def test_losses_are_deterministic_for_a_seed(detector):
    name, cfg, model = detector
    batch = batches(cfg, batch_size=4, n=4)[0]
    first = per_image_losses(model, batch, seed=3)
    torch.manual_seed(123)  # the global RNG state must not matter
    torch.testing.assert_close(per_image_losses(model, batch, seed=3), first, rtol=0, atol=0)


def test_only_selected_parameters_get_gradients(detector):
    name, cfg, model = detector
    selected = select_parameters(model, parameter_preset(model))
    with restrict_grad(model, selected.values()):
        per_image_losses(model, batches(cfg, n=4)[0]).sum().backward()
        got = {n for n, p in model.named_parameters() if p.grad is not None}
    assert got == set(selected)
    for p in model.parameters():
        p.grad = None


@pytest.mark.slow
def test_feature_cache_skips_the_backbone_and_changes_no_number(detector):
    name, cfg, model = detector
    params = list(select_parameters(model, parameter_preset(model)).values())
    gen = torch.Generator().manual_seed(0)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    data = batches(cfg, n=4)  # collated afresh at every access, as LiSSA draws them
    cache = FeatureCache()
    cached_loss = partial(per_image_losses, feature_cache=cache)
    backbone_calls = []
    handle = model.backbone.register_forward_hook(lambda *args: backbone_calls.append(1))
    try:
        with restrict_grad(model, params):
            plain = mean_hvp(model, params, per_image_losses, v, [data[0]])
            first = mean_hvp(model, params, cached_loss, v, [data[0]])
            again = mean_hvp(model, params, cached_loss, v, [data[0]])
    finally:
        handle.remove()
    assert len(backbone_calls) == 2  # the uncached call and the first draw
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1) and cache.nbytes > 0
    # FCOS's towers (4 ConvModules x 5 levels) or the RPN's shared conv (5 levels)
    assert cache.head_hits == (20 if name == 'fcos_shapes' else 5)
    for a, b, c in zip(plain, first, again):
        assert torch.equal(a, b) and torch.equal(a, c)
    # a stored tensor changed in place is not served again
    stored = next(iter(cache._groups.values()))[1][0]
    stored.mul_(1.0)
    with restrict_grad(model, params):
        changed = mean_hvp(model, params, cached_loss, v, [data[0]])
    assert cache.misses == 2 and all(torch.equal(a, b) for a, b in zip(plain, changed))
    # a selection reaching into the backbone: its features change with it, no caching
    with restrict_grad(model, params + [next(model.backbone.parameters())]):
        per_image_losses(model, data[0], feature_cache=cache)
    assert cache.bypassed == 1
    full = FeatureCache(max_bytes=0)
    with restrict_grad(model, params):
        for _ in range(2):
            per_image_losses(model, data[0], feature_cache=full)
    assert (full.misses, len(full), full.nbytes) == (2, 0, 0)
    with pytest.raises(ValueError, match='max_bytes'):
        FeatureCache(-1)


def test_hvp_is_symmetric_on_preset_parameters(detector):
    name, cfg, model = detector
    params = list(select_parameters(model, parameter_preset(model)).values())
    gen = torch.Generator().manual_seed(0)
    u = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    data = [batches(cfg, n=4)[0]]
    with restrict_grad(model, params):
        hu = mean_hvp(model, params, per_image_losses, u, data)
        hv = mean_hvp(model, params, per_image_losses, v, data)
    uhv = sum((a * b).sum() for a, b in zip(u, hv))
    vhu = sum((a * b).sum() for a, b in zip(v, hu))
    assert abs(uhv) > 1e-8  # a real curvature, not zero
    assert abs(uhv - vhu) <= 1e-4 * abs(uhv)


def test_pseudo_labels_come_from_the_same_forward(shapes_coco, toy_cfg):
    """With a score threshold of 0 every detection is a target; with 1 - eps none is."""
    from mmdet_isal.detection import PseudoLabeler
    # an untrained head scores about 0.01 (its prior): let the detector output everything
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    model = build_model(cfg)
    batch = batches(cfg, n=4, boxes=False)[0]
    assert all('bboxes' not in s.gt_instances for s in batch['data_samples'])
    many, none = [], []
    losses_many = per_image_losses(model, batch, pseudo_label_fn=PseudoLabeler(0.0),
                                   records=many)
    losses_none = per_image_losses(model, batch, pseudo_label_fn=PseudoLabeler(0.999999),
                                   records=none)
    assert [r['num_targets'] for r in none] == [0, 0, 0, 0]
    assert all(r['num_targets'] > 0 for r in many)
    assert torch.isfinite(losses_none).all() and torch.isfinite(losses_many).all()
    assert not torch.allclose(losses_many, losses_none)


@pytest.mark.parametrize('name', DETECTORS)
def test_pseudo_labels_are_mmdets_inference_detections(shapes_coco, toy_cfg, name):
    """The detections that become targets are mmdet's predict output (inference outputs of the
    heads, in network-input coordinates), although the loss uses the training outputs."""
    from mmdet_isal.detection import PseudoLabeler
    key = 'model.test_cfg.rcnn.score_thr' if name == 'faster_rcnn_shapes' else \
        'model.test_cfg.score_thr'
    cfg = toy_cfg(name, shapes_coco, **{key: 0.0})
    model = build_model(cfg)
    batch = batches(cfg, n=2, boxes=False)[0]
    seen = []

    def labeler(pred):
        seen.append(pred)
        return PseudoLabeler(0.0)(pred)

    per_image_losses(model, copy.deepcopy(batch), pseudo_label_fn=labeler)
    data = model.data_preprocessor(copy.deepcopy(batch), training=False)
    with torch.no_grad():
        expected = model.predict(data['inputs'], data['data_samples'], rescale=False)
    assert len(seen) == 2 and all(len(p.bboxes) > 0 for p in seen)
    for got, want in zip(seen, expected):
        torch.testing.assert_close(got.bboxes, want.pred_instances.bboxes)
        torch.testing.assert_close(got.scores, want.pred_instances.scores)


def test_boxes_are_in_network_input_coordinates(shapes_coco, toy_cfg):
    """The toy set has 64-pixel images resized to 128: targets must be scaled by 2."""
    import json
    cfg = toy_cfg('fcos_shapes', shapes_coco)
    ds = build_scoring_dataset(cfg, 'annotations/instances_train.json', with_boxes=True)
    coco = json.load(open(f'{shapes_coco}/annotations/instances_train.json'))
    sample = next(s for s in (ds[i] for i in range(len(ds))) if len(s['data_samples'].gt_instances))
    img_id = sample['data_samples'].img_id
    boxes = sorted([a['bbox'][0] * 2, a['bbox'][1] * 2, (a['bbox'][0] + a['bbox'][2]) * 2,
                    (a['bbox'][1] + a['bbox'][3]) * 2] for a in coco['annotations']
                   if a['image_id'] == img_id)
    got = sorted(sample['data_samples'].gt_instances.bboxes.tensor.tolist())
    torch.testing.assert_close(torch.tensor(got), torch.tensor(boxes, dtype=torch.float32))


def test_focal_loss_is_twice_differentiable_and_equal_to_mmdet_cpu_path():
    import mmdet.models.losses.focal_loss as focal
    from mmdet_isal.detection.patches import _twice_differentiable_sigmoid_focal_loss
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(20, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    target = torch.randint(0, 6, (20,), generator=gen)
    loss_module = focal.FocalLoss(use_sigmoid=True)
    expected = loss_module(pred, target, avg_factor=7.0)  # CPU: mmdet's torch path
    original = focal.sigmoid_focal_loss
    with scoring_mode():
        assert focal.sigmoid_focal_loss is _twice_differentiable_sigmoid_focal_loss
        got = focal.sigmoid_focal_loss(pred, target, None, 2.0, 0.25, 'mean', 7.0)
    assert focal.sigmoid_focal_loss is original
    torch.testing.assert_close(got, expected)
    (grad, ) = torch.autograd.grad(got, pred, create_graph=True)
    (second, ) = torch.autograd.grad(grad.sum(), pred)
    assert torch.isfinite(second).all() and second.abs().sum() > 0


def test_scoring_mode_makes_every_reduce_mean_the_identity_also_after_new_imports():
    import sys
    import types
    import mmdet.models.dense_heads.fcos_head as fcos_head
    from mmdet.utils import reduce_mean
    with scoring_mode():  # the modules found are kept for later calls
        assert fcos_head.reduce_mean(torch.tensor(3.0)) == 3.0
        assert fcos_head.reduce_mean is not reduce_mean
    probe = types.ModuleType('mmdet.isal_probe')  # a module imported since
    probe.reduce_mean = reduce_mean
    sys.modules[probe.__name__] = probe
    try:
        with scoring_mode():
            assert probe.reduce_mean is not reduce_mean
            assert fcos_head.reduce_mean is not reduce_mean
    finally:
        del sys.modules[probe.__name__]
    assert probe.reduce_mean is reduce_mean and fcos_head.reduce_mean is reduce_mean


def test_unsupported_detector_is_a_clear_error():
    from mmdet_isal.detection import detector_spec
    with pytest.raises(TypeError, match='no per-image loss for detector type Linear.*'
                                        'SingleStageDetector, TwoStageDetector.*DetectorSpec'):
        detector_spec(torch.nn.Linear(2, 2))


@pytest.mark.slow
def test_layerwise_influence_equals_double_backward(detector):
    """InfluenceScorer's default (layerwise: the rows of every head output attributed to their
    images, the RoI head's per image) gives the double backward's numbers, on ground-truth
    targets and on pseudo-labels, to float32 rounding (FCOS casts its box regression to
    float32, also in a float64 model; the exact float64 check is tests/influence)."""
    from mmdet_isal.detection import PseudoLabeler
    from mmdet_isal.influence import InfluenceScorer, LiSSA
    name, cfg, model = detector
    names = parameter_preset(model, include_bias=True)
    gen = torch.Generator().manual_seed(0)
    params = [dict(model.named_parameters())[n] for n in names]
    s = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    data = batches(cfg, batch_size=3, n=6)
    for loss in (per_image_losses,
                 partial(per_image_losses, pseudo_label_fn=PseudoLabeler(0.0))):
        scores = {}
        for mode in ('layerwise', 'backward'):
            scorer = InfluenceScorer(model, names, loss, LiSSA(), score_mode=mode)
            scores[mode] = scorer.score(data, s)
            assert scorer.score_mode_ == mode
        scale = scores['backward'].abs().max()
        assert scale > 0
        torch.testing.assert_close(scores['layerwise'] / scale, scores['backward'] / scale,
                                   rtol=0, atol=1e-6)


def test_a_prediction_equal_to_its_target_to_rounding_has_the_symmetric_subgradient():
    """IoU and L1 losses have a kink at pred == target; rounding must not pick its side."""
    import importlib
    from mmdet_isal.detection.patches import exact_ties
    iou = importlib.import_module('mmdet.models.losses.iou_loss')
    l1 = importlib.import_module('mmdet.models.losses.smooth_l1_loss')
    original = iou.giou_loss
    target = torch.tensor([[10.0, 20.0, 50.0, 60.0]])
    grads, plain = [], []
    for noise in (1e-5, -1e-5):
        pred = (target + noise).requires_grad_()
        with scoring_mode():
            loss = iou.giou_loss(pred, target) + l1.l1_loss(pred, target)
        grads.append(torch.autograd.grad(loss, pred)[0])
        # outside scoring, the side of the kink follows the rounding noise
        assert iou.giou_loss is original
        loss = iou.giou_loss(pred, target) + l1.l1_loss(pred, target)
        plain.append(torch.autograd.grad(loss, pred)[0])
    assert (plain[0] - plain[1]).abs().min() > 1e-3
    assert torch.equal(grads[0], torch.zeros_like(grads[0]))
    assert torch.equal(grads[1], torch.zeros_like(grads[1]))
    # a target farther than the tolerance is left alone
    far = target + 0.5
    assert torch.equal(exact_ties(target, far), far)


def test_pseudo_label_gradients_do_not_follow_rounding(shapes_coco, toy_cfg):
    """Each pseudo box is its source location's own prediction, so its regression loss sits
    on a kink. Rounding (a convolution over 8 images rounds differently from one over 1, and
    the trained tiny FCOS's gradients moved by 23 % with the batch) must not pick its side:
    boxes moved by float32 rounding either way give the same gradient. (FCOS: on Faster
    R-CNN such a move can also change which proposals the max-IoU assigner ties to a box, a
    discrete change of the loss, not a kink; its L1 kink is checked above.)"""
    from mmdet_isal.detection import PseudoLabeler
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    model = build_model(cfg)
    params = list(select_parameters(model, parameter_preset(model)).values())
    batch = batches(cfg, batch_size=2, n=2, boxes=False)[0]

    def rounded(sign):
        def labeler(pred):
            targets = PseudoLabeler(0.0)(pred)
            # boxes of random weights are often points (their regression is clamped at 0):
            # rounding could move a location in or out of those
            size = targets.bboxes[:, 2:] - targets.bboxes[:, :2]
            targets = targets[(size > 2).all(1)]
            targets.bboxes = targets.bboxes * (1 + sign * 2.4e-7)  # two float32 ulps
            return targets
        return labeler

    grads = []
    with restrict_grad(model, params):
        for sign in (1, -1):
            losses = per_image_losses(model, copy.deepcopy(batch), pseudo_label_fn=rounded(sign))
            grads.append(torch.autograd.grad(losses.sum(), params))
    for up, down in zip(*grads):
        assert (up - down).abs().max() <= 1e-3 * up.abs().max()


def test_layerwise_hessian_vector_products_on_detectors(detector):
    """The preset layers' inputs do not depend on the selected parameters (the RoI features
    come from detached proposals), so the scorer forms H·v through their outputs, with the
    double backward's numbers."""
    from mmdet_isal.influence import InfluenceScorer, LiSSA
    name, cfg, model = detector
    names = parameter_preset(model, include_bias=True)
    cache = FeatureCache()
    loss = partial(per_image_losses, feature_cache=cache)
    scorer = InfluenceScorer(model, names, loss, LiSSA())
    gen = torch.Generator().manual_seed(1)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in scorer.params]
    data = batches(cfg, batch_size=4, n=4)
    for _ in range(2):
        got = scorer.hvp(v, data)
        assert scorer.hvp_mode_ == 'layerwise', scorer.hvp_mode_reason_
        with restrict_grad(model, scorer.params):
            expected = mean_hvp(model, scorer.params, loss, v, data)
        scale = max(float(e.abs().max()) for e in expected)
        assert scale > 0
        for a, b in zip(got, expected):
            torch.testing.assert_close(a / scale, b / scale, rtol=0, atol=1e-6)


def test_priors_are_built_once_per_group_and_change_no_number(detector, monkeypatch):
    """memoized_priors: the images of a group share their anchors (points); the losses with
    pseudo-labels (the inference pass, then image by image the RPN/FCOS losses and the RPN's
    proposals) are the same floats as when every call builds its own."""
    from mmdet_isal.detection import PseudoLabeler
    from mmdet_isal.detection import per_image as per_image_module
    name, cfg, model = detector
    batch = batches(cfg, batch_size=4, n=4, boxes=False)[0]
    generator = (model.rpn_head if name == 'faster_rcnn_shapes' else model.bbox_head
                 ).prior_generator
    built = []
    real = type(generator).grid_priors

    @functools.wraps(real)
    def counted(self, *args, **kwargs):
        built.append(kwargs.get('dtype'))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(generator), 'grid_priors', counted)

    def run():
        built.clear()
        out = per_image_module._per_image_losses(model, batch, PseudoLabeler(0.0), 0, None,
                                              image_scope=lambda i: contextlib.nullcontext())
        return out, len(built)

    memo, memo_builds = run()
    monkeypatch.setattr(per_image_module, 'memoized_priors',
                        lambda model: contextlib.nullcontext())
    plain, plain_builds = run()
    assert torch.equal(memo, plain)
    if name == 'faster_rcnn_shapes':
        # one group of one padded size; without: the inference pass, then per image its RPN
        # loss and its proposals
        assert (memo_builds, plain_builds) == (1, 1 + 4 * 2)
    else:
        # FCOS's box regression is float32 in a float64 model (mmdet's .float()): its loss
        # asks for float32 points, the inference for the model's dtype
        assert (memo_builds, plain_builds) == (2, 1 + 4)
    assert 'grid_priors' not in vars(generator)  # nothing left patched


def test_memoized_priors_recompute_priors_changed_in_place():
    from mmdet.models.task_modules.prior_generators import AnchorGenerator

    from mmdet_isal.detection.patches import memoized_priors

    from mmengine.model import BaseModule

    class RPNHead(BaseModule):  # what memoized_priors looks for: a *Head with a generator
        def __init__(self):
            super().__init__()
            self.prior_generator = AnchorGenerator(strides=[4], ratios=[1.0], scales=[2])

    model = torch.nn.Module()
    model.rpn_head = RPNHead()
    gen = model.rpn_head.prior_generator
    with memoized_priors(model):
        first = gen.grid_priors([(2, 3)], device='cpu')
        again = gen.grid_priors([(2, 3)], device='cpu')
        assert again[0] is first[0] and again is not first
        expected = first[0].clone()
        first[0].add_(1.0)
        fresh = gen.grid_priors([(2, 3)], device='cpu')
        assert fresh[0] is not first[0] and torch.equal(fresh[0], expected)
        assert gen.grid_priors([(3, 3)], device='cpu')[0].shape == (9, 4)
