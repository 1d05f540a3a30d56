"""InfluenceScorer on 2 processes (gloo) against the closed forms of a tiny float64 problem.

Each process holds its own shard of the reference, Hessian and candidate samples; with
``all_reduce`` the scorer must give the closed-form answer of all samples together.
"""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from influence_problems import (logistic_grads, logistic_hessian, logistic_loss,
                                logistic_problem, make_batches)

from mmdet_isal.influence import ConjugateGradient, ExactInverse, InfluenceScorer, LiSSA

# two spawned processes with a process group each: about 25 s of start-up
pytestmark = pytest.mark.slow

THETA = np.array([0.7, -0.4, 0.3, -0.2])  # logistic_problem's θ


# samples 0-9 the reference set, 10-33 the Hessian set, 34-41 the candidates; shards uneven
REF, TRAIN, CAND = slice(0, 10), slice(10, 34), slice(34, 42)


def _shard(x, y, part, rank, world):
    """Process ``rank``'s batches of the samples ``part`` (2 processes: one more on rank 0)."""
    xs, ys = x[part], y[part]
    n = len(xs)
    lo, hi = (0, n // 2 + 1) if rank == 0 else (n // 2 + 1, n)  # deliberately unequal
    return make_batches(xs[lo:hi], ys[lo:hi], 3)


def _solvers(rank, world, all_reduce):
    return dict(
        exact=ExactInverse(damping=0.0),
        cg=ConjugateGradient(damping=0.0, max_iter=50, tol=1e-14),
        lissa=LiSSA(damping=0.0, scale=2.0, depth=40, repeats=4, seed=0,
                    repeat_ids=range(rank, 4, world) if all_reduce else None,
                    all_reduce=all_reduce))


def _run(rank, world, all_reduce):
    x, y, model = logistic_problem()
    out = {}
    for name, solver in _solvers(rank, world, all_reduce).items():
        scorer = InfluenceScorer(model, ['weight', 'bias'], logistic_loss, solver,
                                 all_reduce=all_reduce)
        if world == 1:
            ref, train, cand = (make_batches(x[p], y[p], 3) for p in (REF, TRAIN, CAND))
        else:
            ref, train, cand = (_shard(x, y, p, rank, world) for p in (REF, TRAIN, CAND))
        if solver.distributed or world == 1:  # LiSSA spreads repeats: every process, every sample
            train = make_batches(x[TRAIN], y[TRAIN], 3)
        v = scorer.reference_gradient(ref, reduction='mean')
        s_test = scorer.inverse_hvp(v, train)
        out[name] = dict(s_test=torch.cat([t.reshape(-1) for t in s_test]).tolist(),
                         scores=scorer.score(cand, s_test).tolist())
    return out


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    try:
        result = _run(rank, world, dist.all_reduce)
    finally:
        dist.destroy_process_group()
    with open(osp.join(out_dir, f'rank_{rank}.json'), 'w') as f:
        json.dump(result, f)


@pytest.fixture(scope='module')
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist_influence')
    mp.start_processes(_worker, args=(2, str(out / 'init'), str(out)), nprocs=2,
                       start_method='spawn', join=True)
    ranks = []
    for rank in (0, 1):
        with open(out / f'rank_{rank}.json') as f:
            ranks.append(json.load(f))
    return ranks


@pytest.mark.parametrize('solver', ['exact', 'cg'])
def test_sharded_samples_give_the_closed_form(two_processes, solver):
    x, y, model = logistic_problem()
    xn, yn = x.numpy(), y.numpy()
    v = logistic_grads(xn[REF], yn[REF], THETA).mean(0)
    s_test = np.linalg.solve(logistic_hessian(xn[TRAIN], THETA), v)
    expected = -logistic_grads(xn[CAND], yn[CAND], THETA) @ s_test
    for rank, result in enumerate(two_processes):
        np.testing.assert_allclose(result[solver]['s_test'], s_test, rtol=1e-9)
        # each process scores its own candidates: 5 and 3 of the 8
        mine = expected[:5] if rank == 0 else expected[5:]
        np.testing.assert_allclose(result[solver]['scores'], mine, rtol=1e-9)


def test_lissa_spread_over_two_processes_equals_one_process(two_processes):
    one = _run(0, 1, None)['lissa']
    assert np.isfinite(one['s_test']).all() and np.abs(one['s_test']).max() > 0
    for result in two_processes:
        np.testing.assert_allclose(result['lissa']['s_test'], one['s_test'], rtol=1e-12)
