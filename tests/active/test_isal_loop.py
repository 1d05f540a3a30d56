"""ISAL in the loop end to end: score_pool on the tiny FCOS, ranking and selection recorded.

Needs mmdet_isal.detection.score_pool (issue 4); without it this test fails, it is not
skipped.
"""
import pytest

from mmdet_isal.active import ActiveLearningLoop

pytestmark = pytest.mark.slow  # every test trains the tiny detectors in the loop

TINY_SCORER = dict(hessian_images=4, repeats=1, depth=2, power_iters=2, batch_size=4)


@pytest.mark.parametrize('detector', ['fcos_shapes', 'faster_rcnn_shapes'])
def test_isal_two_step_loop(detector, al_cfg, pool_coco, tmp_path):
    # thresholds at 0: every detection is a pseudo box, so that every image is scored
    cfg = al_cfg(pool_coco, tmp_path, detector=detector, strategy='isal',
                 scorer=dict(TINY_SCORER, score_thr=0.0))
    cfg.merge_from_dict({f'model.{k}score_thr': 0.0 for k in (
        ('test_cfg.rcnn.',) if detector == 'faster_rcnn_shapes' else ('test_cfg.',))})
    ledger = ActiveLearningLoop(cfg).run()

    order = ledger.ranking(0)
    assert sorted(order) == sorted(ledger.unlabeled_ids(0)) and len(order) == 32
    scores = [ledger.images[i]['scores'][0] for i in order]
    finite = [s for s in scores if s is not None]
    assert finite and finite == sorted(finite)  # most negative influence first
    assert scores == finite + [None] * (len(scores) - len(finite))  # unscored ones last
    assert set(ledger.selected_at(1)) == set(order[:6])
    assert all(isinstance(ledger.images[i]['details'][0]['num_pseudo_boxes'], int)
               for i in order)
    step0 = ledger.steps[0]
    assert step0['num_scored'] + step0['num_unscored'] == 32
    assert step0['strategy_info']['num_pool_images'] == 32
    step1 = ledger.steps[1]
    assert step1['finished'] and step1['bbox_mAP'] == step1['metrics']['coco/bbox_mAP']
