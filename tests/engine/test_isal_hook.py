"""ISALHook in a stock mmdet config trained by mmengine's Runner; tools/score.py agrees."""
import json
import os
import os.path as osp
import runpy
import subprocess
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


@pytest.mark.slow  # the module's detector is trained (Runner.train)
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


@pytest.mark.slow  # the module's detector is trained (Runner.train)
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


def test_hook_parses_its_options_once_when_built():
    from mmdet_isal.detection import ScorerOptions
    from mmdet_isal.engine.hooks.isal_hook import ISALHook
    hook = ISALHook('pool.json', 'val.json', budget=3, scorer=SCORER)
    assert hook.options == ScorerOptions.from_dict(SCORER)
    assert ISALHook('pool.json', 'val.json', budget=0).options == ScorerOptions()
    with pytest.raises(ValueError, match=r'unknown key\(s\) in ISALHook: scorer: dampnig '
                                         r'\(did you mean damping\?\)'):
        ISALHook('pool.json', 'val.json', budget=3, scorer=dict(dampnig=0.1))
    with pytest.raises(ValueError, match=r'^ISALHook: scorer: repeats must be an integer >= 1, '
                                         r'got True'):
        ISALHook('pool.json', 'val.json', budget=3, scorer=dict(repeats=True))
    with pytest.raises(ValueError, match=r'^ISALHook: budget must be an integer >= 0, got True'):
        ISALHook('pool.json', 'val.json', budget=True)


def test_score_tool_refuses_a_missing_checkpoint(tmp_path):
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'score.py'),
         osp.join(ROOT, 'configs', 'toy', 'fcos_shapes.py'), str(tmp_path / 'nope.pth'),
         '--unlabeled', 'a.json', '--reference', 'b.json', '--out', str(tmp_path / 's.json')],
        capture_output=True, text=True)
    assert result.returncode != 0
    assert 'checkpoint file not found' in result.stderr and 'Traceback' not in result.stderr


@pytest.mark.slow
def test_hook_checks_its_annotation_files_before_training(shapes_coco, tmp_path):
    import shutil

    from mmengine.runner import Runner

    from mmdet_isal.datasets import AnnotationError
    from tests.conftest import toy_config
    with open(osp.join(shapes_coco, 'annotations', 'instances_train.json')) as f:
        coco = json.load(f)
    coco['annotations'][0]['category_id'] = 77  # not declared
    bad = str(tmp_path / 'bad_pool.json')
    with open(bad, 'w') as f:
        json.dump(coco, f)
    before = open(bad).read()
    cfg = toy_config('fcos_shapes', shapes_coco)
    cfg.custom_hooks = [dict(type='ISALHook', unlabeled_ann_file=bad,
                             reference_ann_file='annotations/instances_val.json', budget=2)]
    cfg.work_dir = str(tmp_path / 'run')
    with pytest.raises(AnnotationError, match='category_id is not declared'):
        Runner.from_cfg(cfg).train()
    assert not osp.exists(osp.join(cfg.work_dir, 'epoch_1.pth'))  # before any training
    assert open(bad).read() == before
    shutil.rmtree(cfg.work_dir)


@pytest.mark.slow  # the module's detector is trained (Runner.train)
def test_score_tool_names_a_malformed_pool_and_a_bad_option(trained, tmp_path):
    cfg, work_dir = trained
    config = osp.join(work_dir, 'fcos_shapes.py')
    cfg.dump(config)
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    bad = str(tmp_path / 'truncated.json')
    with open(bad, 'w') as f:
        f.write('{"images": [')
    args = [sys.executable, osp.join(ROOT, 'tools', 'score.py'), config, checkpoint,
            '--out', str(tmp_path / 's.json')]
    proc = subprocess.run(args + ['--unlabeled', bad], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert f'score.py: error: {bad} is not valid JSON' in proc.stderr
    proc = subprocess.run(args + ['--unlabeled', 'annotations/instances_train.json',
                                  '--cfg-options', 'active_learning.scorer.dampnig=0.1'],
                          capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert 'dampnig' in proc.stderr and not osp.exists(tmp_path / 's.json')
