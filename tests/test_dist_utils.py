"""mmdet_isal.utils.dist: sharding, launchers, the CPU DDP wrapper, the exit handler."""
import os

import pytest
import torch
from mmengine.config import Config

from mmdet_isal.utils import dist


def test_shards_are_contiguous_cover_everything_and_differ_by_at_most_one():
    for n in (0, 1, 5, 24):
        for world in (1, 2, 3, 8):
            parts = [dist.shard(list(range(n)), r, world) for r in range(world)]
            assert sum(parts, []) == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_cpu_runner_cfg_gets_a_ddp_wrapper_without_device_ids(monkeypatch):
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    cfg = Config(dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                             find_unused_parameters=True)))
    dist.prepare_runner_cfg(cfg, 'pytorch')
    assert cfg.launcher == 'pytorch'
    assert cfg.model_wrapper_cfg == dict(type='MMDistributedDataParallel',
                                         find_unused_parameters=True, broadcast_buffers=False,
                                         device_ids=None)
    single = Config(dict())
    dist.prepare_runner_cfg(single, 'none')
    assert single.launcher == 'none' and 'model_wrapper_cfg' not in single


def test_launchers_name_what_is_missing(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID',
                'SLURM_NTASKS', 'SLURM_NODELIST'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match="launcher must be one of"):
        dist.init_distributed('mpi')
    with pytest.raises(RuntimeError, match='RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT not set'):
        dist.init_distributed('pytorch')
    with pytest.raises(RuntimeError, match='SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST not set'):
        dist.init_distributed('slurm')
    dist.init_distributed('none')  # a no-op
    assert not torch.distributed.is_initialized()


def test_slurm_variables_become_torch_variables(monkeypatch):
    monkeypatch.setenv('SLURM_PROCID', '5')
    monkeypatch.setenv('SLURM_NTASKS', '16')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'node[01-02]')
    monkeypatch.setenv('MASTER_ADDR', 'node01')
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    dist._slurm_environment()
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'],
            os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('5', '16', '1', 'node01',
                                                                      '29500')


def test_the_exit_handler_frees_what_holds_the_process_group_before_destroying_it(tmp_path):
    """A finished Runner's DDP wrapper holds the process group and sits in reference cycles;
    the exit handler must free it while the interpreter is whole, not leave it to teardown
    (where gloo's threads abort the process)."""
    import gc
    import weakref

    import torch.distributed as torch_dist
    from torch.nn.parallel import DistributedDataParallel

    torch_dist.init_process_group('gloo', init_method=f'file://{tmp_path / "init"}', rank=0,
                                  world_size=1)
    try:
        holder = dict(model=DistributedDataParallel(torch.nn.Linear(2, 1)))
        holder['self'] = holder  # a cycle, as between a Runner and its hooks
        alive = weakref.ref(holder['model'])
        gc.disable()  # no automatic collection may free it before the handler
        try:
            del holder
            assert alive() is not None
            dist._destroy_process_group()
            assert alive() is None
            assert not torch_dist.is_initialized()
        finally:
            gc.enable()
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
