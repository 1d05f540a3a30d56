"""Distributed training, scoring and the loop on CPU with gloo, 2 processes (torchrun).

These run the shipped launch scripts (tools/dist_*.sh) as a user would; each launch starts two
Python processes, so the module takes a minute or two on 2 cores.
"""
import json
import os
import os.path as osp
import runpy
import socket
import subprocess
import sys
import time

import pytest
import torch

from mmdet_isal.detection import run_isal
from tests.conftest import ROOT, toy_config

pytestmark = pytest.mark.slow  # 2-process runs (torchrun, gloo), a minute each; some train

WORKER = osp.join(ROOT, 'tests', 'distributed', 'score_worker.py')
POOL = 'annotations/instances_train.json'
# the biases of the FCOS head's last layers: few parameters, so that the exact solver is cheap
PARAMS = ['bbox_head.conv_cls.bias', 'bbox_head.conv_reg.bias', 'bbox_head.conv_centerness.bias']
EXACT = dict(solver='exact', params=PARAMS, hessian_images=8, batch_size=3,
             hessian_batch_size=2, score_thr=0.0, damping=0.1)
# LiSSA for the runs that train first (2-process CPU trainings differ from run to run): a
# fixed scale let single 2-image batches diverge now and then, and so did scale='auto' from a
# few power iterations before it doubled the scale after a divergence; the processes must
# also agree on those restarts
LISSA_AUTO = dict(EXACT, solver='lissa', repeats=2, depth=2, scale='auto', power_iters=3)
TIMEOUT = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', PYTHON=sys.executable,
                PORT=str(_free_port()))


def _run(cmd, timeout=TIMEOUT):
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    return proc, time.monotonic() - start


def _check(proc):
    assert proc.returncode == 0, f'exit {proc.returncode}\n{proc.stdout[-3000:]}\n' \
                                 f'{proc.stderr[-6000:]}'


@pytest.fixture(scope='module')
def checkpoint(shapes_coco, tmp_path_factory):
    """A config file and a checkpoint of a tiny FCOS (seeded random weights; thresholds 0 so
    that every image gets pseudo boxes)."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    out = tmp_path_factory.mktemp('dist')
    cfg = toy_config('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    cfg.active_learning = dict(scorer=EXACT)
    cfg.pool_ann_file = POOL
    config = str(out / 'fcos_dist.py')
    cfg.dump(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    path = str(out / 'model.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return config, path


def _scores(path):
    with open(path) as f:
        return {r['image_id']: r for r in json.load(f)['images']}


def test_two_processes_score_and_select_as_one(checkpoint, tmp_path):
    """tools/dist_score.sh on 2 processes against tools/score.py on one: the same scores
    (rel 1e-5, exact solver) and the same selection."""
    config, ckpt = checkpoint
    one, two = tmp_path / 'one', tmp_path / 'two'
    args = ['--unlabeled', POOL, '--budget', '7', '--seed', '3']
    sys_argv = sys.argv
    try:
        sys.argv = ['score.py', config, ckpt, '--out', str(one / 'scores.json'), *args]
        runpy.run_path(osp.join(ROOT, 'tools', 'score.py'), run_name='__main__')
    finally:
        sys.argv = sys_argv
    proc, _ = _run(['bash', 'tools/dist_score.sh', config, ckpt, '2', '--out',
                    str(two / 'scores.json'), *args])
    _check(proc)
    a, b = _scores(one / 'scores.json'), _scores(two / 'scores.json')
    assert list(a) == list(b) == list(range(1, 25))  # gathered in pool order
    assert all(r['status'] == 'scored' for r in a.values())
    x = torch.tensor([a[i]['influence'] for i in a], dtype=torch.float64)
    y = torch.tensor([b[i]['influence'] for i in a], dtype=torch.float64)
    assert x.std() > 0
    torch.testing.assert_close(y, x, rtol=1e-5, atol=1e-5 * float(x.abs().max()))
    with open(one / 'selection.json') as f1, open(two / 'selection.json') as f2:
        assert json.load(f1)['image_ids'] == json.load(f2)['image_ids']
    with open(two / 'scores.json') as f:
        assert json.load(f)['summary']['world_size'] == 2
    assert not osp.exists(one / 'lissa_1.json')  # the tool wrote only its own files


def test_lissa_repeats_spread_over_processes_are_deterministic(checkpoint, tmp_path):
    """With LiSSA each process runs its own repeats (the result depends on the seed, not on
    the world size); two runs at world size 2 agree exactly and with one process."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.runner import load_checkpoint

    from tests.distributed.score_worker import LISSA
    config, ckpt = checkpoint
    proc, _ = _run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                    '--master_port', str(_free_port()), WORKER, config, ckpt, str(tmp_path),
                    'score'])
    _check(proc)
    runs = []
    for k in (1, 2):
        with open(tmp_path / f'lissa_{k}.json') as f:
            runs.append(json.load(f))
    assert runs[0]['world_size'] == 2
    assert runs[0]['scores'] == runs[1]['scores'] and runs[0]['order'] == runs[1]['order']
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, ckpt, map_location='cpu')
    alone = run_isal(model, cfg, unlabeled_ann_file=POOL, scorer=LISSA, seed=3)
    x = torch.tensor([r['influence'] for _, r in runs[0]['scores']], dtype=torch.float64)
    y = torch.tensor([alone.scores[i]['influence'] for i, _ in runs[0]['scores']],
                     dtype=torch.float64)
    torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4 * float(y.abs().max()))


def test_a_failing_process_ends_the_job_naming_its_rank(checkpoint, tmp_path):
    config, ckpt = checkpoint
    proc, seconds = _run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
                          '2', '--master_port', str(_free_port()), WORKER, config, ckpt,
                          str(tmp_path), 'fail'], timeout=120)
    assert proc.returncode != 0
    assert 'process rank 1 (of 2) failed: RuntimeError: injected failure' in proc.stderr
    assert seconds < 120


def test_dist_train_with_the_hook_on_two_processes(shapes_coco, tmp_path):
    cfg = toy_config('fcos_shapes', shapes_coco, **{'model.test_cfg.score_thr': 0.0})
    cfg.randomness = dict(seed=0)
    cfg.custom_hooks = [dict(type='ISALHook', unlabeled_ann_file=POOL,
                             reference_ann_file='annotations/instances_val.json', budget=5,
                             scorer=LISSA_AUTO, seed=0)]
    config = str(tmp_path / 'fcos_hook.py')
    cfg.dump(config)
    work_dir = tmp_path / 'run'
    proc, _ = _run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', str(work_dir)])
    _check(proc)
    with open(work_dir / 'isal' / 'selection.json') as f:
        selection = json.load(f)
    with open(work_dir / 'isal' / 'scores.json') as f:
        summary = json.load(f)['summary']
    assert len(selection['image_ids']) == 5 and summary['world_size'] == 2
    assert summary['num_pool_images'] == 24 and len(summary['solver']['trace']) == 2
    assert osp.isfile(work_dir / 'epoch_1.pth')


def test_dist_al_loop_runs_two_steps_on_two_processes(shapes_coco, tmp_path):
    from tests.active.conftest import al_config
    work_dir = tmp_path / 'loop'
    cfg = al_config(shapes_coco, work_dir, strategy='isal', scorer=LISSA_AUTO)
    cfg.merge_from_dict({'model.test_cfg.score_thr': 0.0, 'train_cfg.max_epochs': 1})
    config = str(tmp_path / 'al.py')
    cfg.dump(config)
    proc, _ = _run(['bash', 'tools/dist_al_loop.sh', config, '2', '--work-dir', str(work_dir)])
    _check(proc)
    with open(work_dir / 'ledger.json') as f:
        ledger = json.load(f)
    with open(work_dir / 'summary.json') as f:
        rows = json.load(f)
    assert [r['num_images'] for r in rows] == [8, 14]
    info = ledger['steps'][0]['strategy_info']
    assert info['world_size'] == 2
    assert osp.isfile(work_dir / 'step_0' / 'strategy' / 'selection.json')
    with open(work_dir / 'step_1' / 'labeled.json') as f:
        assert len(json.load(f)['images']) == 14


def test_a_loop_resumed_on_two_processes_labels_what_one_process_labels(shapes_coco, tmp_path):
    """From the same step-0 checkpoint, the scoring and selection stages of a 2-process loop
    write the same next subset as those of a 1-process loop (exact solver)."""
    import shutil

    from mmdet_isal.active import ActiveLearningLoop
    from tests.active.conftest import al_config
    first = tmp_path / 'one'
    # a parameter pattern that matches nothing fails the score stage: the run stops after
    # training and evaluating step 0, with its checkpoint in the ledger
    bad = al_config(shapes_coco, first, strategy='isal', scorer=dict(EXACT, params=['nothing']))
    bad.merge_from_dict({'model.test_cfg.score_thr': 0.0, 'train_cfg.max_epochs': 1})
    with pytest.raises(ValueError, match='nothing'):
        ActiveLearningLoop(bad).run()
    second = tmp_path / 'two'
    shutil.copytree(first, second)
    good = al_config(shapes_coco, first, strategy='isal', scorer=EXACT)
    good.merge_from_dict({'model.test_cfg.score_thr': 0.0, 'train_cfg.max_epochs': 1})
    config = str(tmp_path / 'al.py')
    good.dump(config)
    one, _ = _run([sys.executable, 'tools/al_loop.py', config, '--work-dir', str(first),
                   '--resume'])
    _check(one)
    two, _ = _run(['bash', 'tools/dist_al_loop.sh', config, '2', '--work-dir', str(second),
                   '--resume'])
    _check(two)
    subsets = []
    for run in (first, second):
        with open(run / 'step_1' / 'labeled.json') as f:
            subsets.append(sorted(img['id'] for img in json.load(f)['images']))
        with open(run / 'ledger.json') as f:
            assert json.load(f)['steps'][0]['finished']
    assert len(subsets[0]) == 14 and subsets[0] == subsets[1]
