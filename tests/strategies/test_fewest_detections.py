"""The fewest_detections control: the same detections as ISAL's pseudo-labels, counted."""
import pytest

from mmdet_isal.detection import ScorerOptions, count_pseudo_boxes, score_pool
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies import SelectionContext
from tests.detection.test_losses import build_model

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


def _model(shapes_coco, toy_cfg):
    # untrained: scores near the prior 0.01; thresholds around it give varied counts
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    return cfg, build_model(cfg)


@pytest.mark.slow
def test_counts_are_isals_pseudo_boxes(shapes_coco, toy_cfg):
    cfg, model = _model(shapes_coco, toy_cfg)
    thr = 0.0105
    counts = count_pseudo_boxes(model, cfg, TRAIN, thr, batch_size=5)
    scores = score_pool(model, cfg, unlabeled_ann_file=TRAIN, reference_ann_file=VAL,
                        labeled_ann_file=TRAIN, seed=0,
                        # only the counts matter here: a fixed, safe LiSSA scale
                        scorer=ScorerOptions.from_dict(dict(score_thr=thr, hessian_images=4,
                                                            repeats=1, depth=1, scale=1000.0)))
    assert counts == {i: s['num_pseudo_boxes'] for i, s in scores.items()}
    assert len(set(counts.values())) > 3, counts  # the test data varies


@pytest.mark.slow
def test_orders_by_pseudo_boxes_with_ties_in_seed_order(shapes_coco, toy_cfg, tmp_path):
    cfg, model = _model(shapes_coco, toy_cfg)
    thr = 0.0105
    counts = count_pseudo_boxes(model, cfg, TRAIN, thr)
    strategy = STRATEGIES.build(dict(type='fewest_detections', _scope_=STRATEGIES.scope))

    def rank(seed, step=0):
        context = SelectionContext(
            model=model, cfg=cfg, unlabeled_ann_file=TRAIN, labeled_ann_file=TRAIN,
            reference_ann_file=VAL, work_dir=str(tmp_path), step=step, seed=seed,
            scorer=ScorerOptions.from_dict(dict(score_thr=thr)))
        return strategy.rank(context)

    ranking = rank(seed=1)
    assert sorted(ranking.order) == sorted(counts)
    ordered = [counts[i] for i in ranking.order]
    assert ordered == sorted(ordered)
    assert ranking.scores == {i: float(counts[i]) for i in counts}
    assert all(ranking.details[i]['num_pseudo_boxes'] == counts[i] for i in counts)
    # ties: same seed, same order; another seed reorders within ties but keeps the counts
    assert rank(seed=1).order == ranking.order
    other = rank(seed=2).order
    assert [counts[i] for i in other] == ordered and other != ranking.order
