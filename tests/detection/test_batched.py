"""The vectorised per-image losses (FCOS's in ``mmdet_isal.detection.specs.fcos``, checked by
``mmdet_isal.detection.batched``) against mmdet's own ``loss_by_feat`` called image by image
(float64, a bare FCOS head on random features)."""
import pytest
import torch
from torch import nn

from mmdet_isal.detection import SPECS, loss_mode, per_image_losses, scoring_mode
from mmdet_isal.detection.normalizer import LossNormalizer
from mmdet_isal.detection.specs import vectorised_loss_of
from mmdet_isal.detection.specs.fcos import FCOSSpec, fcos_group_losses, fcos_targets

STRIDES = [8, 16, 32]
SIZES = [(8, 10), (4, 5), (2, 3)]  # a 64 x 80 image: not square, so rows and columns differ


def fcos_head(**options):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = dict(type='FCOSHead', num_classes=3, in_channels=8, feat_channels=8,
               stacked_convs=1, strides=STRIDES,
               regress_ranges=((-1, 24), (24, 48), (48, 1e8)),
               norm_cfg=None, loss_bbox=dict(type='GIoULoss', loss_weight=1.0))
    cfg.update(options)
    torch.manual_seed(0)
    head = MODELS.build(cfg)
    head.init_weights()
    return head.double()


class Detector(nn.Module):
    """What the normaliser's hooks and the single-stage spec need: the head under its name in
    a model."""

    def __init__(self, head):
        super().__init__()
        self.bbox_head = head


SINGLE_STAGE = SPECS['SingleStageDetector']


def group_losses(head, outs, gts, normalizer, per_image):
    """The vectorised losses as per_image_losses asks for them: the single-stage spec's."""
    return SINGLE_STAGE.group_losses(Detector(head), outs, gts, normalizer, per_image)


def loss_path(head):
    return SINGLE_STAGE.loss_path(Detector(head))


def instances(boxes, labels):
    from mmengine.structures import InstanceData
    gt = InstanceData()
    gt.bboxes = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    gt.labels = torch.tensor(labels, dtype=torch.long)
    return gt


def group():
    """Four images: several boxes (two of equal area overlapping, one across the border, one
    large), none, one small box, and one box with no point inside its centre region."""
    return [instances([[4, 4, 30, 28], [10, 6, 36, 30], [50, 0, 90, 40], [0, 0, 64, 80]],
                      [0, 1, 2, 1]),
            instances([], []),
            instances([[20, 20, 34, 30]], [2]),
            instances([[1, 1, 2, 2]], [0])]


def feats(batch=4):
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(batch, 8, h, w, generator=gen, dtype=torch.float64) for h, w in SIZES]


def points(head):
    return head.prior_generator.grid_priors(SIZES, dtype=torch.float64, device='cpu')


@pytest.mark.parametrize('center_sampling', [True, False])
@pytest.mark.parametrize('norm_on_bbox', [True, False])
def test_fcos_targets_are_mmdets(center_sampling, norm_on_bbox):
    head = fcos_head(center_sampling=center_sampling, norm_on_bbox=norm_on_bbox,
                     center_sample_radius=1.5)
    gts = group()
    labels, targets = fcos_targets(head, points(head), SIZES, gts)
    ref_labels, ref_targets = head.get_targets(points(head), gts)  # per level, images joined
    num = [h * w for h, w in SIZES]
    mine_labels = torch.cat([part.reshape(-1) for part in labels.split(num, 1)])
    mine_targets = torch.cat([part.reshape(-1, 4) for part in targets.split(num, 1)])
    assert torch.equal(mine_labels, torch.cat(ref_labels))
    positive = mine_labels < head.num_classes
    assert 5 < int(positive.sum()) < len(positive) // 2  # the group has both, in quantity
    assert torch.equal(mine_targets[positive], torch.cat(ref_targets)[positive])


def per_image_reference(head, outs, gts):
    losses = []
    for i, gt in enumerate(gts):
        image = [[t[i:i + 1] for t in level] for level in outs]
        out = head.loss_by_feat(*image, [gt], [dict()], [gt[:0]])
        losses.append(out['loss_cls'] + out['loss_bbox'] + out['loss_centerness'])
    return torch.stack(losses)


# mmdet's CrossEntropyLoss computes in float32 whatever the model's dtype (label.float()), and
# float32 exp/log round differently in vectorised and scalar lanes, i.e. with the position of an
# element in its tensor: with it, the losses agree to float32 rounding only. With an L1 loss on
# the centerness every term is float64, and the comparison is exact to float64 rounding.
CENTERNESS = {'l1': (dict(type='L1Loss', loss_weight=1.0), 1e-12),
              'mmdet_default': (dict(type='CrossEntropyLoss', use_sigmoid=True,
                                     loss_weight=1.0), 1e-6)}


@pytest.mark.parametrize('centerness', sorted(CENTERNESS))
@pytest.mark.parametrize('fixed', [False, True])
def test_group_losses_gradients_and_hvps_are_mmdets_image_by_image(fixed, centerness):
    loss_centerness, rtol = CENTERNESS[centerness]
    head = fcos_head(center_sampling=True, norm_on_bbox=True, centerness_on_reg=True,
                     loss_centerness=loss_centerness)
    model = Detector(head)
    normalizer = LossNormalizer({'bbox_head.loss_cls': 3.5, 'bbox_head.loss_bbox': 1.25,
                                 'bbox_head.loss_centerness': 2.0}) if fixed else None
    applied = normalizer.applied(model) if fixed else torch.enable_grad()
    params = [head.conv_cls.weight, head.conv_reg.weight, head.conv_centerness.weight]
    gen = torch.Generator().manual_seed(2)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
    results = []
    with scoring_mode(), loss_mode(head), applied:
        outs = head(feats())
        gts = group()
        for losses in (fcos_group_losses(head, 'bbox_head.', outs, gts, normalizer),
                       per_image_reference(head, outs, gts)):
            grads = [torch.autograd.grad(loss, params, retain_graph=True) for loss in losses]
            total = torch.autograd.grad(losses.sum(), params, create_graph=True)
            hvp = torch.autograd.grad(sum((g * u).sum() for g, u in zip(total, v)), params,
                                      retain_graph=True)
            results.append((losses, grads, hvp))
    (mine, mine_grads, mine_hvp), (ref, ref_grads, ref_hvp) = results
    assert (mine > 0).all()
    torch.testing.assert_close(mine, ref, rtol=rtol, atol=0)
    for a, b in zip(mine_grads, ref_grads):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=100 * rtol, atol=100 * rtol * y.abs().max())
    assert ref_hvp[0].abs().max() > 0 and ref_hvp[1].abs().max() > 0
    for x, y in zip(mine_hvp, ref_hvp):
        torch.testing.assert_close(x, y, rtol=100 * rtol, atol=100 * rtol * y.abs().max())


def test_a_group_without_positives_keeps_the_regression_in_the_graph():
    """As mmdet's empty sums: zero gradients for the regression branch, not an error."""
    head = fcos_head()
    with scoring_mode(), loss_mode(head):
        outs = head(feats(2))
        losses = fcos_group_losses(head, '', outs, [instances([], []), instances([], [])])
        grad = torch.autograd.grad(losses.sum(), head.conv_reg.weight)[0]
    assert torch.equal(grad, torch.zeros_like(grad))
    torch.testing.assert_close(losses, per_image_reference(head, outs, [instances([], [])] * 2),
                               rtol=1e-12, atol=0)


def test_heads_the_vectorised_loss_does_not_reproduce_keep_mmdets():
    from mmdet.models.dense_heads import FCOSHead
    from mmdet.registry import MODELS

    class SameLoss(FCOSHead):
        pass

    class OwnLoss(FCOSHead):
        def loss_by_feat(self, *args, **kwargs):
            return super().loss_by_feat(*args, **kwargs)

    head = fcos_head()
    fcos = SPECS['FCOSHead'].vectorised_loss
    assert vectorised_loss_of(head) == fcos and loss_path(head) == 'vectorised'
    head.__class__ = SameLoss
    assert vectorised_loss_of(head) == fcos
    head.__class__ = OwnLoss
    assert vectorised_loss_of(head) is None
    assert loss_path(head) == 'per_image (no vectorised loss for OwnLoss with its loss modules)'
    head = fcos_head()
    head.loss_centerness = MODELS.build(dict(type='MSELoss'))  # not in ELEMENTWISE_LOSSES
    assert vectorised_loss_of(head) is None


def test_a_spec_inheriting_a_vectorised_loss_does_not_vouch_for_its_own_class(monkeypatch):
    """A spec for a subclass of FCOSHead, written by subclassing FCOSSpec, describes a class
    the vectorised loss was never checked against: its heads keep mmdet's per-image path."""
    from mmdet.models.dense_heads import FCOSHead

    class OwnLoss(FCOSHead):
        def loss_by_feat(self, *args, **kwargs):
            return super().loss_by_feat(*args, **kwargs)

    class OwnLossSpec(FCOSSpec):
        covers = 'OwnLoss'

    monkeypatch.setitem(SPECS, 'OwnLoss', OwnLossSpec())
    head = fcos_head()
    head.__class__ = OwnLoss
    assert vectorised_loss_of(head) is None


def test_a_vectorised_loss_that_disagrees_is_dropped_with_a_warning(monkeypatch):
    head = fcos_head()
    outs, gts = head(feats()), group()
    calls = []

    def wrong(head, prefix, outs, gts, normalizer):
        calls.append(1)
        return fcos_group_losses(head, prefix, outs, gts, normalizer) * 1.01

    monkeypatch.setattr(FCOSSpec, 'vectorised_loss',
                        lambda self, head, prefix, outs, gts, normalizer: wrong(
                            head, prefix, outs, gts, normalizer))
    with scoring_mode(), loss_mode(head):
        reference = lambda: per_image_reference(head, outs, gts)  # noqa: E731
        with pytest.warns(RuntimeWarning, match='differs from its per-image loss_by_feat'):
            assert group_losses(head, outs, gts, None, reference) is None
        assert group_losses(head, outs, gts, None, reference) is None
    assert len(calls) == 1  # checked once, then never called again for this head
    assert loss_path(head) == 'per_image (the vectorised loss differed from loss_by_feat)'


def test_the_first_group_is_checked_once_per_head_and_normalizer(monkeypatch):
    head = fcos_head()
    outs, gts = head(feats()), group()
    checks = []

    def reference():
        checks.append(1)
        return per_image_reference(head, outs, gts)

    with scoring_mode(), loss_mode(head):
        first = group_losses(head, outs, gts, None, reference)
        second = group_losses(head, outs, gts, None, reference)
    assert len(checks) == 1
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_per_image_losses_of_a_detector_equal_the_image_by_image_path(monkeypatch,
                                                                       shapes_coco):
    """End to end on the toy FCOS with pseudo-labels: per_image_losses, and the influence
    InfluenceScorer computes from them, do not change when the vectorised loss is removed."""
    from mmdet_isal.detection import BatchSequence, build_scoring_dataset, parameter_preset
    from mmdet_isal.detection import PseudoLabeler
    from mmdet_isal.influence import InfluenceScorer, LiSSA
    from tests.conftest import toy_config
    from tests.detection.test_losses import build_model
    cfg = toy_config('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0,
                                                    'model.test_cfg.max_per_img': 10})
    model = build_model(cfg, torch.float32)
    batch = BatchSequence(build_scoring_dataset(cfg, 'annotations/instances_train.json', False),
                          4, indices=range(4))[0]
    labeler = PseudoLabeler(score_thr=0.0)
    names = parameter_preset(model)
    params = {n: dict(model.named_parameters())[n] for n in names}
    gen = torch.Generator().manual_seed(3)
    s_test = [torch.randn(p.shape, generator=gen) for p in params.values()]

    def run():
        records = []
        losses = per_image_losses(model, batch, pseudo_label_fn=labeler, records=records)
        scorer = InfluenceScorer(model, params, lambda m, b: per_image_losses(
            m, b, pseudo_label_fn=labeler), LiSSA())
        return losses.detach(), scorer.score([batch], s_test), records

    losses, scores, records = run()
    assert SINGLE_STAGE.loss_path(model) == 'vectorised'
    monkeypatch.setattr(FCOSSpec, 'vectorisable', lambda self, head: False)
    ref_losses, ref_scores, _ = run()
    assert SINGLE_STAGE.loss_path(model).startswith('per_image')
    assert sum(r['num_targets'] for r in records) > 0
    torch.testing.assert_close(losses, ref_losses, rtol=1e-6, atol=0)
    torch.testing.assert_close(scores, ref_scores, rtol=1e-5,
                               atol=1e-6 * float(ref_scores.abs().max()))


def test_a_normaliser_without_every_loss_of_the_head_leaves_the_losses_to_mmdets_path():
    """The per-image path raises the normaliser's own error for a module it has no value for;
    the vectorised loss does not guess one."""
    head = fcos_head()
    partial_normalizer = LossNormalizer({'bbox_head.loss_cls': 2.0, 'bbox_head.loss_bbox': 1.0})
    full = LossNormalizer({'bbox_head.loss_cls': 2.0, 'bbox_head.loss_bbox': 1.0,
                           'bbox_head.loss_centerness': 2.0})
    outs, gts = head(feats()), group()
    with scoring_mode(), loss_mode(head):
        def reference():
            with full.applied(Detector(head)):
                return per_image_reference(head, outs, gts)
        assert group_losses(head, outs, gts, partial_normalizer, reference) is None
        assert group_losses(head, outs, gts, full, reference) is not None
