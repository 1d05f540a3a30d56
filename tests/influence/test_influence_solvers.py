"""Inverse-HVP solvers against closed forms (float64), their diagnostics and their errors."""
import numpy as np
import pytest
import torch
from influence_problems import flat, make_batches, to_vector
from torch import nn

from mmdet_isal.influence import (ConjugateGradient, ExactInverse, InfluenceScorer, InverseHVP,
                                  InverseHVPError, LiSSA, LiSSADivergenceError)

V = np.array([1.0, -2.0, 0.5, 0.3])


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def closed_form(problem, lam):
    return np.linalg.solve(problem.hessian + lam * np.eye(len(V)), V)


def solve(problem, solver, batch_size):
    scorer = InfluenceScorer(problem.model, ['weight', 'bias'], problem.loss, solver)
    batches = make_batches(problem.x, problem.y, batch_size)
    return flat(scorer.inverse_hvp(to_vector(V, problem.model), batches))


def matrix_hvp(v, batches):
    """``hvp_fn`` for tests without a model: each batch is a symmetric matrix (one 'sample')."""
    return [sum(m @ v[0] for m in batches) / len(batches)]


@pytest.mark.parametrize('make_solver', [
    lambda: ExactInverse(damping=0.05),
    lambda: ConjugateGradient(damping=0.05, max_iter=50, tol=1e-12),
],
                         ids=['exact', 'cg'])
def test_exact_and_cg_match_closed_form(problem, make_solver):
    solver = make_solver()
    # Mini-batches of 7 (the last one 7 as well: 42 samples): H is the mean over all of them.
    s = solve(problem, solver, batch_size=7)
    assert solver.lambda_ == 0.05
    assert rel_err(s, closed_form(problem, 0.05)) <= 1e-6


def test_exact_inverse_builds_the_hessian(problem):
    solver = ExactInverse(damping=0.0)
    solve(problem, solver, batch_size=5)  # uneven batches: 8 of 5 and one of 2
    np.testing.assert_allclose(solver.hessian_.numpy(), problem.hessian, rtol=0, atol=1e-12)


def test_cg_records_residuals(problem):
    solver = ConjugateGradient(damping=0.05, tol=1e-10)
    solve(problem, solver, batch_size=42)
    assert solver.converged_
    assert solver.residuals_[-1] <= 1e-10 < solver.residuals_[0]
    assert len(solver.residuals_) <= 4 + 2  # 4 unknowns: CG ends in ~4 steps


def test_lissa_full_batch_is_the_deterministic_neumann_series(problem):
    """One batch holding every sample: LiSSA is the damped Neumann series of (H + λI)⁻¹ with
    λ = damping · scale, and it converges to the closed form."""
    solver = LiSSA(damping=0.01, scale='auto', depth=300)
    s = solve(problem, solver, batch_size=42)
    top = np.linalg.eigvalsh(problem.hessian)[-1]
    assert top * (1 - 2e-2) <= solver.top_eigenvalue_ <= top * (1 + 1e-12)  # Rayleigh quotient
    assert solver.scale_ == pytest.approx(2.0 * solver.top_eigenvalue_, rel=1e-12)
    assert solver.lambda_ == pytest.approx(0.01 * solver.scale_, rel=1e-12)
    assert rel_err(s, closed_form(problem, solver.lambda_)) <= 1e-2
    assert rel_err(s, closed_form(problem, solver.lambda_)) <= 1e-6  # deterministic: tight
    # λ is damping·scale, not damping: the other reading is clearly wrong here.
    assert rel_err(s, closed_form(problem, 0.01)) > 1e-3
    # The trace: one list per repeat, the estimate's norm per iteration, flat when converged.
    assert len(solver.trace_) == 1 and len(solver.trace_[0]) == 300
    assert solver.trace_[0][-1] == pytest.approx(np.linalg.norm(s), rel=1e-12)
    assert abs(solver.trace_[0][-1] - solver.trace_[0][-2]) <= 1e-10 * solver.trace_[0][-1]
    # Too shallow a series is visibly truncated.
    shallow = LiSSA(damping=0.01, scale='auto', depth=3)
    assert rel_err(solve(problem, shallow, 42), closed_form(problem, shallow.lambda_)) > 1e-2


def test_lissa_given_lambda_via_numeric_scale(problem):
    """The documented recipe for a chosen λ: numeric scale, damping = λ / scale."""
    lam, scale = 0.05, 5.0
    solver = LiSSA(damping=lam / scale, scale=scale, depth=400)
    s = solve(problem, solver, batch_size=42)
    assert solver.scale_ == scale and solver.top_eigenvalue_ is None
    assert solver.lambda_ == pytest.approx(lam, rel=1e-12)
    assert rel_err(s, closed_form(problem, lam)) <= 1e-6


@pytest.mark.slow
def test_lissa_minibatches_and_repeats(problem):
    """Stochastic LiSSA (batches of 14, 3 per pass): noisy but centred on the closed form;
    seeded, so a rerun is identical and another seed differs."""
    solver = LiSSA(damping=0.01, depth=150, repeats=4, seed=0)
    s = solve(problem, solver, batch_size=14)
    assert len(solver.trace_) == 4 and all(len(t) == 150 for t in solver.trace_)
    assert len({tuple(t) for t in solver.trace_}) == 4  # each repeat draws its own order
    assert rel_err(s, closed_form(problem, solver.lambda_)) <= 0.15
    again = LiSSA(damping=0.01, depth=150, repeats=4, seed=0)
    np.testing.assert_array_equal(solve(problem, again, batch_size=14), s)
    other = LiSSA(damping=0.01, depth=150, repeats=4, seed=1)
    assert not np.array_equal(solve(problem, other, batch_size=14), s)


def test_lissa_repeats_can_be_split_over_processes(ridge):
    """The distributed seam: repeats run anywhere give the same sum; all_reduce sums them."""
    kw = dict(damping=0.01, scale=4.0, depth=30, repeats=3)
    whole = solve(ridge, LiSSA(**kw), batch_size=7)
    noop = lambda tensor: None  # one 'process' at a time; the test sums by hand
    part_a = solve(ridge, LiSSA(**kw, repeat_ids=[0, 2], all_reduce=noop), batch_size=7)
    part_b = solve(ridge, LiSSA(**kw, repeat_ids=[1], all_reduce=noop), batch_size=7)
    np.testing.assert_allclose(part_a + part_b, whole, rtol=1e-12, atol=0)

    seen = []
    solver = LiSSA(damping=0.01, depth=5, all_reduce=lambda t: seen.append(t.clone()))
    solve(ridge, solver, batch_size=42)
    assert seen[0].tolist() == [solver.top_eigenvalue_, 1.0]  # λ_max is averaged over ranks
    assert seen[1].tolist() == [0.0]  # no process diverged
    assert seen[2].shape == (4, )  # then the flattened sum of estimates


def two_batch_hessians():
    """A mild batch and one with 20 times its curvature: power iteration on the first alone
    picks a scale far too small for the second."""
    mild = torch.diag(torch.tensor([1.0, 0.5], dtype=torch.float64))
    return [mild, 20 * mild]


def test_lissa_auto_scale_doubles_after_a_divergence():
    v = [torch.tensor([1.0, -2.0], dtype=torch.float64)]
    solver = LiSSA(damping=0.05, depth=300, power_batches=1, seed=2)  # draws mild first
    s = solver.solve(matrix_hvp, v, two_batch_hessians())[0]
    assert solver.top_eigenvalue_ == pytest.approx(1.0, rel=1e-3)
    # 2, 4 and 8 diverge (the batch's eigenvalue 20 > 2·scale: ‖I − H/scale‖ > 1); 16 does not
    assert solver.scale_retries_ == 3 and solver.scale_ == pytest.approx(16.0, rel=1e-3)
    assert solver.lambda_ == pytest.approx(0.05 * solver.scale_)
    assert len(solver.trace_) == 1 and len(solver.trace_[0]) == 300
    # the same solve as with that scale given
    given = LiSSA(damping=0.05, scale=solver.scale_, depth=300, seed=2)
    torch.testing.assert_close(s, given.solve(matrix_hvp, v, two_batch_hessians())[0],
                               rtol=0, atol=0)


def test_lissa_auto_scale_retries_are_bounded():
    v = [torch.tensor([1.0, -2.0], dtype=torch.float64)]
    solver = LiSSA(damping=0.05, depth=300, power_batches=1, auto_scale_retries=2)
    with pytest.raises(LiSSADivergenceError, match='doubled the scale 2 times') as err:
        solver.solve(matrix_hvp, v, two_batch_hessians())
    assert err.value.scale == pytest.approx(8.0, rel=1e-3)
    fixed = LiSSA(damping=0.05, scale=2.0, depth=300)  # a given scale is never changed
    with pytest.raises(LiSSADivergenceError, match='Raise scale'):
        fixed.solve(matrix_hvp, v, two_batch_hessians())
    assert fixed.scale_retries_ == 0


def test_lissa_processes_agree_on_starting_again():
    """A process whose own repeats converged starts again when another one diverged."""
    v = [torch.tensor([1.0, -2.0], dtype=torch.float64)]
    votes = iter([[1.0], [0.0]])  # the other process diverged at the first scale only

    def all_reduce(tensor):
        if tensor.numel() == 1:  # the divergence vote
            tensor.add_(torch.tensor(next(votes), dtype=tensor.dtype))

    solver = LiSSA(damping=0.05, scale='auto', depth=50, power_batches=1, repeats=2,
                   repeat_ids=[0], all_reduce=all_reduce)
    mild = [torch.diag(torch.tensor([1.0, 0.5], dtype=torch.float64))]
    solver.solve(matrix_hvp, v, mild)
    assert solver.scale_retries_ == 1 and solver.scale_ == pytest.approx(4.0, rel=1e-3)


def test_lissa_diverging_scale_raises(problem):
    top = np.linalg.eigvalsh(problem.hessian)[-1]
    solver = LiSSA(damping=0.01, scale=top / 4, depth=200)  # ‖I − H/scale‖ ≈ 3
    with pytest.raises(LiSSADivergenceError, match='Raise scale') as err:
        solve(problem, solver, batch_size=42)
    assert isinstance(err.value, ArithmeticError)
    assert 'damping' in str(err.value)
    assert err.value.iteration < 200 and err.value.scale == pytest.approx(top / 4)


def test_lissa_nan_raises():
    calls = []

    def poisoned(v, batches):
        calls.append(1)
        out = matrix_hvp(v, batches)
        return [out[0] * float('nan')] if len(calls) == 3 else out

    solver = LiSSA(scale=2.0, depth=10)
    with pytest.raises(LiSSADivergenceError, match='NaN') as err:
        solver.solve(poisoned, [torch.ones(2, dtype=torch.float64)],
                     [torch.eye(2, dtype=torch.float64)])
    assert err.value.iteration == 3
    with pytest.raises(InverseHVPError, match='NaN'):
        solver.solve(matrix_hvp, [torch.tensor([1.0, float('inf')])], [torch.eye(2)])


def test_lissa_negative_curvature_needs_damping():
    hessian = torch.diag(torch.tensor([1.0, -0.5], dtype=torch.float64))
    v = [torch.tensor([1.0, 1.0], dtype=torch.float64)]
    with pytest.raises(LiSSADivergenceError):
        LiSSA(damping=0.01, depth=200).solve(matrix_hvp, v, [hessian])
    solver = LiSSA(damping=0.5, depth=200)  # scale 2 (= 2·|λ_max|), λ = 1 > 0.5
    s = solver.solve(matrix_hvp, v, [hessian])[0]
    assert solver.lambda_ == pytest.approx(1.0, rel=1e-3)
    expected = torch.linalg.solve(hessian + solver.lambda_ * torch.eye(2, dtype=torch.float64),
                                  v[0])
    torch.testing.assert_close(s, expected, rtol=1e-8, atol=0)


def test_lissa_iterates_any_reiterable_and_rejects_iterators(ridge):
    class Loader:  # like a DataLoader: re-iterable, not a Sequence

        def __init__(self, batches):
            self.batches = batches

        def __iter__(self):
            return iter(self.batches)

    batches = make_batches(ridge.x, ridge.y, 42)
    scorer = InfluenceScorer(ridge.model, ['weight', 'bias'], ridge.loss, LiSSA(depth=50))
    v = to_vector(V, ridge.model)
    from_list = flat(scorer.inverse_hvp(v, batches))
    np.testing.assert_allclose(flat(scorer.inverse_hvp(v, Loader(batches))), from_list,
                               rtol=1e-13)
    with pytest.raises(ValueError, match='re-iterable'):
        scorer.inverse_hvp(v, iter(batches))
    with pytest.raises(ValueError, match='no sample'):
        scorer.inverse_hvp(v, [])


def test_lissa_power_batches_are_the_first_drawn():
    """power_batches limits power iteration to the first batches repeat 0 draws."""
    batches = [torch.diag(torch.tensor([k, 0.0], dtype=torch.float64)) for k in range(1, 7)]
    calls = []

    def recording(v, bs):
        bs = list(bs)
        calls.append([int(b[0, 0]) for b in bs])
        return matrix_hvp(v, bs)

    solver = LiSSA(depth=2, power_batches=2)
    solver.solve(recording, [torch.ones(2, dtype=torch.float64)], batches)
    power, lissa = calls[:-2], calls[-2:]
    assert all(c == power[0] for c in power) and len(power[0]) == 2
    assert power[0] == [lissa[0][0], lissa[1][0]]
    assert solver.top_eigenvalue_ == pytest.approx(sum(power[0]) / 2, rel=1e-9)

    class Loader:  # not a Sequence: the first batches iterated

        def __iter__(self):
            return iter(batches)

    calls.clear()
    LiSSA(depth=1, power_batches=3).solve(recording, [torch.ones(2, dtype=torch.float64)],
                                          Loader())
    assert calls[0] == [1, 2, 3] and calls[-1] == [1]


def test_cg_errors_and_warnings():
    v = [torch.tensor([1.0, 1.0], dtype=torch.float64)]
    indefinite = torch.diag(torch.tensor([1.0, -2.0], dtype=torch.float64))
    with pytest.raises(InverseHVPError, match='raise damping'):
        ConjugateGradient(damping=0.1).solve(matrix_hvp, v, [indefinite])
    ill = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    solver = ConjugateGradient(damping=0.0, max_iter=1, tol=1e-12)
    with pytest.warns(UserWarning, match='max_iter'):
        solver.solve(matrix_hvp, [torch.ones(3, dtype=torch.float64)], [ill])
    assert not solver.converged_
    zero = ConjugateGradient().solve(matrix_hvp, [torch.zeros(3, dtype=torch.float64)], [ill])
    assert torch.equal(zero[0], torch.zeros(3, dtype=torch.float64))


def test_exact_inverse_refuses_large_selections():
    model = nn.Linear(100, 60).double()  # 6060 entries
    scorer = InfluenceScorer(model, ['weight', 'bias'], lambda m, b: m(b).sum(-1), ExactInverse())
    v = [torch.zeros_like(p) for p in scorer.params]
    with pytest.raises(ValueError, match=r'6060 .*limit of 5000'):
        scorer.inverse_hvp(v, [torch.zeros(1, 100, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r'4 .*limit of 3'):
        ExactInverse(max_parameters=3).solve(matrix_hvp, [torch.ones(4)], [torch.eye(4)])


@pytest.mark.parametrize('make, name, value', [
    (lambda: LiSSA(damping=-0.1), 'damping', '-0.1'),
    (lambda: LiSSA(scale=0), 'scale', '0'),
    (lambda: LiSSA(scale=-2.0), 'scale', '-2.0'),
    (lambda: LiSSA(scale='big'), 'scale', "'big'"),
    (lambda: LiSSA(scale=float('nan')), 'scale', 'nan'),
    (lambda: LiSSA(depth=0), 'depth', '0'),
    (lambda: LiSSA(depth=2.5), 'depth', '2.5'),
    (lambda: LiSSA(repeats=0), 'repeats', '0'),
    (lambda: LiSSA(seed=-1), 'seed', '-1'),
    (lambda: LiSSA(auto_scale_factor=0), 'auto_scale_factor', '0'),
    (lambda: LiSSA(power_iters=0), 'power_iters', '0'),
    (lambda: LiSSA(power_batches=0), 'power_batches', '0'),
    (lambda: LiSSA(max_growth=-1.0), 'max_growth', '-1.0'),
    (lambda: LiSSA(repeats=2, repeat_ids=[0]), 'repeat_ids', '[0]'),
    (lambda: LiSSA(repeats=2, repeat_ids=[2], all_reduce=print), 'repeat_ids', '[2]'),
    (lambda: ConjugateGradient(damping=-1), 'damping', '-1'),
    (lambda: ConjugateGradient(max_iter=0), 'max_iter', '0'),
    (lambda: ConjugateGradient(tol=0), 'tol', '0'),
    (lambda: ExactInverse(damping=-1e-3), 'damping', '-0.001'),
    (lambda: ExactInverse(damping=True), 'damping', 'True'),
    # bools are not integers (nor numbers), although Python's bool subclasses int
    (lambda: LiSSA(depth=True), 'depth', 'True'),
    (lambda: LiSSA(repeats=True), 'repeats', 'True'),
    (lambda: LiSSA(seed=False), 'seed', 'False'),
    (lambda: LiSSA(power_iters=True), 'power_iters', 'True'),
    (lambda: LiSSA(power_batches=True), 'power_batches', 'True'),
    (lambda: LiSSA(auto_scale_retries=False), 'auto_scale_retries', 'False'),
    (lambda: LiSSA(scale=True), 'scale', 'True'),
    (lambda: LiSSA(repeats=2, repeat_ids=[0, True], all_reduce=print), 'repeat_ids', 'True'),
    (lambda: ConjugateGradient(max_iter=True), 'max_iter', 'True'),
    (lambda: ExactInverse(max_parameters=True), 'max_parameters', 'True'),
])
def test_arguments_are_validated(make, name, value):
    with pytest.raises(ValueError) as err:
        make()
    assert name in str(err.value) and value in str(err.value)


def test_the_interface_cannot_be_built_without_solve():
    with pytest.raises(TypeError, match='abstract'):
        InverseHVP()
