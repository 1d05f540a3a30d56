"""Inverse Hessian-vector product solvers: ``s = (H + λI)⁻¹ v``.

Every solver implements :meth:`InverseHVP.solve` on a black-box ``hvp_fn(vector, batches)``
that returns ``H_B · vector``, with ``H_B`` the Hessian of the mean per-sample loss over the
samples of ``batches`` (:meth:`InfluenceScorer.hvp` is one; a closed-form matrix product is
another). Vectors are lists of tensors, one per selected parameter. After each ``solve`` every
solver sets ``lambda_``, the λ it actually used.
"""
import abc
import itertools
import math
import warnings
from collections.abc import Sequence as SequenceABC
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple,
                    Type, Union)

import numpy as np
import torch

from . import _ops
from .checks import check_int, check_number, is_int

__all__ = [
    'InverseHVP', 'ExactInverse', 'ConjugateGradient', 'LiSSA', 'InverseHVPError',
    'LiSSADivergenceError', 'SOLVERS', 'register_solver'
]

HVPFn = Callable[[List[torch.Tensor], Iterable], List[torch.Tensor]]
#: ``all_gather(obj) -> [obj of every process]`` (e.g. mmengine's ``all_gather_object``).
GatherFn = Callable[[Any], List[Any]]

#: The solver registry: ``SolverOptions.solver`` name -> solver class. A class becomes
#: selectable by ``scorer=dict(solver=name)`` with :func:`register_solver` alone.
SOLVERS: Dict[str, Type['InverseHVP']] = {}


def register_solver(name: str) -> Callable[[Type['InverseHVP']], Type['InverseHVP']]:
    """Class decorator: make an :class:`InverseHVP` subclass selectable as ``name``.

    The class builds itself from the options with :meth:`InverseHVP.from_options`, says how
    many H·v batches it expects (:meth:`InverseHVP.expected_hvps`) and what it did
    (:meth:`InverseHVP.diagnostics`); its ``OPTIONS`` names the
    :class:`~.options.SolverOptions` fields it reads.
    """
    def register(cls: Type['InverseHVP']) -> Type['InverseHVP']:
        if name in SOLVERS:
            raise ValueError(f'register_solver: a solver named {name!r} is registered '
                             f'already ({SOLVERS[name].__name__})')
        if not (isinstance(cls, type) and issubclass(cls, InverseHVP)):
            raise TypeError(f'register_solver({name!r}): {cls!r} is not an InverseHVP subclass')
        SOLVERS[name] = cls
        return cls
    return register


class InverseHVPError(ArithmeticError):
    """A solver could not produce a finite, trustworthy ``(H + λI)⁻¹ v``."""


class LiSSADivergenceError(InverseHVPError):
    """The LiSSA recursion diverged or produced NaN/Inf.

    Raise ``scale`` (or ``auto_scale_factor`` with ``scale='auto'``) so that
    ``‖I − H/scale‖ < 1`` also for the Hessians of single batches, or raise ``damping`` when
    the Hessian has negative eigenvalues (a non-convex loss). Attributes ``repeat``,
    ``iteration``, ``norm``, ``scale`` and ``damping`` tell where it happened.
    """

    def __init__(self, message: str, *, repeat: int, iteration: int, norm: float, scale: float,
                 damping: float):
        super().__init__(message)
        self.repeat = repeat
        self.iteration = iteration
        self.norm = norm
        self.scale = scale
        self.damping = damping


def check_scale(value: Any, name: str = 'scale', *, owner: Optional[str] = None) -> Any:
    """``value`` if it is LiSSA's scale, ``'auto'`` or a finite number > 0; otherwise
    ValueError naming ``owner`` and ``name``."""
    if isinstance(value, str) and value == 'auto':
        return value
    try:
        return check_number(value, name, minimum=0, open_min=True, owner=owner)
    except ValueError:
        prefix = f'{owner}: ' if owner else ''
        raise ValueError(f"{prefix}{name} must be 'auto' or a finite number > 0, "
                         f'got {value!r}') from None


def _check_vector(vector: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    vector = [v.detach() for v in vector]
    if not _ops.all_finite(vector):
        raise InverseHVPError('the vector to solve for holds NaN/Inf: fix the reference '
                              'gradient before inverting the Hessian')
    return vector


class InverseHVP(abc.ABC):
    """Interface of the inverse Hessian-vector product solvers.

    Attributes:
        lambda_: after :meth:`solve`, the λ of ``(H + λI)⁻¹ v`` that the solver used.
    """

    @property
    def distributed(self) -> bool:
        """Whether the solver spreads its own work over processes (then every process passes
        it every batch and local Hessian-vector products); otherwise a distributed caller
        passes its shard of the batches and products summed over the processes."""
        return False

    lambda_: Optional[float] = None
    #: the :class:`~.options.SolverOptions` fields :meth:`from_options` reads
    OPTIONS: Tuple[str, ...] = ()

    @classmethod
    def from_options(cls, opts: Any, *, seed: int, num_batches: int,
                     rank: int = 0, world_size: int = 1,
                     all_reduce: Optional[Callable[[torch.Tensor], Any]] = None
                     ) -> 'InverseHVP':
        """The solver ``opts`` describe, for ``num_batches`` Hessian batches.

        Args:
            opts: the solver options, a :class:`~.options.SolverOptions` (not imported here:
                that module imports this one for the registry).
            seed: seeds whatever the solver draws.
            num_batches: Hessian batches the solve will see (per pass).
            rank, world_size: this process and the number of processes.
            all_reduce: sums a tensor in place over the processes; None on one process.
        """
        raise NotImplementedError(f'{cls.__name__} cannot be built from options; implement '
                                  f'from_options to register it')

    def expected_hvps(self, num_batches: int) -> int:
        """H·v batches a :meth:`solve` over ``num_batches`` batches is expected to take (for
        a progress line; an upper bound where the solver may stop early)."""
        return num_batches

    def diagnostics(self, all_gather: Optional[GatherFn] = None) -> dict:
        """What the last :meth:`solve` did, as plain data: ``type`` and ``lambda_``, plus
        the solver's own facts. ``all_gather`` gathers per-process facts in a distributed
        solve; every process must call it when any does."""
        return dict(type=type(self).__name__, lambda_=self.lambda_)

    @abc.abstractmethod
    def solve(self, hvp_fn: HVPFn, vector: Sequence[torch.Tensor],
              batches: Iterable) -> List[torch.Tensor]:
        """Estimate ``(H + λI)⁻¹ vector``.

        Args:
            hvp_fn: ``hvp_fn(vector, batches) -> list[Tensor]`` returns ``H_B · vector`` for the
                mean per-sample loss over the samples of ``batches``.
            vector: one tensor per selected parameter.
            batches: a re-iterable of batches (list or DataLoader) passed on to ``hvp_fn``.

        Returns:
            One tensor per selected parameter, same shapes, dtypes and devices as ``vector``.
        """


@register_solver('exact')
class ExactInverse(InverseHVP):
    """Build H explicitly and solve ``(H + damping·I) s = v``: the reference for tests.

    H is built column by column: one ``hvp_fn`` call (a pass over ``batches``) per parameter
    entry, then symmetrised. Meant for tiny parameter sets only.

    Args:
        damping: λ ≥ 0 added to the diagonal.
        max_parameters: refuse selections with more entries than this (default
            :attr:`MAX_PARAMETERS` = 5000): H would be too big and too slow to build.

    Attributes:
        hessian_: the ``P × P`` Hessian built by the last :meth:`solve` (without damping).
    """

    MAX_PARAMETERS = 5000
    OPTIONS = ('damping', )

    @classmethod
    def from_options(cls, opts: Any, *, seed: int, num_batches: int,
                     rank: int = 0, world_size: int = 1,
                     all_reduce: Optional[Callable[[torch.Tensor], Any]] = None
                     ) -> 'ExactInverse':
        """``ExactInverse(damping)``: λ is ``opts.damping`` itself (see
        :meth:`InverseHVP.from_options`)."""
        return cls(damping=opts.damping)

    def expected_hvps(self, num_batches: int) -> int:
        """``num_batches``: one pass per parameter entry, whose count is not known before."""
        return num_batches

    def __init__(self, damping: float = 0.0, max_parameters: int = MAX_PARAMETERS):
        check_number(damping, 'damping', minimum=0, owner='ExactInverse')
        check_int(max_parameters, 'max_parameters', minimum=1, owner='ExactInverse')
        self.damping = float(damping)
        self.max_parameters = max_parameters
        self.hessian_: Optional[torch.Tensor] = None

    def __repr__(self) -> str:
        return f'ExactInverse(damping={self.damping})'

    def solve(self, hvp_fn: HVPFn, vector: Sequence[torch.Tensor],
              batches: Iterable) -> List[torch.Tensor]:
        vector = _check_vector(vector)
        flat_v = _ops.flatten(vector)
        size = flat_v.numel()
        if size > self.max_parameters:
            raise ValueError(f'ExactInverse: the selection has {size} parameter entries, more '
                             f'than its limit of {self.max_parameters}; use ConjugateGradient '
                             f'or LiSSA, or select fewer parameters')
        columns = []
        for i in range(size):
            basis = torch.zeros_like(flat_v)
            basis[i] = 1
            columns.append(_ops.flatten(hvp_fn(_ops.unflatten(basis, vector), batches)))
        hessian = torch.stack(columns, dim=1)
        hessian = (hessian + hessian.T) / 2
        self.hessian_ = hessian
        self.lambda_ = self.damping
        system = hessian + self.damping * torch.eye(size, dtype=hessian.dtype,
                                                    device=hessian.device)
        try:
            solution = torch.linalg.solve(system, flat_v.to(hessian))
        except RuntimeError as err:  # torch.linalg.LinAlgError is a RuntimeError
            raise InverseHVPError(f'ExactInverse: H + {self.damping}·I is singular; raise '
                                  f'damping ({err})') from err
        return _ops.unflatten(solution, vector)


@register_solver('cg')
class ConjugateGradient(InverseHVP):
    """Conjugate gradient on ``(H + damping·I) s = v``, H the mean Hessian over all of
    ``batches`` (one pass over them per iteration).

    Args:
        damping: λ ≥ 0 added to the diagonal. CG needs ``H + λI`` positive definite: raise
            damping for non-convex losses.
        max_iter: at most this many iterations (≥ 1). In exact arithmetic CG converges in at
            most P (number of parameter entries) iterations.
        tol: stop when ``‖(H + λI)s − v‖ ≤ tol·‖v‖`` (> 0).

    Attributes:
        residuals_: relative residual norm after each iteration of the last :meth:`solve`.
        converged_: whether the last :meth:`solve` reached ``tol`` (if not, a warning is
            issued and the last iterate returned).
    """

    OPTIONS = ('damping', 'depth')
    #: the most iterations when the options give no ``depth``
    DEFAULT_MAX_ITER = 100

    @classmethod
    def from_options(cls, opts: Any, *, seed: int, num_batches: int,
                     rank: int = 0, world_size: int = 1,
                     all_reduce: Optional[Callable[[torch.Tensor], Any]] = None
                     ) -> 'ConjugateGradient':
        """CG with λ = ``opts.damping`` and at most ``opts.depth`` iterations (default 100);
        see :meth:`InverseHVP.from_options`."""
        return cls(damping=opts.damping, max_iter=opts.depth or cls.DEFAULT_MAX_ITER)

    def expected_hvps(self, num_batches: int) -> int:
        """``max_iter`` passes over the batches: an upper bound (CG may converge before)."""
        return self.max_iter * num_batches

    def __init__(self, damping: float = 0.01, max_iter: int = 100, tol: float = 1e-8):
        check_number(damping, 'damping', minimum=0, owner='ConjugateGradient')
        check_int(max_iter, 'max_iter', minimum=1, owner='ConjugateGradient')
        check_number(tol, 'tol', minimum=0, open_min=True, owner='ConjugateGradient')
        self.damping = float(damping)
        self.max_iter = max_iter
        self.tol = float(tol)
        self.residuals_: List[float] = []
        self.converged_: Optional[bool] = None

    def __repr__(self) -> str:
        return (f'ConjugateGradient(damping={self.damping}, max_iter={self.max_iter}, '
                f'tol={self.tol})')

    def solve(self, hvp_fn: HVPFn, vector: Sequence[torch.Tensor],
              batches: Iterable) -> List[torch.Tensor]:
        vector = _check_vector(vector)
        self.lambda_ = self.damping
        self.residuals_ = []
        self.converged_ = False
        v_norm = _ops.norm(vector)
        x = _ops.zeros_like(vector)
        if v_norm == 0:
            self.converged_ = True
            return x
        r = list(vector)
        p = list(vector)
        rs = _ops.dot(r, r)
        for it in range(self.max_iter):
            ap = _ops.add(hvp_fn(p, batches), p, self.damping)
            pap = _ops.dot(p, ap)
            if not torch.isfinite(pap) or pap <= 0:
                raise InverseHVPError(
                    f'ConjugateGradient: pᵀ(H + λI)p = {float(pap):.3g} at iteration {it}: '
                    f'H + {self.damping}·I is not positive definite (or not finite); raise '
                    f'damping')
            alpha = rs / pap
            x = _ops.add(x, p, alpha)
            r = _ops.add(r, ap, -alpha)
            rs_new = _ops.dot(r, r)
            residual = math.sqrt(float(rs_new)) / v_norm
            self.residuals_.append(residual)
            if residual <= self.tol:
                self.converged_ = True
                break
            p = _ops.add(r, p, rs_new / rs)
            rs = rs_new
        if not self.converged_:
            warnings.warn(f'ConjugateGradient did not reach tol={self.tol} in '
                          f'max_iter={self.max_iter} iterations (relative residual '
                          f'{self.residuals_[-1]:.3g}); raise max_iter or damping')
        return x


class _LazySubset(SequenceABC):
    """``[batches[i] for i in indices]`` without holding the batches in memory."""

    def __init__(self, batches: Sequence, indices: List[int]):
        self.batches = batches
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        return self.batches[self.indices[k]]


class _FirstBatches:
    """The first ``count`` batches of a re-iterable, re-iterable itself."""

    def __init__(self, batches: Iterable, count: int):
        self.batches = batches
        self.count = count

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.batches), self.count)


@register_solver('lissa')
class LiSSA(InverseHVP):
    """LiSSA (Agarwal et al. 2017): the truncated, stochastic Neumann series of ISAL.

    Per repeat, with ``s_0 = v`` and for ``j = 1 … depth``::

        s_j = v + (1 − damping)·s_{j−1} − H_j·s_{j−1} / scale

    where ``H_j`` is the Hessian of the mean per-sample loss of the ``j``-th batch drawn. The
    fixed point is ``s = scale·(H + damping·scale·I)⁻¹ v``; the estimate ``s_depth / scale``,
    averaged over repeats, therefore approximates::

        (H + λ·I)⁻¹ v    with    λ = damping · scale

    **λ is damping times scale**, not damping (available after a solve as ``lambda_``). For a
    given λ, pass a number as ``scale`` (≥ the top Hessian eigenvalue, e.g. from a previous
    ``scale='auto'`` run's ``scale_``) and ``damping = λ / scale``. With ``scale='auto'``
    λ = damping·auto_scale_factor·λ_max(H): a fixed fraction of the top eigenvalue.

    The series converges when ``‖I − (H + λI)/scale‖ < 1``, i.e. ``0 < λ_i(H) + λ <
    2·scale`` for every eigenvalue; for a positive semi-definite H and ``scale ≥ λ_max`` the
    truncation error shrinks at least like ``(1 − damping)^depth``, so choose ``depth ≳ 5 /
    damping`` (default 500 for damping 0.01). Negative curvature larger than λ makes it
    diverge: raise damping. With batches smaller than the whole set, each repeat is a noisy
    estimate whose noise does not shrink with depth: average repeats, use larger batches.

    Drawing batches: a :class:`~collections.abc.Sequence` (list, tuple) is visited pass after
    pass, each pass in a fresh random permutation from a generator seeded by ``(seed,
    repeat)``, so the result is deterministic and a single batch holding every sample gives
    the deterministic Neumann series. Any other re-iterable (a DataLoader) is iterated in its
    own order (its sampler decides shuffling and determinism), restarting when exhausted;
    every repeat starts a new iteration. Each repeat draws ``depth`` batches.

    ``scale='auto'``: before the repeats, power iteration on the mean Hessian over all of
    ``batches`` (or over ``power_batches`` of them: for a Sequence the first ones repeat 0
    draws, otherwise the first ones iterated) estimates the largest-magnitude eigenvalue
    λ_max: one pass over those batches per iteration, at most ``power_iters`` passes,
    stopping early when the Rayleigh quotient changes by less than ``power_tol`` relatively.
    The Rayleigh quotient approaches λ_max from below. scale = ``auto_scale_factor ·
    |λ_max|``. The factor
    (default 2) makes ``‖I − H/scale‖ ≈ 1/2`` for the mean Hessian and leaves room for
    single batches whose Hessians are larger than the mean; raise it for small, diverse
    batches.

    Divergence: after every iteration the estimate must be finite and ``‖s_j‖ ≤
    max_growth · (j + 1) · ‖v‖`` (a convergent series obeys ``‖s_j‖ ≤ (j + 1)‖v‖``).
    Nothing is ever reset or skipped. With a numeric scale a divergence raises
    :class:`LiSSADivergenceError`. With ``scale='auto'`` it means that a batch's Hessian is
    larger than the power iteration saw: the scale is doubled and every repeat starts again,
    at most ``auto_scale_retries`` times (``scale_retries_`` counts them; λ = damping·scale
    doubles with it), then the error is raised. In a distributed solve the processes agree
    on it: all of them start again when one diverged.

    Spreading repeats over processes: :meth:`_one_repeat` depends only on ``(seed, repeat)``
    and its arguments, so a distributed caller passes ``repeat_ids`` (e.g.
    ``range(rank, repeats, world_size)``) and ``all_reduce`` (sums a tensor in place over the
    processes, e.g. ``torch.distributed.all_reduce``). The local sum of estimates is then
    all-reduced and divided by ``repeats``; with ``scale='auto'`` the per-process λ_max
    estimates are averaged through the same hook so that all processes use one scale.

    Args:
        damping: ≥ 0 (typically < 1), see λ above.
        scale: a number > 0, or ``'auto'``.
        depth: iterations per repeat, ≥ 1.
        repeats: independent repeats averaged, ≥ 1.
        seed: seeds the batch order (Sequences) and the power-iteration start vector.
        auto_scale_factor: > 0, the safety factor of ``scale='auto'``.
        power_iters: ≥ 1, most power iterations for ``scale='auto'``.
        power_tol: ≥ 0, relative change of the eigenvalue estimate that stops power iteration.
        power_batches: ``None`` (all batches) or ≥ 1: how many batches power iteration uses.
        max_growth: > 0, the divergence threshold above.
        auto_scale_retries: ≥ 0, how often ``scale='auto'`` doubles the scale after a
            divergence before raising.
        repeat_ids: the repeats this process runs (default: all ``range(repeats)``).
        all_reduce: ``all_reduce(tensor)`` sums ``tensor`` in place over processes.

    Attributes (set by each :meth:`solve`):
        scale_: the scale used. lambda_: λ = damping·scale_.
        scale_retries_: how often ``scale='auto'`` doubled the scale after a divergence.
        top_eigenvalue_: the power-iteration estimate of λ_max (``None`` for a numeric scale).
        trace_: ``trace_[k][j]`` is ``‖s_{j+1}‖ / scale``, the norm of the estimate after
            iteration ``j + 1`` of the ``k``-th repeat run here; a flat tail means converged.
    """

    OPTIONS = ('damping', 'scale', 'depth', 'repeats', 'power_iters', 'power_batches')

    @classmethod
    def from_options(cls, opts: Any, *, seed: int, num_batches: int,
                     rank: int = 0, world_size: int = 1,
                     all_reduce: Optional[Callable[[torch.Tensor], Any]] = None) -> 'LiSSA':
        """LiSSA as ISAL runs it (see :meth:`InverseHVP.from_options`): ``opts.depth``
        iterations per repeat (default: one pass, ``num_batches``), power iteration on at most
        ``num_batches`` batches. On several processes (``all_reduce`` and ``world_size > 1``)
        this process runs repeats ``rank, rank + world_size, ...`` and the estimates are
        summed with ``all_reduce`` (the paper: 4 repeats on 4 GPUs); the result does not
        depend on the world size, since each repeat depends on ``(seed, repeat)`` only."""
        distributed = all_reduce is not None and world_size > 1
        return cls(damping=opts.damping, scale=opts.scale, depth=opts.depth or num_batches,
                   repeats=opts.repeats, seed=seed, power_iters=opts.power_iters,
                   power_batches=min(opts.power_batches, num_batches),
                   repeat_ids=range(rank, opts.repeats, world_size) if distributed else None,
                   all_reduce=all_reduce if distributed else None)

    def expected_hvps(self, num_batches: int) -> int:
        """``depth`` per repeat run here, plus the power iteration's batches with
        ``scale='auto'``."""
        power = self.power_batches if self.power_batches is not None else num_batches
        return len(self.repeat_ids) * self.depth + (
            self.power_iters * power if self.scale == 'auto' else 0)

    def diagnostics(self, all_gather: Optional[GatherFn] = None) -> dict:
        """Also ``scale``, ``top_eigenvalue``, ``scale_retries`` and ``trace``, the traces of
        every repeat in repeat order, gathered from every process with ``all_gather``."""
        out = super().diagnostics(all_gather)
        mine = list(zip(self.repeat_ids, self.trace_))
        traces = all_gather(mine) if all_gather is not None else [mine]
        out.update(scale=self.scale_, top_eigenvalue=self.top_eigenvalue_,
                   scale_retries=self.scale_retries_,
                   trace=[t for _, t in sorted(p for part in traces for p in part)])
        return out

    def __init__(self, damping: float = 0.01, scale: Union[float, str] = 'auto',
                 depth: int = 500, repeats: int = 1, seed: int = 0, *,
                 auto_scale_factor: float = 2.0, power_iters: int = 20,
                 power_tol: float = 1e-3, power_batches: Optional[int] = None,
                 max_growth: float = 10.0, auto_scale_retries: int = 3,
                 repeat_ids: Optional[Iterable[int]] = None,
                 all_reduce: Optional[Callable[[torch.Tensor], Any]] = None):
        check_number(damping, 'damping', minimum=0, owner='LiSSA')
        check_scale(scale, 'scale', owner='LiSSA')
        check_int(depth, 'depth', minimum=1, owner='LiSSA')
        check_int(repeats, 'repeats', minimum=1, owner='LiSSA')
        check_int(seed, 'seed', minimum=0, owner='LiSSA')
        check_number(auto_scale_factor, 'auto_scale_factor', minimum=0, open_min=True,
                     owner='LiSSA')
        check_int(power_iters, 'power_iters', minimum=1, owner='LiSSA')
        check_number(power_tol, 'power_tol', minimum=0, owner='LiSSA')
        check_int(power_batches, 'power_batches', minimum=1, none_ok=True, owner='LiSSA')
        check_number(max_growth, 'max_growth', minimum=0, open_min=True, owner='LiSSA')
        check_int(auto_scale_retries, 'auto_scale_retries', minimum=0, owner='LiSSA')
        if repeat_ids is None:
            repeat_ids = range(repeats)
        repeat_ids = list(repeat_ids)
        bad = [r for r in repeat_ids if not is_int(r) or not 0 <= r < repeats]
        if bad or len(set(repeat_ids)) != len(repeat_ids):
            raise ValueError(f'LiSSA: repeat_ids must be distinct integers in [0, repeats='
                             f'{repeats}), got {repeat_ids!r}')
        if all_reduce is not None and not callable(all_reduce):
            raise ValueError(f'LiSSA: all_reduce must be callable, got {all_reduce!r}')
        if all_reduce is None and sorted(repeat_ids) != list(range(repeats)):
            raise ValueError(f'LiSSA: without all_reduce this process must run every repeat, '
                             f'but repeat_ids={repeat_ids!r} for repeats={repeats}')
        self.damping = float(damping)
        self.scale = 'auto' if isinstance(scale, str) else float(scale)
        self.depth = depth
        self.repeats = repeats
        self.seed = seed
        self.auto_scale_factor = float(auto_scale_factor)
        self.power_iters = power_iters
        self.power_tol = float(power_tol)
        self.power_batches = power_batches
        self.max_growth = float(max_growth)
        self.auto_scale_retries = auto_scale_retries
        self.scale_retries_ = 0
        self.repeat_ids = repeat_ids
        self.all_reduce = all_reduce
        self.scale_: Optional[float] = None
        self.top_eigenvalue_: Optional[float] = None
        self.trace_: List[List[float]] = []

    def __repr__(self) -> str:
        return (f'LiSSA(damping={self.damping}, scale={self.scale!r}, depth={self.depth}, '
                f'repeats={self.repeats}, seed={self.seed})')

    @property
    def distributed(self) -> bool:
        """True with ``all_reduce``: repeats are spread over processes (see the class doc)."""
        return self.all_reduce is not None

    # -- drawing batches ----------------------------------------------------------------------

    def _draw(self, batches: Iterable, repeat: int) -> Iterator[Any]:
        """Endless stream of batches for one repeat (see the class docstring)."""
        if isinstance(batches, SequenceABC):
            if len(batches) == 0:
                raise ValueError('LiSSA: batches is empty')
            rng = np.random.default_rng([self.seed, repeat])
            while True:
                for i in rng.permutation(len(batches)):
                    yield batches[int(i)]
        else:
            while True:
                empty = True
                for batch in batches:
                    empty = False
                    yield batch
                if empty:
                    raise ValueError('LiSSA: batches yielded no batch')

    def _power_subset(self, batches: Iterable) -> Iterable:
        """The batches power iteration uses: all, or the first ``power_batches`` (lazily)."""
        if self.power_batches is None:
            return batches
        if isinstance(batches, SequenceABC):
            if len(batches) == 0:
                raise ValueError('LiSSA: batches is empty')
            order = np.random.default_rng([self.seed, 0]).permutation(len(batches))  # as repeat 0
            return _LazySubset(batches, order[:self.power_batches].tolist())
        return _FirstBatches(batches, self.power_batches)

    # -- scale ----------------------------------------------------------------------------------

    def top_eigenvalue(self, hvp_fn: HVPFn, like: Sequence[torch.Tensor],
                       batches: Iterable) -> float:
        """Largest-magnitude eigenvalue of the mean Hessian over ``batches``, by power
        iteration from a seeded random start (Rayleigh quotient, signed)."""
        gen = torch.Generator().manual_seed(self.seed)
        x = [torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t) for t in like]
        x = _ops.scale(x, 1.0 / _ops.norm(x))
        eig = None
        for _ in range(self.power_iters):
            hx = hvp_fn(x, batches)
            new = float(_ops.dot(x, hx))
            size = _ops.norm(hx)
            if not math.isfinite(size) or not math.isfinite(new):
                raise InverseHVPError('LiSSA: the Hessian-vector product holds NaN/Inf during '
                                      "power iteration for scale='auto'; check the loss")
            if size == 0:
                raise InverseHVPError("LiSSA: the Hessian is zero, scale='auto' cannot choose "
                                      'a scale; check that the loss depends on the selected '
                                      'parameters or pass a numeric scale')
            done = eig is not None and abs(new - eig) <= self.power_tol * abs(new)
            eig = new
            if done:
                break
            x = _ops.scale(hx, 1.0 / size)
        return eig

    def _any_process(self, flag: bool, device) -> bool:
        """Whether ``flag`` holds on this process or, in a distributed solve, on any."""
        if self.all_reduce is None:
            return flag
        both = torch.tensor([float(flag)], dtype=torch.float64, device=device)
        self.all_reduce(both)
        return bool(both[0] > 0)

    def _resolve_scale(self, hvp_fn: HVPFn, vector: Sequence[torch.Tensor],
                       batches: Iterable) -> float:
        if self.scale != 'auto':
            self.top_eigenvalue_ = None
            return self.scale
        eig = self.top_eigenvalue(hvp_fn, vector, self._power_subset(batches))
        if self.all_reduce is not None:
            both = torch.tensor([eig, 1.0], dtype=torch.float64, device=vector[0].device)
            self.all_reduce(both)
            eig = float(both[0] / both[1])
        self.top_eigenvalue_ = eig
        scale = self.auto_scale_factor * abs(eig)
        if scale == 0:
            raise InverseHVPError("LiSSA: the Hessian's top eigenvalue is 0, scale='auto' "
                                  'cannot choose a scale; pass a numeric scale')
        return scale

    # -- the recursion --------------------------------------------------------------------------

    def _one_repeat(self, hvp_fn: HVPFn, vector: Sequence[torch.Tensor], batches: Iterable,
                    repeat: int, scale: float):
        """Run one repeat of the recursion.

        Returns:
            ``(estimate, trace)``: ``s_depth / scale`` (one tensor per parameter) and the list
            of ``‖s_j‖ / scale`` for ``j = 1 … depth``.

        Raises:
            LiSSADivergenceError: the estimate became NaN/Inf or outgrew the bound.
        """
        v_norm = _ops.norm(vector)
        stream = self._draw(batches, repeat)
        try:
            s, trace = self._recursion(hvp_fn, vector, stream, repeat, scale, v_norm)
        finally:
            stream.close()  # releases a DataLoader's iterator (and its workers) at once
        return _ops.scale(s, 1.0 / scale), trace

    def _recursion(self, hvp_fn: HVPFn, vector: List[torch.Tensor], stream: Iterator[Any],
                   repeat: int, scale: float, v_norm: float):
        s = list(vector)
        trace = []
        for j in range(1, self.depth + 1):
            hs = hvp_fn(s, [next(stream)])
            s = [v + (1 - self.damping) * x - h / scale for v, x, h in zip(vector, s, hs)]
            s_norm = _ops.norm(s)
            trace.append(s_norm / scale)
            if not math.isfinite(s_norm) or s_norm > self.max_growth * (j + 1) * v_norm:
                what = 'became NaN/Inf' if not math.isfinite(s_norm) else 'diverged'
                raise LiSSADivergenceError(
                    f'LiSSA {what} at iteration {j} of repeat {repeat}: ‖s_j‖ = {s_norm:.3g} '
                    f'for ‖v‖ = {v_norm:.3g} (scale={scale:.4g}, damping={self.damping}). '
                    f'Raise scale (or auto_scale_factor) so that ‖I − H/scale‖ < 1 for every '
                    f'batch, or raise damping if the Hessian has negative eigenvalues',
                    repeat=repeat, iteration=j, norm=s_norm, scale=scale,
                    damping=self.damping)
        return s, trace

    def solve(self, hvp_fn: HVPFn, vector: Sequence[torch.Tensor],
              batches: Iterable) -> List[torch.Tensor]:
        """Estimate ``(H + damping·scale·I)⁻¹ vector`` (see the class docstring)."""
        vector = _check_vector(vector)
        scale = self._resolve_scale(hvp_fn, vector, batches)
        self.scale_retries_ = 0
        while True:
            self.trace_ = []
            self.scale_ = scale
            self.lambda_ = self.damping * scale
            total, error = _ops.zeros_like(vector), None
            try:
                for repeat in self.repeat_ids:
                    estimate, trace = self._one_repeat(hvp_fn, vector, batches, repeat, scale)
                    self.trace_.append(trace)
                    total = _ops.add(total, estimate)
            except LiSSADivergenceError as e:
                error = e
            if not self._any_process(error is not None, vector[0].device):
                break
            if self.scale != 'auto' or self.scale_retries_ >= self.auto_scale_retries:
                if error is None:
                    raise LiSSADivergenceError(
                        f'LiSSA diverged on another process (scale={scale:.4g}, damping='
                        f'{self.damping})', repeat=-1, iteration=-1, norm=math.inf,
                        scale=scale, damping=self.damping)
                if self.scale == 'auto':
                    error.args = (f'{error.args[0]} (scale=\'auto\' doubled the scale '
                                  f'{self.scale_retries_} times)', ) + error.args[1:]
                raise error
            scale *= 2
            self.scale_retries_ += 1
        if self.all_reduce is not None:
            flat = _ops.flatten(total)
            self.all_reduce(flat)
            total = _ops.unflatten(flat, total)
        return _ops.scale(total, 1.0 / self.repeats)
