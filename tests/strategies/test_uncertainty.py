"""entropy and least_confidence: the per-detection quantities, their per-image aggregation and
the ranking they give."""
import math

import pytest
import torch

from mmdet_isal.detection import ScorerOptions
from mmdet_isal.detection.features import detect_pool
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies import (SelectionContext, binary_entropy, image_entropy,
                                   image_least_confidence)
from tests.detection.test_losses import build_model

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


def test_binary_entropy_exact_values():
    h = binary_entropy(torch.tensor([0.0, 0.5, 1.0, 0.25]))
    expected = [0.0, math.log(2), 0.0, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    assert h.tolist() == pytest.approx(expected, abs=1e-12)


def test_image_aggregates():
    p = torch.tensor([0.9, 0.5, 0.2])
    h = [-(q * math.log(q) + (1 - q) * math.log(1 - q)) for q in (0.9, 0.5, 0.2)]
    assert image_entropy(p, 'max') == pytest.approx(math.log(2), abs=1e-7)
    assert image_entropy(p, 'mean') == pytest.approx(sum(h) / 3, abs=1e-7)
    assert image_entropy(p, 'sum') == pytest.approx(sum(h), abs=1e-7)
    assert image_entropy(torch.zeros(0)) == 0.0
    assert image_least_confidence(p) == pytest.approx(0.1, abs=1e-7)
    assert image_least_confidence(torch.zeros(0)) == 1.0
    with pytest.raises(ValueError, match='aggregate'):
        STRATEGIES.build(dict(type='entropy', aggregate='median', _scope_=STRATEGIES.scope))
    with pytest.raises(ValueError, match='score_thr'):
        STRATEGIES.build(dict(type='least_confidence', score_thr=1.5,
                              _scope_=STRATEGIES.scope))


@pytest.mark.slow
@pytest.mark.parametrize('name,score,descending', [
    ('entropy', lambda s: image_entropy(s, 'max'), True),
    ('least_confidence', image_least_confidence, True)])
def test_ranks_the_most_uncertain_images_first(name, score, descending, shapes_coco, toy_cfg,
                                               tmp_path):
    # untrained: scores near the prior 0.01, a threshold among them keeps varied detections
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    model = build_model(cfg)
    thr = 0.0105
    strategy = STRATEGIES.build(dict(type=name, _scope_=STRATEGIES.scope))
    context = SelectionContext(model=model, cfg=cfg, unlabeled_ann_file=TRAIN,
                               labeled_ann_file=VAL, reference_ann_file=VAL,
                               work_dir=str(tmp_path),
                               scorer=ScorerOptions.from_dict(dict(score_thr=thr)))
    ranking = strategy.rank(context)
    outputs = detect_pool(model, cfg, TRAIN)
    expected = {i: score(o.detections.scores[o.detections.scores >= thr])
                for i, o in outputs.items()}
    assert ranking.scores == expected
    assert len(set(expected.values())) > 3  # the test data varies
    ordered = [ranking.scores[i] for i in ranking.order]
    assert ordered == sorted(ordered, reverse=descending)
    assert all(ranking.details[i]['num_pseudo_boxes'] ==
               int((o.detections.scores >= thr).sum()) for i, o in outputs.items())
