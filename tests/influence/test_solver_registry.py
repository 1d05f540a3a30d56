"""The solver registry: every registered solver builds from SolverOptions and solves a tiny
float64 problem to its closed form; its H·v count and diagnostics; one registration makes a
new solver selectable."""
import dataclasses

import numpy as np
import pytest
from influence_problems import flat, make_batches, to_vector

from mmdet_isal.influence import (SOLVERS, ExactInverse, InfluenceScorer, InverseHVP, LiSSA,
                                  SolverOptions, build_solver, register_solver)

V = np.array([1.0, -2.0, 0.5, 0.3])


def closed_form(problem, lam):
    return np.linalg.solve(problem.hessian + lam * np.eye(len(V)), V)


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def solve_with(problem, solver, batches):
    scorer = InfluenceScorer(problem.model, ['weight', 'bias'], problem.loss, solver)
    return flat(scorer.inverse_hvp(to_vector(V, problem.model), batches))


def test_the_registry_holds_the_three_solvers():
    assert {'lissa': LiSSA, 'exact': ExactInverse}.items() <= SOLVERS.items()
    assert SOLVERS['cg'].__name__ == 'ConjugateGradient'
    for name, cls in SOLVERS.items():
        assert issubclass(cls, InverseHVP), name
        # what from_options reads is an option with a help text
        assert cls.OPTIONS and set(cls.OPTIONS) <= set(SolverOptions.keys()), name


@pytest.mark.parametrize('name', sorted(SOLVERS))
def test_every_registered_solver_builds_from_the_options_and_solves(name, problem):
    # one batch of all 42 samples: every solver, LiSSA included, is deterministic and must
    # reach (H + λI)⁻¹ v for the λ it reports
    batches = make_batches(problem.x, problem.y, 42)
    opts = SolverOptions(solver=name, damping=0.01, scale='auto', depth=300, repeats=1)
    solver = build_solver(opts, seed=0, num_batches=len(batches))
    assert isinstance(solver, SOLVERS[name])
    s = solve_with(problem, solver, batches)
    assert solver.lambda_ > 0
    assert rel_err(s, closed_form(problem, solver.lambda_)) <= 1e-6
    # the solve matters: λ = 0 (no damping) is a different answer
    assert rel_err(s, closed_form(problem, 0.0)) > 1e-4
    diag = solver.diagnostics()
    assert diag['type'] == SOLVERS[name].__name__ and diag['lambda_'] == solver.lambda_


def test_options_reach_the_solvers_as_before():
    opts = SolverOptions(solver='lissa', damping=0.02, scale=3.0, depth=None, repeats=4,
                         power_iters=7, power_batches=20)
    lissa = build_solver(opts, seed=5, num_batches=6, rank=1, world_size=3,
                         all_reduce=lambda t: None)
    assert (lissa.damping, lissa.scale, lissa.depth, lissa.repeats, lissa.seed) == \
        (0.02, 3.0, 6, 4, 5)  # depth None: one pass over the 6 batches
    assert lissa.power_iters == 7 and lissa.power_batches == 6  # at most the batches there are
    assert lissa.repeat_ids == [1] and lissa.distributed  # repeats 1, 4, ... of 4 on rank 1
    alone = build_solver(opts, seed=5, num_batches=6, all_reduce=lambda t: None)
    assert alone.repeat_ids == [0, 1, 2, 3] and not alone.distributed  # one process
    cg = build_solver(dataclasses.replace(opts, solver='cg'), seed=0, num_batches=6)
    assert (cg.damping, cg.max_iter) == (0.02, 100)
    cg = build_solver(dataclasses.replace(opts, solver='cg', depth=9), seed=0, num_batches=6)
    assert cg.max_iter == 9
    exact = build_solver(dataclasses.replace(opts, solver='exact'), seed=0, num_batches=6)
    assert exact.damping == 0.02


def counting(hvp_fn):
    """``hvp_fn`` that also counts the batches it is handed (the progress line's unit)."""
    def counted(v, batches):
        batches = list(batches)
        counted.batches += len(batches)
        return hvp_fn(v, batches)
    counted.batches = 0
    return counted


def matrix_hvp(v, batches):
    return [sum(m @ v[0] for m in batches) / len(batches)]


@pytest.mark.parametrize('solver, exact', [
    (LiSSA(damping=0.1, scale=100.0, depth=7, repeats=3), True),
    (LiSSA(damping=0.1, scale='auto', depth=7, repeats=2, power_iters=5, power_batches=2),
     False),  # power iteration may stop early: an upper bound
    (SOLVERS['cg'](damping=0.1, max_iter=50, tol=1e-12), False),  # CG stops when converged
])
def test_expected_hvps_counts_the_batches_solve_takes(solver, exact):
    import torch
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(4):
        a = torch.randn(3, 3, generator=gen, dtype=torch.float64)
        batches.append(a @ a.T + torch.eye(3, dtype=torch.float64))
    hvp = counting(matrix_hvp)
    solver.solve(hvp, [torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64)], batches)
    expected = solver.expected_hvps(len(batches))
    assert hvp.batches == expected if exact else 0 < hvp.batches <= expected


def test_lissa_diagnostics_gather_the_traces_in_repeat_order(ridge):
    batches = make_batches(ridge.x, ridge.y, 14)
    mine = LiSSA(damping=0.01, scale=4.0, depth=3, repeats=2, repeat_ids=[1],
                 all_reduce=lambda t: None)
    solve_with(ridge, mine, batches)
    other = [(0, [9.0, 9.0, 9.0])]  # what the process with repeat 0 holds
    diag = mine.diagnostics(all_gather=lambda part: [part, other])  # gathered out of order
    assert diag['trace'] == [[9.0, 9.0, 9.0], mine.trace_[0]]
    assert (diag['scale'], diag['top_eigenvalue'], diag['scale_retries']) == (4.0, None, 0)
    assert list(diag) == ['type', 'lambda_', 'scale', 'top_eigenvalue', 'scale_retries',
                          'trace']


def test_one_registration_makes_a_new_solver_selectable(problem):
    class Halved(ExactInverse):
        """The exact solve with λ = damping / 2: a solver ISAL has never heard of."""
        @classmethod
        def from_options(cls, opts, **kw):
            return cls(damping=opts.damping / 2)

    with pytest.raises(ValueError, match="'halved'"):
        SolverOptions(solver='halved')
    register_solver('halved')(Halved)
    try:
        opts = SolverOptions(solver='halved', damping=0.1)
        batches = make_batches(problem.x, problem.y, 7)
        s = solve_with(problem, build_solver(opts, seed=0, num_batches=6), batches)
        assert rel_err(s, closed_form(problem, 0.05)) <= 1e-10
        with pytest.raises(ValueError, match="'halved' is registered already"):
            register_solver('halved')(Halved)
    finally:
        del SOLVERS['halved']
    with pytest.raises(TypeError, match='not an InverseHVP'):
        register_solver('nothing')(object)
    assert 'nothing' not in SOLVERS


def test_every_solver_option_has_its_help_text():
    texts = SolverOptions.help()
    assert list(texts) == list(SolverOptions.keys())
    assert all(isinstance(t, str) and len(t) > 20 for t in texts.values()), texts
