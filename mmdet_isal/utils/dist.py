"""torch.distributed for training, scoring and the loop: on GPUs (NCCL) and on CPUs (gloo).

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its Runner wraps the model in DDP
with ``device_ids=[LOCAL_RANK]``; both are CUDA-only, so on a machine without a GPU a
distributed run fails at start-up. :func:`init_distributed` sets the process group up itself
(gloo without any CUDA call when there is no GPU, mmengine's own set-up otherwise), and
:func:`prepare_runner_cfg` gives the Runner a DDP wrapper without ``device_ids`` on CPUs. A
Runner built afterwards finds the process group initialised and uses it.

Launchers, and the environment each reads:

* ``pytorch`` (``torchrun``, ``tools/dist_*.sh``): ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR``, ``MASTER_PORT``.
* ``slurm`` (``srun``, ``tools/slurm_*.sh``): ``SLURM_PROCID`` (rank), ``SLURM_NTASKS`` (world
  size), ``SLURM_LOCALID`` (local rank), ``SLURM_NODELIST`` (the first node is the master,
  through ``scontrol show hostname``), ``MASTER_PORT`` (default 29500); ``MASTER_ADDR`` if set
  wins over the node list.

The collectives are mmengine's (``mmengine.dist``: ``all_reduce``, ``all_gather_object``,
``broadcast_object_list``, ``barrier``, ``get_rank``, ...), which work the same whether a process
group exists or not (one process: they return their input) and move data to the backend's
device, so the scoring code has one path for one and for many processes.
"""
import atexit
import contextlib
import datetime
import gc
import os
import subprocess
import sys
import traceback
from typing import List, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_rank, get_world_size

LAUNCHERS = ('none', 'pytorch', 'slurm')


def _slurm_environment() -> None:
    """Translate srun's variables into torch's ``RANK``/``WORLD_SIZE``/``MASTER_*``."""
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher slurm: {", ".join(missing)} not set; start the job with '
                           f'srun (see tools/slurm_al_loop.sh)')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ.setdefault('LOCAL_RANK', os.environ.get('SLURM_LOCALID', '0'))
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        try:
            first = subprocess.run(['scontrol', 'show', 'hostname', nodes], check=True,
                                   capture_output=True, text=True).stdout.split()[0]
        except (OSError, subprocess.CalledProcessError, IndexError) as e:
            raise RuntimeError(f'--launcher slurm: cannot resolve the master node of '
                               f'SLURM_NODELIST={nodes!r} with scontrol ({e}); set MASTER_ADDR'
                               ) from e
        os.environ['MASTER_ADDR'] = first


def init_distributed(launcher: str, backend: Optional[str] = None,
                     timeout_s: Optional[float] = None) -> None:
    """Initialise the default process group for ``launcher`` (a no-op for ``'none'`` or when
    one is initialised already).

    Args:
        launcher: ``'none'``, ``'pytorch'`` or ``'slurm'`` (see the module docstring for the
            environment each reads).
        backend: default ``'nccl'`` with CUDA, ``'gloo'`` without.
        timeout_s: the collectives' timeout in seconds (torch's default: 30 minutes).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
    if launcher == 'none' or (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    if launcher == 'slurm':
        _slurm_environment()
    missing = [k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
               if k not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher {launcher}: {", ".join(missing)} not set; start the '
                           f'processes with torchrun (tools/dist_train.sh, '
                           f'tools/dist_al_loop.sh) or srun')
    kwargs = {}
    if timeout_s is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=timeout_s)
    if torch.cuda.is_available():
        # mmengine's set-up: one GPU per process, chosen by LOCAL_RANK
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
        torch_dist.init_process_group(backend=backend or 'nccl', **kwargs)
    else:
        torch_dist.init_process_group(backend=backend or 'gloo', **kwargs)
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    """At exit, while the interpreter is still whole: free what holds the process group,
    then destroy it.

    Left to the interpreter's teardown, the process group's C++ threads can be destroyed
    while joinable, or touch Python objects that are gone, which aborts the process
    ("terminate called without an active exception", SIGABRT) after all its work is done.
    Destroying the group is not enough on its own: a finished Runner's DDP wrapper keeps the
    process group alive through its reducer, and the Runner sits in reference cycles, so
    without a collection here it is freed only by the interpreter's last collection, during
    teardown.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        gc.collect()
        torch_dist.destroy_process_group()


def prepare_runner_cfg(cfg, launcher: str) -> None:
    """Make ``cfg`` (an mmengine ``Config``) build a Runner for ``launcher``, in place.

    Sets ``cfg.launcher``; without CUDA and with a launcher, gives the Runner a DDP wrapper
    without ``device_ids`` (mmengine's default passes ``device_ids=[LOCAL_RANK]``, which
    DDP refuses for a CPU model), keeping the user's ``model_wrapper_cfg`` otherwise.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def shard(indices: Sequence[int], rank: Optional[int] = None,
          world_size: Optional[int] = None) -> List[int]:
    """This process's contiguous share of ``indices`` (shares differ in size by at most one)."""
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    n = len(indices)
    start, stop = rank * n // world_size, (rank + 1) * n // world_size
    return list(indices[start:stop])


@contextlib.contextmanager
def exit_on_failure(*passthrough: type):
    """In a distributed run, end this process at once when the block raises, with a message
    naming its rank; torchrun (or srun) then stops the other processes, instead of leaving
    them waiting in a collective. On one process, exceptions pass through unchanged, and so do
    the ``passthrough`` types always (e.g. a stop that every process agreed on)."""
    try:
        yield
    except (SystemExit, KeyboardInterrupt, *passthrough):
        raise
    except BaseException as e:  # noqa: B902  (every failure must end the whole job)
        if get_world_size() == 1:
            raise
        rank, world = get_rank(), get_world_size()
        traceback.print_exc()
        sys.stderr.write(f'error: process rank {rank} (of {world}) failed: '
                         f'{type(e).__name__}: {e}\nerror: stopping the job; the other '
                         f'processes are stopped by the launcher\n')
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(1)
