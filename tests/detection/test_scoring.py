"""ISAL scoring on tiny detectors: presets, LiSSA against the exact inverse, pool scores."""
import pytest
import torch

from mmdet_isal.detection import (PseudoLabeler, ScorerOptions, parameter_preset, per_image_losses,
                                  rank_by_influence, score_pool)
from mmdet_isal.influence import ExactInverse, InfluenceScorer, LiSSA
from tests.detection.test_losses import batches, build_model

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


def test_presets_follow_the_paper(shapes_coco, toy_cfg):
    fcos = build_model(toy_cfg('fcos_shapes', shapes_coco))
    frcnn = build_model(toy_cfg('faster_rcnn_shapes', shapes_coco))
    assert parameter_preset(fcos) == [
        'bbox_head.conv_cls.weight', 'bbox_head.conv_reg.weight',
        'bbox_head.conv_centerness.weight']
    assert parameter_preset(frcnn) == [
        'rpn_head.rpn_cls.weight', 'rpn_head.rpn_reg.weight',
        'roi_head.bbox_head.fc_cls.weight', 'roi_head.bbox_head.fc_reg.weight']
    assert 'bbox_head.conv_cls.bias' in parameter_preset(fcos, include_bias=True)


@pytest.mark.slow
def test_retinanet_gets_its_final_layers(shapes_coco, toy_cfg):
    cfg = toy_cfg('fcos_shapes', shapes_coco)
    cfg.model.bbox_head = dict(
        type='RetinaHead', num_classes=8, in_channels=32, feat_channels=16, stacked_convs=1,
        anchor_generator=dict(type='AnchorGenerator', octave_base_scale=2, scales_per_octave=1,
                              ratios=[1.0], strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[.0] * 4,
                        target_stds=[1.0] * 4),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25,
                      loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=1.0))
    cfg.model.type = 'RetinaNet'
    cfg.model.train_cfg = dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0,
                      ignore_iof_thr=-1),
        sampler=dict(type='PseudoSampler'), allowed_border=-1, pos_weight=-1, debug=False)
    cfg.model.test_cfg = dict(nms_pre=100, min_bbox_size=0, score_thr=0.05,
                              nms=dict(type='nms', iou_threshold=0.5), max_per_img=50)
    model = build_model(cfg)
    assert parameter_preset(model) == ['bbox_head.retina_cls.weight',
                                       'bbox_head.retina_reg.weight']
    scores = score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                        labeled_ann_file=TRAIN, seed=0,
                        scorer=ScorerOptions.from_dict(dict(
                            hessian_images=4, repeats=1, depth=2, power_iters=2,
                            no_pseudo_boxes='score')))
    assert len(scores) == 24
    assert all(s['influence'] is not None for s in scores.values())


@pytest.mark.slow  # builds the whole Hessian of the FCOS head (about a minute)
def test_lissa_agrees_with_the_exact_inverse_on_the_fcos_head(shapes_coco, toy_cfg):
    # A head slim enough for the exact Hessian (feat_channels 4). At initialisation the
    # regression layer sees strong negative curvature (exp and IoU loss, eigenvalues near -5.6),
    # where no damped inverse is meaningful; classification and centerness are nearly convex
    # (smallest eigenvalue about -0.07), so lambda = 0.05 * scale makes H + lambda I positive
    # definite with a condition number near 15.
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'model.bbox_head.feat_channels': 4,
                                                'model.bbox_head.norm_cfg.num_groups': 2})
    model = build_model(cfg, torch.float64)
    # The selected parameters are in the head, so backbone features are constants: compute
    # them once per input (this keeps ~600 Hessian-vector products to seconds).
    extract, cache = model.extract_feat, {}
    model.extract_feat = lambda x: cache.setdefault(
        (tuple(x.shape), x.sum().item()), tuple(f.detach() for f in extract(x)))
    names = ['bbox_head.conv_cls.weight', 'bbox_head.conv_centerness.weight']
    data = [batches(cfg, n=4)[0]]
    reference = [batches(cfg, VAL, n=4)[0]]
    exact = InfluenceScorer(model, names, per_image_losses, ExactInverse(damping=0.0))
    v = exact.reference_gradient(reference, reduction='mean')
    lissa = LiSSA(damping=0.05, scale='auto', depth=300, repeats=1, seed=0, power_iters=10)
    s_lissa = InfluenceScorer(model, names, per_image_losses, lissa).inverse_hvp(v, data)
    exact.ihvp = ExactInverse(damping=lissa.lambda_)
    s_exact = exact.inverse_hvp(v, data)
    eigenvalues = torch.linalg.eigvalsh(exact.ihvp.hessian_)
    assert eigenvalues[0] + lissa.lambda_ > 0 and eigenvalues[-1] > 10 * lissa.lambda_
    flat = lambda s: torch.cat([t.flatten() for t in s])  # noqa: E731
    cosine = torch.nn.functional.cosine_similarity(flat(s_lissa), flat(s_exact), dim=0)
    assert cosine >= 0.99, f'cosine {cosine:.4f}, LiSSA scale {lissa.scale_}'
    # and the inverse matters: s_test is not just the gradient direction
    assert torch.nn.functional.cosine_similarity(flat(v), flat(s_exact), dim=0) < 0.95


@pytest.mark.slow
@pytest.mark.parametrize('name', ['fcos_shapes',
                                  pytest.param('faster_rcnn_shapes', marks=pytest.mark.slow)])
def test_score_pool_scores_every_image_and_is_batch_invariant(name, shapes_coco, toy_cfg):
    cfg = toy_cfg(name, shapes_coco)
    model = build_model(cfg)
    # an untrained detector detects nothing above 0.1: score the background losses
    options = ScorerOptions.from_dict(dict(hessian_images=8, repeats=2, depth=3, power_iters=3,
                                           no_pseudo_boxes='score'))
    diag = {}
    scores = score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                        labeled_ann_file=TRAIN, scorer=options.replace(dict(batch_size=4)),
                        seed=1, diagnostics=diag)
    again = score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                       labeled_ann_file=TRAIN, scorer=options.replace(dict(batch_size=3)),
                       seed=1)
    assert list(scores) == list(range(1, 25))
    values = torch.tensor([scores[i]['influence'] for i in scores], dtype=torch.float64)
    other = torch.tensor([again[i]['influence'] for i in scores], dtype=torch.float64)
    assert torch.isfinite(values).all() and values.std() > 0
    torch.testing.assert_close(values, other, rtol=1e-6, atol=1e-12)
    assert diag['num_pool_images'] == 24 and diag['num_hessian_images'] == 8
    assert len(diag['solver']['trace']) == 2 and len(diag['solver']['trace'][0]) == 3
    assert diag['solver']['lambda_'] == pytest.approx(0.01 * diag['solver']['scale'])
    assert not model.training


@pytest.mark.slow
def test_images_without_pseudo_boxes_can_be_scored_by_their_background_loss(shapes_coco,
                                                                            toy_cfg):
    cfg = toy_cfg('fcos_shapes', shapes_coco)
    model = build_model(cfg)
    diag = {}
    scores = score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                        labeled_ann_file=TRAIN, seed=0, diagnostics=diag,
                        scorer=ScorerOptions.from_dict(dict(
                            score_thr=0.999999, hessian_images=4, repeats=1, depth=2,
                            power_iters=2, no_pseudo_boxes='score')))
    assert diag['num_without_pseudo_boxes'] == 24 and diag['num_unranked'] == 0
    assert all(s['num_pseudo_boxes'] == 0 and s['influence'] is not None and
               s['status'] == 'scored' for s in scores.values())
    assert len(set(s['influence'] for s in scores.values())) > 1  # not a constant


@pytest.mark.slow  # three scoring passes
def test_images_without_pseudo_boxes_are_left_unranked_by_default(shapes_coco, toy_cfg):
    """The paper's rule: no influence for them; they rank after every scored image."""
    # an untrained detector's scores are near its prior (0.01): with both thresholds at 0,
    # every image gets detections and pseudo boxes
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    model = build_model(cfg)
    options = ScorerOptions.from_dict(dict(hessian_images=4, repeats=1, depth=2, power_iters=2,
                                           score_thr=0.0))
    diag = {}
    scores = score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                        labeled_ann_file=TRAIN, seed=0, diagnostics=diag, scorer=options)
    assert diag['num_unranked'] == 0 and all(s['status'] == 'scored' for s in scores.values())
    none = score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                      labeled_ann_file=TRAIN, seed=0, diagnostics=diag,
                      scorer=options.replace(dict(score_thr=0.999999)))
    assert diag['num_unranked'] == diag['num_without_pseudo_boxes'] == 24
    assert all(s['influence'] is None and s['status'] == 'unranked' for s in none.values())


def test_unranked_images_come_after_scored_ones_in_an_order_of_the_seed_only():
    scored = {i: dict(influence=float(v), num_pseudo_boxes=3, status='scored')
              for i, v in [(7, 0.5), (3, -2.0), (11, -0.1)]}
    unranked = {i: dict(influence=None, num_pseudo_boxes=0, status='unranked')
                for i in range(20, 40)}
    bad = {99: dict(influence=None, num_pseudo_boxes=2, status='nonfinite')}
    scores = {**unranked, **scored, **bad}
    order = rank_by_influence(scores, seed=4)
    assert order[:3] == [3, 11, 7] and order[-1] == 99
    assert sorted(order[3:-1]) == list(range(20, 40))
    # the same seed gives the same order whatever the scores and the pool order
    shuffled = dict(reversed(list({**scores, 7: dict(scored[7], influence=-9.0)}.items())))
    again = rank_by_influence(shuffled, seed=4)
    assert again[:3] == [7, 3, 11] and again[3:] == order[3:]
    # another seed, another order
    assert rank_by_influence(scores, seed=5)[3:-1] != order[3:-1]


def test_influence_per_box_ranks_value_for_cost():
    scores = {1: dict(influence=-6.0, num_pseudo_boxes=6, status='scored'),   # -1 per box
              2: dict(influence=-3.0, num_pseudo_boxes=1, status='scored'),   # -3 per box
              3: dict(influence=-4.0, num_pseudo_boxes=2, status='scored'),   # -2 per box
              4: dict(influence=1.0, num_pseudo_boxes=0, status='scored')}    # +1 (0 -> 1)
    assert rank_by_influence(scores) == [1, 3, 2, 4]
    assert rank_by_influence(scores, rank_by='influence_per_box') == [2, 3, 1, 4]
    with pytest.raises(ValueError, match='rank_by must be one of'):
        rank_by_influence(scores, rank_by='boxes')


def test_rank_by_influence_puts_most_negative_first_and_nonfinite_last():
    scores = {5: dict(influence=0.3), 2: dict(influence=-1.0), 9: dict(influence=None),
              1: dict(influence=-1.0)}
    assert rank_by_influence(scores) == [1, 2, 5, 9]


@pytest.mark.slow
def test_bad_options_are_errors_naming_them(shapes_coco, toy_cfg):
    with pytest.raises(ValueError, match=r"unknown key\(s\) in scorer: dampnig \(did you mean "
                                         r"damping\?\)"):
        ScorerOptions.from_dict(dict(dampnig=0.1))
    with pytest.raises(ValueError, match='repeats must be an integer >= 1'):
        ScorerOptions.from_dict(dict(repeats=0))
    with pytest.raises(ValueError, match='score_thr'):
        PseudoLabeler(1.5)
    with pytest.raises(ValueError, match="no_pseudo_boxes must be one of .*'skip'"):
        ScorerOptions.from_dict(dict(no_pseudo_boxes='skip'))
    with pytest.raises(ValueError, match="loss_normalizer must be one of .*'batch'"):
        ScorerOptions.from_dict(dict(loss_normalizer='batch'))
    cfg = toy_cfg('fcos_shapes', shapes_coco)
    model = build_model(cfg)
    with pytest.raises(ValueError, match='bbox_head.conv_nothing'):
        score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                   labeled_ann_file=TRAIN,
                   scorer=ScorerOptions.from_dict(dict(params=['bbox_head.conv_nothing'])))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        score_pool(model, cfg, unlabeled_ann_file='missing.json', reference_ann_file=VAL,
                   labeled_ann_file=TRAIN)
    # score_pool takes the parsed options: a flat dict is parsed once, at the boundary
    with pytest.raises(TypeError, match='ScorerOptions.from_dict'):
        score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                   labeled_ann_file=TRAIN, scorer=dict(repeats=1))
