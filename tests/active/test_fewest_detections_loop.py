"""fewest_detections through the loop by name, with the selection diagnostics."""
import json
import os.path as osp

import pytest

from mmdet_isal.active import ActiveLearningLoop

pytestmark = pytest.mark.slow  # trains the tiny FCOS in the loop


def test_runs_one_step_of_the_loop_by_name(pool_coco, al_cfg, tmp_path, capfd):
    cfg = al_cfg(pool_coco, tmp_path, strategy='fewest_detections',
                 scorer=dict(score_thr=0.0105))
    cfg.merge_from_dict({'model.test_cfg.score_thr': 0.0, 'train_cfg.max_epochs': 1})
    ledger = ActiveLearningLoop(cfg).run()
    selection = ledger.steps[0]['selection']
    assert selection['picked_images'] == 6 and selection['picked_pseudo_boxes'] is not None
    ranked = ledger.ranking(0)
    counts = [ledger.images[i]['details'][0]['num_pseudo_boxes'] for i in ranked]
    assert counts == sorted(counts)
    with open(osp.join(tmp_path, 'summary.json')) as f:
        rows = json.load(f)
    assert rows[0]['picked_pseudo_boxes'] == selection['picked_pseudo_boxes']
    # the console shows a few lines per stage; mmengine's logs and config dumps are in the
    # steps' console.log
    out, err = capfd.readouterr()
    printed = (out + err).splitlines()
    assert len(printed) < 60, '\n'.join(printed)
    assert any('step_0 train:' in line and 'img/s' in line for line in printed)
    assert any('counting detections:' in line for line in printed)
    assert not any('Config:' in line for line in printed)
    with open(osp.join(tmp_path, 'step_0', 'console.log')) as f:
        log = f.read()
    assert 'Config:' in log and 'Epoch(train)' in log
