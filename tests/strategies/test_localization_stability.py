"""Localization stability: the per-image formula, and its response to noise on a fixed model."""
import pytest
import torch

from mmdet_isal.detection import ScorerOptions
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies import SelectionContext, localization_stability
from tests.detection.test_losses import build_model

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


def test_stability_is_the_score_weighted_mean_best_iou():
    ref = torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.]])
    scores = torch.tensor([0.8, 0.2])
    level1 = torch.tensor([[0., 0., 10., 5.], [20., 20., 30., 30.], [50., 50., 60., 60.]])
    level2 = torch.zeros(0, 4)
    # C = ((0.5 + 0) / 2, (1 + 0) / 2) = (0.25, 0.5); S = (0.8 * 0.25 + 0.2 * 0.5) / 1.0
    assert localization_stability(ref, scores, [level1, level2]) == pytest.approx(0.3, abs=1e-12)
    assert localization_stability(ref, scores, [ref]) == pytest.approx(1.0, abs=1e-12)
    assert localization_stability(torch.zeros(0, 4), torch.zeros(0), [level1]) is None
    with pytest.raises(ValueError, match='at least one noise level'):
        localization_stability(ref, scores, [])
    with pytest.raises(ValueError, match='noise_levels'):
        STRATEGIES.build(dict(type='localization_stability', noise_levels=[8, 0],
                              _scope_=STRATEGIES.scope))


def _rank(levels, shapes_coco, toy_cfg, tmp_path, seed=0):
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    model = build_model(cfg)
    strategy = STRATEGIES.build(dict(type='localization_stability', noise_levels=levels,
                                     _scope_=STRATEGIES.scope))
    context = SelectionContext(model=model, cfg=cfg, unlabeled_ann_file=TRAIN,
                               labeled_ann_file=VAL, reference_ann_file=VAL,
                               work_dir=str(tmp_path), seed=seed,
                               scorer=ScorerOptions.from_dict(dict(score_thr=0.0)))
    return strategy.rank(context)


@pytest.mark.slow  # several noisy inference passes
def test_stability_is_lower_for_a_noisier_input(shapes_coco, toy_cfg, tmp_path):
    quiet = _rank([1e-4], shapes_coco, toy_cfg, tmp_path)
    mild = _rank([4.0], shapes_coco, toy_cfg, tmp_path)
    loud = _rank([64.0], shapes_coco, toy_cfg, tmp_path)
    scored = [i for i, s in quiet.scores.items() if s is not None]
    assert len(scored) > 10
    # next to no noise: the same boxes
    assert all(quiet.scores[i] == pytest.approx(1.0, abs=1e-3) for i in scored)

    def mean(r):
        return sum(r.scores[i] for i in scored) / len(scored)
    assert mean(loud) < mean(mild) < mean(quiet)
    assert sum(loud.scores[i] < mild.scores[i] for i in scored) > 0.8 * len(scored)
    # least stable first, unscored images last
    ordered = [loud.scores[i] for i in loud.order]
    known = [s for s in ordered if s is not None]
    assert known == sorted(known) and ordered[:len(known)] == known
    assert loud.info['num_without_reference_boxes'] == len(ordered) - len(known)
