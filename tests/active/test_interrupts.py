"""Faults during a run: SIGINT/SIGTERM stop it cleanly and --resume continues it; writes that
fail half-way (a full disk) leave the previous ledger and subsets intact; a NaN loss stops
training naming the images; nothing non-finite reaches the ledger."""
import errno
import json
import math
import multiprocessing
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub

from mmdet_isal.active import ActiveLearningLoop, PoolLedger, build_pool
from mmdet_isal.active.ledger import jsonable
from mmdet_isal.engine import FiniteLossHook, NonFiniteLossError
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.random import RandomStrategy
from mmdet_isal.utils import atomic_write_json
from mmdet_isal.utils.signals import (StopRequested, check_stop, deferred_stop,
                                      set_deferred, stop_on_signals)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# --- the signal machinery --------------------------------------------------------------------
@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_raises_stop_requested_and_handlers_are_restored(signum):
    before = signal.getsignal(signum)
    with pytest.raises(StopRequested) as info:
        with stop_on_signals():
            os.kill(os.getpid(), signum)
            time.sleep(1)  # the handler runs before this returns
    assert info.value.signum == signum and info.value.exit_code == 128 + signum
    assert info.value.name == signal.Signals(signum).name
    assert signal.getsignal(signum) is before


def test_a_deferred_signal_waits_for_check_stop_a_second_one_does_not():
    with stop_on_signals():
        with pytest.raises(StopRequested):
            with deferred_stop():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)
                reached = True  # still running: the stop is pending until the block ends
        assert reached
        with pytest.raises(StopRequested, match='SIGINT'):
            with deferred_stop():
                os.kill(os.getpid(), signal.SIGTERM)  # recorded
                os.kill(os.getpid(), signal.SIGINT)  # the second one raises at once
                time.sleep(1)
        check_stop()  # nothing pending any more


def test_forked_children_get_the_previous_handlers():
    # multiprocessing ends pool workers with SIGTERM (VOCMetric evaluates in a pool): a worker
    # that kept the stop handler could hang the run
    with stop_on_signals():
        pid = os.fork()
        if pid == 0:
            os._exit(0 if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL else 3)
        _, status = os.waitpid(pid, 0)
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    assert os.waitstatus_to_exitcode(status) == 0
    start = time.time()
    with stop_on_signals():
        with multiprocessing.get_context('fork').Pool(2) as pool:
            assert pool.map(abs, [-1, -2]) == [1, 2]
    assert time.time() - start < 30


# --- the tool, killed during training ---------------------------------------------------------
def run_tool(cfg_file, *args, **popen):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, osp.join(REPO, 'tools', 'al_loop.py'),
                             str(cfg_file), *args], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


@pytest.mark.slow
@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_signal_during_training_stops_cleanly_and_resume_finishes(signum, al_cfg, pool_coco,
                                                                   tmp_path):
    work_dir = tmp_path / 'run'
    cfg = al_cfg(pool_coco, work_dir, initial=dict(images=24), budget=dict(images=6))
    cfg.merge_from_dict({'train_cfg.max_epochs': 3})
    cfg.dump(str(tmp_path / 'cfg.py'))
    proc = run_tool(tmp_path / 'cfg.py')
    first_ckpt = work_dir / 'step_0' / 'epoch_1.pth'
    deadline = time.time() + 240
    while not first_ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert 'Traceback' not in err
    name = signal.Signals(signum).name
    assert f'al_loop.py: stopped by {name} during step_0 train; {work_dir}/ledger.json holds ' \
           f'every finished stage. Continue with:' in err
    assert f'--work-dir {work_dir} --resume' in err
    ledger = PoolLedger.load(str(work_dir / 'ledger.json'))
    assert not ledger.stage_done(0, 'train') and len(ledger.labeled_ids(0)) == 24
    # stopped between iterations: the checkpoint named by last_checkpoint is whole
    last = (work_dir / 'step_0' / 'last_checkpoint').read_text().strip()
    assert osp.basename(last) == 'epoch_1.pth'
    assert torch.load(last, map_location='cpu')['meta']['epoch'] == 1

    resumed = run_tool(tmp_path / 'cfg.py', '--resume')
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    ledger = PoolLedger.load(str(work_dir / 'ledger.json'))
    assert all(ledger.steps[s]['finished'] for s in (0, 1))
    assert ledger.steps[0]['checkpoint'] == 'step_0/epoch_3.pth'
    assert len(ledger.labeled_ids(1)) == 30
    with open(work_dir / 'step_0' / 'console.log') as f:
        assert 'resumed epoch: 1' in f.read()


# --- in process: a stop while scoring ----------------------------------------------------------
class SignalledWhileScoring(RandomStrategy):
    """Random, but a SIGTERM arrives while it ranks (the first time)."""
    calls = 0

    def rank(self, context):
        type(self).calls += 1
        if type(self).calls == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        return super().rank(context)


@pytest.fixture
def signalled_strategy():
    """SignalledWhileScoring registered for one test (the registry is shared by all tests)."""
    STRATEGIES.register_module(module=SignalledWhileScoring, force=True)
    yield
    STRATEGIES._module_dict.pop('SignalledWhileScoring')


@pytest.mark.slow
def test_signal_while_scoring_keeps_training_and_resume_scores(fake_loop, signalled_strategy):
    loop = fake_loop(strategy='SignalledWhileScoring', steps=2)
    with pytest.raises(StopRequested):
        with stop_on_signals():
            loop.run()
    assert loop.trainer.releases == 1
    ledger = PoolLedger.load(loop.ledger_path)
    assert ledger.stage_done(0, 'evaluate') and not ledger.stage_done(0, 'score')
    assert ledger.next_stage(2) == 'step_0 score'
    again = fake_loop(strategy='SignalledWhileScoring', steps=2)
    resumed = again.run(resume=True)
    assert again.trainer.calls == [('model_of', 0), ('train', 1), ('evaluate', 1)]
    assert resumed.steps[0]['stages']['train'] == ledger.steps[0]['stages']['train']
    assert resumed.next_stage(2) is None and len(resumed.labeled_ids(1)) == 14


# --- a full disk ------------------------------------------------------------------------------
def test_a_write_that_fails_half_way_leaves_the_previous_files(pool_coco, al_cfg, tmp_path,
                                                               monkeypatch):
    cfg = al_cfg(pool_coco, tmp_path)
    pool = build_pool(cfg.train_dataloader.dataset)
    ledger = PoolLedger(pool.image_ids, pool.num_boxes, 'random', 0)
    ledger.label(pool.image_ids[:8], 0)
    ledger_file = str(tmp_path / 'ledger.json')
    ledger.save(ledger_file)
    subsets = pool.write_split(pool.image_ids[:8], str(tmp_path / 'step_0'))
    before = {p: open(p, 'rb').read() for p in (ledger_file, *subsets)}

    real_fdopen = os.fdopen

    class HalfWritten:
        """The temporary file gets half the bytes, then the disk is full."""
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'fdopen', lambda fd, *a, **k: HalfWritten(real_fdopen(fd, *a, **k)))
    ledger.label(pool.image_ids[8:14], 1)
    for write in (lambda: ledger.save(ledger_file),
                  lambda: pool.write_split(pool.image_ids[:14], str(tmp_path / 'step_0'))):
        with pytest.raises(OSError, match='No space left'):
            write()
    monkeypatch.undo()
    for path, data in before.items():
        assert open(path, 'rb').read() == data, path
    assert sorted(os.listdir(tmp_path / 'step_0')) == ['labeled.json', 'unlabeled.json']
    assert [f for f in os.listdir(tmp_path) if f.endswith('.tmp')] == []
    assert PoolLedger.load(ledger_file).labeled_ids(1) == pool.image_ids[:8]


def test_json_refuses_nan_and_unknown_objects_and_keeps_the_file(tmp_path):
    path = str(tmp_path / 'x.json')
    atomic_write_json(path, dict(a=1))
    with pytest.raises(ValueError, match=r'x.json was not written: the data holds NaN'):
        atomic_write_json(path, dict(a=float('nan')))
    with pytest.raises(TypeError, match=r'x.json was not written: .*set is not JSON'):
        atomic_write_json(path, dict(a={1}))
    assert json.load(open(path)) == dict(a=1)


def test_ledger_values_are_never_repaired():
    assert jsonable(dict(a=[1, 2.5, None], b=torch.tensor([1.0, 2.0]))) == \
        dict(a=[1, 2.5, None], b=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"step_0 score: info\['lissa'\]\['trace'\]\[0\]\[1\] "
                                         r"is nan"):
        jsonable(dict(lissa=dict(trace=[[1.0, math.nan]])), 'step_0 score: info')
    with pytest.raises(ValueError, match=r"details\[7\]\['x'\] is inf"):
        jsonable({7: dict(x=torch.tensor(math.inf))}, 'details')
    with pytest.raises(TypeError, match=r"\['f'\] is a object"):
        jsonable(dict(f=object()))


# --- NaN losses ---------------------------------------------------------------------------------
def test_finite_loss_hook_names_stage_iteration_and_images():
    hub = MessageHub.get_instance('test_finite_loss_hook')
    runner = SimpleNamespace(message_hub=hub, epoch=1, iter=41)
    batch = dict(data_samples=[SimpleNamespace(metainfo=dict(img_id=i)) for i in (5, 9)])
    hook = FiniteLossHook('step_2 train')
    hook.after_train_iter(runner, 0, batch, dict(loss=torch.tensor(1.5)))  # finite: nothing
    with pytest.raises(NonFiniteLossError,
                       match=r'^step_2 train: loss_bbox=inf, loss=inf at epoch 2, iteration 42 '
                             r'on the batch of image ids \[5, 9\]'):
        hook.after_train_iter(runner, 0, batch, dict(loss_cls=torch.tensor(0.3),
                                                     loss_bbox=torch.tensor(math.inf),
                                                     loss=torch.tensor(math.inf)))
    hub.update_scalar('train/grad_norm', float('nan'))
    with pytest.raises(NonFiniteLossError, match=r'step_2 train: grad_norm=nan'):
        hook.after_train_iter(runner, 0, batch, dict(loss=torch.tensor(1.0)))


@pytest.mark.slow
def test_nan_training_stops_the_loop_naming_images_of_the_step(al_cfg, pool_coco, tmp_path):
    cfg = al_cfg(pool_coco, tmp_path)
    cfg.merge_from_dict({'optim_wrapper.optimizer.lr': 1e30, 'train_cfg.max_epochs': 1})
    loop = ActiveLearningLoop(cfg)
    with pytest.raises(NonFiniteLossError, match=r'^step_0 train: .*=nan .*image ids \[') as info:
        loop.run()
    ids = json.loads(str(info.value).split('image ids ')[1].split(']')[0] + ']')
    assert ids and set(ids) <= set(loop.ledger.labeled_ids(0))
    ledger = PoolLedger.load(str(tmp_path / 'ledger.json'))
    assert not ledger.stage_done(0, 'train')  # nothing of the NaN training was recorded


def _stop_worker(rank, world_size, init_file, results):
    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    from mmdet_isal.engine.hooks.stop_hook import stop_everywhere
    outcome = []
    with stop_on_signals():
        set_deferred(True)
        stop_everywhere()  # nothing pending anywhere: every process goes on
        outcome.append('went on')
        if rank == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # recorded in process 1 only
            time.sleep(0.5)
        try:
            stop_everywhere()
        except StopRequested as e:
            outcome.append(e.name)
        set_deferred(False)
    results.put((rank, outcome))
    dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes (gloo), a minute on a loaded machine
def test_a_signal_to_one_process_stops_every_process(tmp_path):
    import torch.multiprocessing as mp
    ctx = mp.get_context('spawn')
    results = ctx.Queue()
    procs = [ctx.Process(target=_stop_worker, args=(r, 2, str(tmp_path / 'init'), results))
             for r in range(2)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert got == {0: ['went on', 'SIGTERM'], 1: ['went on', 'SIGTERM']}
