"""ISALHook in a stock mmdet config trained by mmengine's Runner; tools/score.py agrees."""
import json
import os.path as osp
import runpy
import sys

import pytest

from tests.conftest import ROOT

# score_thr 0 (and the detector's own threshold 0): every detection is a pseudo box, so every
# image of this briefly trained detector is scored (none is left unranked)
SCORER = dict(hessian_images=6, repeats=2, depth=3, power_iters=3, batch_size=4, score_thr=0.0)


@pytest.fixture(scope='module')
def trained(shapes_coco, tmp_path_factory):
    from mmengine.runner import Runner
    from tests.conftest import toy_config
    work_dir = str(tmp_path_factory.mktemp('hook_run'))
    cfg = toy_config('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    assert cfg._cfg_dict.get('custom_imports')['imports'] == ['mmdet_isal']
    cfg.custom_hooks = [dict(type='ISALHook', unlabeled_ann_file='annotations/instances_train.json',
                             reference_ann_file='annotations/instances_val.json', budget=5,
                             scorer=SCORER, seed=0)]
    cfg.work_dir = work_dir
    runner = Runner.from_cfg(cfg)
    runner.train()
    return cfg, work_dir


def test_hook_writes_scores_and_selection(trained):
    cfg, work_dir = trained
    scores = json.load(open(osp.join(work_dir, 'isal', 'scores.json')))
    selection = json.load(open(osp.join(work_dir, 'isal', 'selection.json')))
    images = {r['image_id']: r for r in scores['images']}
    assert sorted(images) == list(range(1, 25))
    assert all(isinstance(r['num_pseudo_boxes'], int) for r in images.values())
    assert all(r['status'] == 'scored' for r in images.values())
    assert scores['summary']['solver']['scale'] > 0
    assert selection['budget'] == 5 and len(selection['image_ids']) == 5
    chosen = [images[i]['influence'] for i in selection['image_ids']]
    rest = [r['influence'] for i, r in images.items() if i not in selection['image_ids']]
    assert chosen == sorted(chosen) and max(chosen) <= min(rest)


def test_score_tool_reproduces_the_hook_from_the_checkpoint(trained, tmp_path, monkeypatch):
    cfg, work_dir = trained
    config = osp.join(work_dir, 'fcos_shapes.py')
    cfg.dump(config)
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    out = str(tmp_path / 'scores.json')
    monkeypatch.setattr(sys, 'argv', [
        'score.py', config, checkpoint, '--unlabeled', 'annotations/instances_train.json',
        '--reference', 'annotations/instances_val.json', '--out', out, '--budget', '5',
        '--cfg-options', *[f'active_learning.scorer.{k}={v}' for k, v in SCORER.items()]])
    runpy.run_path(osp.join(ROOT, 'tools', 'score.py'), run_name='__main__')
    hook = {r['image_id']: r for r in json.load(open(osp.join(work_dir, 'isal', 'scores.json')))['images']}
    tool = {r['image_id']: r for r in json.load(open(out))['images']}
    assert hook.keys() == tool.keys()
    for i in hook:
        assert tool[i]['num_pseudo_boxes'] == hook[i]['num_pseudo_boxes']
        assert tool[i]['influence'] == pytest.approx(hook[i]['influence'], rel=1e-5, abs=1e-9)
    assert json.load(open(tmp_path / 'selection.json'))['image_ids'] == json.load(
        open(osp.join(work_dir, 'isal', 'selection.json')))['image_ids']


def test_score_tool_refuses_a_missing_checkpoint(tmp_path):
    import subprocess
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'score.py'),
         osp.join(ROOT, 'configs', 'toy', 'fcos_shapes.py'), str(tmp_path / 'nope.pth'),
         '--unlabeled', 'a.json', '--reference', 'b.json', '--out', str(tmp_path / 's.json')],
        capture_output=True, text=True)
    assert result.returncode != 0
    assert 'checkpoint file not found' in result.stderr and 'Traceback' not in result.stderr
