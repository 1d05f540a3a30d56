"""Each comparison strategy runs one step of the active-learning loop by name."""
import pytest

from mmdet_isal.active import ActiveLearningLoop
from tests.active.conftest import al_config


@pytest.mark.slow  # the loop trains a detector
@pytest.mark.parametrize('strategy', [
    'entropy', 'least_confidence', 'coreset',
    dict(type='localization_stability', noise_levels=[16, 48])])
def test_runs_one_step_of_the_loop_by_name(strategy, shapes_coco, tmp_path):
    cfg = al_config(shapes_coco, tmp_path, strategy=strategy, scorer=dict(score_thr=0.0))
    cfg.merge_from_dict({'model.test_cfg.score_thr': 0.0, 'train_cfg.max_epochs': 1})
    ledger = ActiveLearningLoop(cfg).run()
    assert ledger.steps[0]['finished'] and ledger.steps[1]['finished']
    ranked = ledger.ranking(0)
    assert len(ranked) == 24 - 8 and ledger.steps[0]['num_scored'] == len(ranked)
    scores = [ledger.images[i]['scores'][0] for i in ranked]
    # every strategy's order follows its scores (localization stability: lowest first)
    ascending = (strategy if isinstance(strategy, str) else strategy['type']) == \
        'localization_stability'
    assert scores == sorted(scores, reverse=not ascending)
    assert set(ledger.labeled_ids(1)) == set(ledger.labeled_ids(0)) | set(ranked[:6])
    assert ledger.steps[0]['selection']['picked_pseudo_boxes'] is not None
