"""Calibrated pseudo-labels (score_thr='auto'): the threshold keeps, on the labeled (Hessian)
images, as many detections as they hold true boxes (exactly, up to ties), says so when the
model's own test_cfg cuts below it, and is what ISAL and the baselines use; and
rank_by='influence_per_cost' orders by influence divided by the predicted cost."""
import pytest

from mmdet_isal.cost import CostModel
from mmdet_isal.detection import ScorerOptions, build_scoring_dataset, rank_by_influence
from mmdet_isal.detection.calibration import (calibrate, calibrate_on, detection_limits,
                                              hessian_subset, kth_largest_threshold)
from mmdet_isal.detection.features import detect_pool
from mmdet_isal.detection.scoring import score_pool
from mmdet_isal.strategies import FewestDetectionsStrategy
from mmdet_isal.strategies.base import SelectionContext
from tests.detection.test_losses import build_model

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


def test_kth_largest_threshold_by_hand():
    scores = [0.9, 0.2, 0.5, 0.7, 0.1]
    assert kth_largest_threshold(scores, 1) == (0.9, False)
    assert kth_largest_threshold(scores, 3) == (0.5, False)
    assert kth_largest_threshold(scores, 5) == (0.1, False)
    assert kth_largest_threshold(scores, 6) == (0.1, True)  # all kept, still too few
    assert kth_largest_threshold([], 2) == (0.0, True)
    with pytest.raises(ValueError, match='k must be >= 1'):
        kth_largest_threshold(scores, 0)


def test_calibration_hits_the_mean_true_boxes_exactly_up_to_ties():
    scores = [0.9, 0.8, 0.8, 0.6, 0.3, 0.3, 0.3, 0.05]
    # 4 images with 4 true boxes: keep 4 detections (>= 0.6), one per image
    cal = calibrate(scores, true_boxes=4, images=4)
    assert (cal.threshold, cal.kept, cal.capped) == (0.6, 4, False)
    assert cal.mean_kept == cal.mean_true_boxes == 1.0 and cal.note is None
    # 5 true boxes: the 5th score is tied with two more: all three are kept (7, not 5)
    tied = calibrate(scores, true_boxes=5, images=4)
    assert (tied.threshold, tied.kept) == (0.3, 7)
    # 9 true boxes, 8 detections: every detection kept, and the note says why
    capped = calibrate(scores, true_boxes=9, images=3, test_cfg={'score_thr': 0.05,
                                                                 'max_per_img': 100})
    assert capped.capped and capped.threshold == 0.05 and capped.kept == 8
    assert capped.test_cfg == {'score_thr': 0.05, 'max_per_img': 100}
    assert 'only 8 detections on the 3 labeled images, which hold 9 boxes' in capped.note
    assert 'score_thr=0.05, max_per_img=100' in capped.note
    with pytest.raises(ValueError, match="score_thr='auto' needs ground-truth boxes"):
        calibrate(scores, true_boxes=0, images=4)
    d = cal.to_dict()
    assert d['threshold'] == 0.6 and d['mean_true_boxes'] == 1.0 and d['capped'] is False


def test_the_hessian_subset_is_the_one_isal_draws():
    import numpy as np
    rng = np.random.default_rng(3)
    expected = sorted(rng.choice(40, 12, replace=False).tolist())
    assert hessian_subset(40, 12, 3) == expected
    assert hessian_subset(5, 12, 3) == [0, 1, 2, 3, 4]


def _cfg(toy_cfg, shapes_coco, **test_cfg):
    # an untrained FCOS: scores near its prior; with its own threshold at 0 it detects plenty
    return toy_cfg('fcos_shapes', shapes_coco, **{f'model.test_cfg.{k}': v
                                                  for k, v in test_cfg.items()})


@pytest.mark.slow
def test_on_a_detector_the_threshold_keeps_as_many_boxes_as_there_are(shapes_coco, toy_cfg):
    cfg = _cfg(toy_cfg, shapes_coco, score_thr=0.0)
    model = build_model(cfg)
    dataset = build_scoring_dataset(cfg, TRAIN, True)
    subset = hessian_subset(len(dataset), 10, seed=2)
    cal = calibrate_on(model, dataset, subset, batch_size=4)
    # counted independently: the true boxes of those images, and their detections
    true = sum(len(dataset[k]['data_samples'].gt_instances) for k in subset)
    ids = [dataset[k]['data_samples'].img_id for k in subset]
    dets = detect_pool(model, cfg, TRAIN, batch_size=3)
    kept = sum(int((dets[i].detections.scores >= cal.threshold).sum()) for i in ids)
    assert cal.true_boxes == true > 0 and cal.images == 10 and not cal.capped
    assert kept == cal.kept == true  # exactly: the scores have no ties here
    assert cal.detections == sum(len(dets[i].detections) for i in ids)
    assert detection_limits(model) == dict(score_thr=0.0, max_per_img=100)
    # the model's own cut below the calibration: one detection per image at most
    few = build_model(_cfg(toy_cfg, shapes_coco, score_thr=0.0, max_per_img=1))
    capped = calibrate_on(few, dataset, subset, batch_size=4)
    assert capped.capped and capped.detections == 10 < true
    assert 'max_per_img=1' in capped.note


@pytest.mark.slow
def test_isal_and_a_baseline_calibrate_alike(shapes_coco, toy_cfg):
    cfg = _cfg(toy_cfg, shapes_coco, score_thr=0.0)
    model = build_model(cfg)
    options = ScorerOptions.from_dict(dict(score_thr='auto', hessian_images=6, repeats=1,
                                           depth=2, power_iters=2, batch_size=4))
    diag = {}
    scores = score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                        labeled_ann_file=VAL, scorer=options, seed=1, diagnostics=diag)
    auto = diag['score_thr_auto']
    assert diag['score_thr'] == auto['threshold'] and auto['images'] == 6
    assert diag['options']['score_thr'] == 'auto' and diag['num_classes'] == 8
    # the pseudo boxes of the pool are the detections at that threshold
    dets = detect_pool(model, cfg, TRAIN, batch_size=4)
    assert {i: s['num_pseudo_boxes'] for i, s in scores.items()} == {
        i: int((o.detections.scores >= auto['threshold']).sum()) for i, o in dets.items()}
    # a baseline given 'auto' calibrates on the same labeled images: the same threshold
    context = SelectionContext(model=model, cfg=cfg, unlabeled_ann_file=TRAIN,
                               labeled_ann_file=VAL, reference_ann_file=VAL, work_dir='',
                               seed=1, scorer=options)
    ranking = FewestDetectionsStrategy().rank(context)
    assert ranking.info['score_thr'] == auto['threshold']
    assert ranking.info['score_thr_auto'] == auto
    assert ranking.details == {i: dict(num_pseudo_boxes=s['num_pseudo_boxes'])
                               for i, s in scores.items()}
    # a number stays a number, with no calibration
    fixed = FewestDetectionsStrategy(score_thr=0.02).rank(context)
    assert fixed.info['score_thr'] == 0.02 and 'score_thr_auto' not in fixed.info


def test_influence_per_cost_orders_by_influence_over_predicted_cost():
    cost = CostModel(per_image=8.0, per_box=7.0)
    scores = {1: dict(influence=-30.0, num_pseudo_boxes=6, status='scored'),  # / 50 = -0.6
              2: dict(influence=-12.0, num_pseudo_boxes=0, status='scored'),  # / 8 = -1.5
              3: dict(influence=-22.0, num_pseudo_boxes=2, status='scored'),  # / 22 = -1.0
              4: dict(influence=-2.9, num_pseudo_boxes=0, status='scored'),   # / 8 = -0.3625
              5: dict(influence=None, num_pseudo_boxes=0, status='unranked')}
    assert rank_by_influence(scores) == [1, 3, 2, 4, 5]
    assert rank_by_influence(scores, rank_by='influence_per_cost', cost=cost) == [2, 3, 1, 4, 5]
    # boxes for free: the per-box order at this cost is influence alone
    assert rank_by_influence(scores, rank_by='influence_per_cost',
                             cost=CostModel(1.0, 0.0)) == [1, 3, 2, 4, 5]
    per_cost = [scores[i]['influence'] / cost.image_seconds(scores[i]['num_pseudo_boxes'])
                for i in (2, 3, 1, 4)]
    assert per_cost == sorted(per_cost) == [-1.5, -1.0, -0.6, -0.3625]
    with pytest.raises(ValueError, match="influence_per_cost' needs the annotation cost"):
        rank_by_influence(scores, rank_by='influence_per_cost')


def test_auto_and_influence_per_cost_are_options():
    opts = ScorerOptions.from_dict(dict(score_thr='auto', rank_by='influence_per_cost'))
    assert opts.detection.score_thr == 'auto' and opts.to_dict()['score_thr'] == 'auto'
    with pytest.raises(ValueError, match=r"score_thr must be a number in \[0, 1\) or 'auto', "
                                         r"got 'Auto'"):
        ScorerOptions.from_dict(dict(score_thr='Auto'))
