"""One loss normaliser for every image (``LossNormalizer``) on tiny FCOS and Faster R-CNN."""
import copy
import json

import pytest
import torch
from mmdet.models.losses import L1Loss

from mmdet_isal.detection import (BatchSequence, LossNormalizer, build_scoring_dataset,
                                  measure_normalizer, per_image_losses, scoring_mode,
                                  sum_detection_losses)
from mmdet_isal.detection.normalizer import (loss_modules, normalizer_from_calls,
                                             record_avg_factors)
from tests.conftest import mmdet_training_mode, toy_config

# mmdet's weight_reduce_loss divides by (avg_factor + eps) with float32's eps
EPS = torch.finfo(torch.float32).eps
FCOS_MODULES = ['bbox_head.loss_bbox', 'bbox_head.loss_centerness', 'bbox_head.loss_cls']


def build_model(cfg, dtype):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.to(dtype).eval()


def train_batches(cfg, batch_size, n):
    ds = build_scoring_dataset(cfg, 'annotations/instances_train.json', with_boxes=True)
    return BatchSequence(ds, batch_size, indices=range(n))


def without_targets(batch, i):
    """``batch`` with image ``i``'s ground truth removed (an image without boxes)."""
    batch = copy.deepcopy(batch)
    sample = batch['data_samples'][i]
    sample.gt_instances = sample.gt_instances[:0]
    return batch


@pytest.fixture(scope='module')
def fcos(shapes_coco):
    cfg = toy_config('fcos_shapes', shapes_coco)
    return cfg, build_model(cfg, torch.float64)


# ----------------------------------------------------------------------------- batch loss
# mmdet's batch loss samples anchors and RoIs from the global RNG, image after image; with
# samplers larger than any candidate set every candidate is taken and no RNG is drawn, so the
# batch and the per-image paths see the same samples. Fewer proposals keep it fast.
EXACT_SAMPLING = {
    'fcos_shapes': {},
    'faster_rcnn_shapes': {
        'model.train_cfg.rpn.sampler.num': 10 ** 6,
        'model.train_cfg.rcnn.sampler.num': 10 ** 6,
        'model.train_cfg.rpn_proposal.nms_pre': 200,
        'model.train_cfg.rpn_proposal.max_per_img': 50,
    },
}
# Float32 sums in a different order (batch vs image after image) on both: mmcv's CPU nms takes
# float32 only (Faster R-CNN fails in float64), and FCOS's head casts its box predictions to
# float32 (``.float()`` in ``forward_single``), so its box and centerness terms are float32
# even in a float64 model. Measured: 6e-8 (FCOS) and 8e-8 (Faster R-CNN) relative.
DECOMPOSITION = {'fcos_shapes': (torch.float64, 1e-6), 'faster_rcnn_shapes': (torch.float32, 1e-6)}


@pytest.mark.parametrize('name', sorted(DECOMPOSITION))
def test_per_image_losses_sum_to_mmdet_batch_loss_with_its_normaliser(name, shapes_coco):
    """With the batch's own avg_factors as the fixed normaliser, the per-image losses are each
    image's share of mmdet's batch loss: they sum to it."""
    dtype, rtol = DECOMPOSITION[name]
    cfg = toy_config(name, shapes_coco, **EXACT_SAMPLING[name])
    model = build_model(cfg, dtype)
    batch = train_batches(cfg, batch_size=4, n=4)[0]
    data = model.data_preprocessor(copy.deepcopy(batch), training=False)
    with torch.no_grad(), mmdet_training_mode(model), scoring_mode(), \
            record_avg_factors(model) as calls:
        expected = sum_detection_losses(model.loss(data['inputs'], data['data_samples']))
    # an anchor head calls its losses once per FPN level, all with the batch's one value
    assert all(len(set(values)) == 1 for values in calls.values()), calls
    batch_factors = {module: values[0] for module, values in calls.items()}
    assert set(batch_factors) == set(loss_modules(model))

    with torch.no_grad():
        shared = per_image_losses(model, batch, normalizer=LossNormalizer(batch_factors))
        own = per_image_losses(model, batch)
    torch.testing.assert_close(shared.sum(), expected, rtol=rtol, atol=0)
    # each image on its own counts is several times the batch loss: the check above can fail
    assert own.sum() > 2 * expected


# ----------------------------------------------------------------------------- measuring
def test_measured_normaliser_is_the_mean_of_per_image_counts(fcos):
    """FCOS: loss_cls by max(positives, 1), loss_centerness by positives (not called without
    any), loss_bbox by the centerness sum; each the mean over images, whatever the batches."""
    cfg, model = fcos
    data = list(train_batches(cfg, batch_size=3, n=7))  # batches of 3, 3 and 1 images
    data[0] = without_targets(data[0], 1)
    normalizer = measure_normalizer(model, data)

    head = model.bbox_head
    positives, centerness = [], []
    with torch.no_grad():
        preprocessed = [model.data_preprocessor(copy.deepcopy(b)) for b in data]
        assert len({p['inputs'].shape[-2:] for p in preprocessed}) == 1  # same points for all
        cls_scores, bbox_preds, _ = head(model.extract_feat(preprocessed[0]['inputs']))
        # targets in the dtype of the box predictions (float32, see above), as in the loss
        points = head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores],
                                                  dtype=bbox_preds[0].dtype, device='cpu')
        for batch in preprocessed:
            for sample in batch['data_samples']:
                labels, targets = head.get_targets(points, [sample.gt_instances])
                labels, targets = torch.cat(labels), torch.cat(targets)
                pos = labels < head.num_classes
                positives.append(int(pos.sum()))
                centerness.append(float(head.centerness_target(targets[pos]).sum()))
    n = len(positives)
    assert n == 7 and positives[1] == 0 and min(positives[:1] + positives[2:]) > 0
    expected = {
        'bbox_head.loss_cls': sum(max(p, 1) for p in positives) / n,
        'bbox_head.loss_centerness': sum(positives) / n,
        'bbox_head.loss_bbox': sum(centerness) / n,
    }
    assert sorted(normalizer.avg_factors) == FCOS_MODULES
    for module, value in expected.items():
        assert normalizer.avg_factors[module] == pytest.approx(value, rel=1e-9), module
    assert normalizer.num_images == 7
    assert normalizer.images_called == {'bbox_head.loss_cls': 7, 'bbox_head.loss_bbox': 6,
                                        'bbox_head.loss_centerness': 6}


def test_anchor_heads_count_each_image_once(shapes_coco):
    """An RPN calls its losses once per FPN level with one value; every sampler here fills
    its 128 samples, so each module's per-image normaliser is 128 (not 5 x 128)."""
    cfg = toy_config('faster_rcnn_shapes', shapes_coco)
    assert cfg.model.train_cfg.rpn.sampler.num == cfg.model.train_cfg.rcnn.sampler.num == 128
    model = build_model(cfg, torch.float32)
    normalizer = measure_normalizer(model, train_batches(cfg, batch_size=2, n=2))
    assert normalizer.avg_factors == {
        'rpn_head.loss_cls': 128.0, 'rpn_head.loss_bbox': 128.0,
        'roi_head.bbox_head.loss_cls': 128.0, 'roi_head.bbox_head.loss_bbox': 128.0}


# ----------------------------------------------------------------------------- using it
@pytest.mark.slow
def test_an_image_without_targets_is_divided_by_the_labeled_mean(fcos):
    """On its own counts, an image without boxes divides its background loss by 1; with the
    labeled mean, by the mean positives per image."""
    cfg, model = fcos
    normalizer = measure_normalizer(model, train_batches(cfg, batch_size=4, n=8))
    fixed = normalizer.avg_factors['bbox_head.loss_cls']
    batch = without_targets(train_batches(cfg, batch_size=4, n=4)[0], 0)
    with torch.no_grad():
        own = per_image_losses(model, batch)
        shared = per_image_losses(model, batch, normalizer=normalizer)
    # only the classification term is left without targets: sum / (1 + eps) on its own
    torch.testing.assert_close(shared[0], own[0] * (1 + EPS) / (fixed + EPS), rtol=1e-9, atol=0)
    assert fixed > 10 and shared[0] < own[0] / 10
    # an image with boxes is divided by the mean instead of its own counts too
    assert not torch.allclose(shared[1:], own[1:], rtol=1e-3)


def test_an_image_own_counts_as_normaliser_give_todays_loss(fcos):
    """Measured on one image, the normaliser is that image's own counts: its loss is today's
    (normalizer=None), still differentiable, and no hook stays behind."""
    cfg, model = fcos
    batch = train_batches(cfg, batch_size=1, n=1)[0]
    before = per_image_losses(model, batch)
    own = measure_normalizer(model, [batch])
    assert own.images_called == {m: 1 for m in FCOS_MODULES}
    with_own = per_image_losses(model, batch, normalizer=own)
    assert with_own.requires_grad
    torch.testing.assert_close(with_own, before, rtol=1e-12, atol=0)
    assert all(not m._forward_pre_hooks for m in loss_modules(model).values())
    torch.testing.assert_close(per_image_losses(model, batch, normalizer=None), before,
                               rtol=0, atol=0)


# ----------------------------------------------------------------------------- state, errors
def test_state_round_trip(fcos):
    cfg, model = fcos
    normalizer = measure_normalizer(model, train_batches(cfg, batch_size=2, n=2))
    state = json.loads(json.dumps(normalizer.to_dict()))
    again = LossNormalizer.from_dict(state)
    assert again.to_dict() == normalizer.to_dict() == normalizer.state_dict()
    batch = train_batches(cfg, batch_size=2, n=2)[0]
    torch.testing.assert_close(per_image_losses(model, batch, normalizer=again),
                               per_image_losses(model, batch, normalizer=normalizer),
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['mean'\]"):
        LossNormalizer.from_dict(dict(state, mean=1.0))


def test_a_module_without_a_value_is_an_error_naming_it_and_hooks_are_removed(fcos):
    cfg, model = fcos
    batch = train_batches(cfg, batch_size=2, n=2)[0]
    before = per_image_losses(model, batch)
    partial = LossNormalizer({'bbox_head.loss_cls': 20.0, 'bbox_head.loss_bbox': 10.0})
    with pytest.raises(ValueError, match="no avg_factor for loss module "
                                         "'bbox_head.loss_centerness' \\(CrossEntropyLoss\\)"):
        per_image_losses(model, batch, normalizer=partial)
    assert all(not m._forward_pre_hooks for m in loss_modules(model).values())
    torch.testing.assert_close(per_image_losses(model, batch), before, rtol=0, atol=0)
    foreign = LossNormalizer({'roi_head.bbox_head.loss_cls': 128.0})
    with pytest.raises(ValueError, match=r"\['roi_head.bbox_head.loss_cls'\], which are not "
                                         r"loss modules of this FCOS"):
        per_image_losses(model, batch, normalizer=foreign)
    with pytest.raises(TypeError, match=r"normalizer must be None or a LossNormalizer "
                                        r"\(measure_normalizer\), got 'labeled_mean'"):
        per_image_losses(model, batch, normalizer='labeled_mean')


@pytest.mark.parametrize('bad', [0.0, -1.0, float('nan'), float('inf'), '3'])
def test_bad_values_are_errors_naming_the_module(bad):
    with pytest.raises(ValueError, match="avg_factor of 'head.loss_x' must be a finite"):
        LossNormalizer({'head.loss_x': bad})


class _TwoLosses(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.loss_a = L1Loss()
        self.loss_b = L1Loss()


def test_calls_without_avg_factor_keep_their_own_reduction():
    """Only a given avg_factor is replaced, also when passed by position."""
    model = _TwoLosses()
    pred = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    target = torch.zeros_like(pred)
    normalizer = LossNormalizer({'loss_a': 4.0})
    with normalizer.applied(model):
        assert model.loss_a(pred, target) == pred.mean()  # mmdet's own 'mean'
        assert model.loss_a(pred, target, avg_factor=None) == pred.mean()
        torch.testing.assert_close(model.loss_a(pred, target, avg_factor=100.0),
                                   pred.sum() / (4.0 + EPS))
        torch.testing.assert_close(model.loss_a(pred, target, None, 100.0),
                                   pred.sum() / (4.0 + EPS))
        assert model.loss_b(pred, target) == pred.mean()
        with pytest.raises(ValueError, match="no avg_factor for loss module 'loss_b'"):
            model.loss_b(pred, target, avg_factor=2.0)
    torch.testing.assert_close(model.loss_a(pred, target, avg_factor=100.0),
                               pred.sum() / (100.0 + EPS))


def test_recorded_calls_become_a_normaliser_or_a_clear_error():
    model = _TwoLosses()
    x = torch.ones(2, 2)
    with record_avg_factors(model) as calls:
        model.loss_a(x, x, avg_factor=torch.tensor(3.0))
        model.loss_a(x, x, None, 3)
        model.loss_b(x, x)
    assert calls == {'loss_a': [3.0, 3.0], 'loss_b': [None]}
    # two images; loss_a not called on the second: it counts 0 there
    normalizer = normalizer_from_calls([calls, {'loss_b': [None]}])
    assert normalizer.to_dict() == dict(avg_factors={'loss_a': 1.5}, num_images=2,
                                        images_called={'loss_a': 1}, own_reduction=['loss_b'])
    with pytest.raises(ValueError, match=r"'loss_a' received different avg_factors within "
                                         r"image 0 \(\[2.0, 3.0\]\)"):
        normalizer_from_calls([{'loss_a': [3.0, 2.0]}])
    with pytest.raises(ValueError, match="'loss_a' was called both with and without"):
        normalizer_from_calls([{'loss_a': [3.0, None]}])
