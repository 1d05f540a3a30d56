"""Influence of single samples on a reference loss: I(z) = − ∇θ l(R)ᵀ (H + λI)⁻¹ ∇θ l(z)."""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from . import _ops
from .hvp import (batch_hvp, directional_derivatives, gradient, mean_hvp, sample_losses,
                  sum_hvp)
from .layerwise import (LayerwiseError, layerwise_directional_derivatives, layerwise_sum_hvp,
                        linear_layer_owners)
from .params import restrict_grad, select_parameters
from .solvers import InverseHVP

__all__ = ['InfluenceScorer']

LossFn = Callable[[nn.Module, Any], torch.Tensor]

_REDUCTIONS = ('sum', 'mean')
_SCORE_MODES = ('auto', 'layerwise', 'backward', 'forward')


class _LossModule(nn.Module):
    """``loss_fn(model, batch)`` as a module, so that ``torch.func.functional_call`` can swap
    the model's parameters for dual tensors without touching ``loss_fn``."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


def _require_reiterable(batches: Iterable, what: str) -> None:
    if iter(batches) is batches:
        raise ValueError(f'{what}: batches must be re-iterable (a list or a DataLoader), got a '
                         f'one-shot iterator ({type(batches).__name__}); it is read more than '
                         f'once')


class InfluenceScorer:
    """Per-sample influence on a reference loss, restricted to selected parameters.

    ``I(z, R) = − ∇θ l(z)ᵀ · s_test``,  ``s_test = (H + λI)⁻¹ ∇θ l(R)``, with H the Hessian of
    the mean per-sample training loss (see ``docs/method.md``, "The influence of an unlabeled
    image"). Negative influence: adding z lowers the reference loss.

    Args:
        model: the model; its parameters outside the selection are frozen during every call.
        params: names, module names or regular expressions (see :func:`select_parameters`), or
            a ``{name: parameter}`` dict of parameters of ``model``. Vectors (gradients,
            s_test) are lists of tensors in this order.
        loss_fn: ``loss_fn(model, batch) -> Tensor[B]``, one loss per sample of the batch, each
            depending on that sample only (no batch-level normalisation). ``batch`` is opaque:
            the scorer never looks inside; B is read from the returned tensor.
        ihvp: the inverse-HVP solver (:class:`LiSSA`, :class:`ConjugateGradient`,
            :class:`ExactInverse`).
        score_mode: how :meth:`score` gets ``∇θ l(z) · s_test`` for a batch.
            ``'layerwise'``: when every selected parameter is the weight or bias of a
            ``Linear`` or ``Conv`` layer (the presets' final layers), one ordinary backward
            from the losses to those layers' outputs and one evaluation of each layer with
            ``s_test`` as its parameters (:mod:`~mmdet_isal.influence.layerwise`; rows of a
            layer output belong to samples as :func:`~.layerwise.sample_rows` says). The first
            batch of every :meth:`score` call is checked against the gradient of the summed
            loss. ``'backward'``: the double-backward trick in pure ``torch.autograd`` (one
            gradient with ``create_graph=True`` and one more backward per batch), which every
            op with a twice-usable backward supports. ``'forward'``: forward-mode AD with
            ``torch.func.jvp``; many detection ops (custom autograd Functions, compiled mmcv
            ops) have no forward-mode formula. ``'auto'`` (default): ``'layerwise'`` where it
            applies (and its check passes), else ``'backward'``; :attr:`score_mode_` says
            which one the last :meth:`score` used. All give the same numbers up to rounding.
            Under ``'auto'`` and ``'layerwise'``, Hessian-vector products too go through the
            layers' outputs (``H = Jᵀ ∇²_y L J``, a double backward through the loss alone)
            when no selected layer's input depends on a selected parameter; the first product
            is checked against the double backward (:attr:`hvp_mode_`).
        all_reduce: for several processes, ``all_reduce(tensor)`` sums a tensor in place over
            them (e.g. ``torch.distributed.all_reduce``). Each process then passes its own
            shard of the samples: :meth:`reference_gradient` sums the gradients and the sample
            counts over the processes, and so does every Hessian-vector product of
            :meth:`hvp` and :meth:`inverse_hvp`, except with a solver that spreads its own
            work (:attr:`InverseHVP.distributed`, LiSSA with ``repeat_ids``), which gets the
            whole Hessian set on every process and local products. Per-sample scores need no
            communication. Every process gets the same result as one process with every
            sample, up to the order of floating-point sums.

    Every method runs with only the selected parameters requiring grad and restores each
    parameter's ``requires_grad`` and ``.grad`` and each module's train/eval flag afterwards,
    also on errors. It does not change train/eval mode: put the model in the mode you want
    (usually ``model.eval()``) before calling.
    """

    def __init__(self, model: nn.Module, params: Union[Sequence[str], str, Dict[str, nn.Parameter]],
                 loss_fn: LossFn, ihvp: InverseHVP, score_mode: str = 'auto',
                 all_reduce: Optional[Callable[[torch.Tensor], Any]] = None):
        if not isinstance(model, nn.Module):
            raise ValueError(f'InfluenceScorer: model must be a torch.nn.Module, got '
                             f'{type(model).__name__}')
        if not callable(loss_fn):
            raise ValueError(f'InfluenceScorer: loss_fn must be callable, got {loss_fn!r}')
        if not isinstance(ihvp, InverseHVP):
            raise ValueError(f'InfluenceScorer: ihvp must be an InverseHVP solver (LiSSA, '
                             f'ConjugateGradient, ExactInverse), got {ihvp!r}')
        if score_mode not in _SCORE_MODES:
            raise ValueError(f'InfluenceScorer: score_mode must be one of {_SCORE_MODES}, got '
                             f'{score_mode!r}')
        if all_reduce is not None and not callable(all_reduce):
            raise ValueError(f'InfluenceScorer: all_reduce must be callable, got {all_reduce!r}')
        if isinstance(params, dict):
            owned = {id(p) for p in model.parameters()}
            for name, p in params.items():
                if not isinstance(p, torch.Tensor) or id(p) not in owned:
                    raise ValueError(f'InfluenceScorer: params[{name!r}] is not a parameter of '
                                     f'the model')
            if not params:
                raise ValueError('InfluenceScorer: params is empty')
            selected = dict(params)
        else:
            selected = select_parameters(model, params)
        self.model = model
        self.loss_fn = loss_fn
        self.ihvp = ihvp
        self.score_mode = score_mode
        self.all_reduce = all_reduce
        self.param_names: List[str] = list(selected)
        self.params: List[nn.Parameter] = list(selected.values())
        self.s_test_: Optional[List[torch.Tensor]] = None
        self._owners = (linear_layer_owners(model, self.params)
                        if score_mode in ('auto', 'layerwise') else None)
        if score_mode == 'layerwise' and self._owners is None:
            raise ValueError(f'InfluenceScorer: score_mode=\'layerwise\' needs every selected '
                             f'parameter to be the weight or bias of a Linear or Conv layer; '
                             f'{self.param_names} are not: use score_mode=\'backward\'')
        #: the mode the last :meth:`score` / :meth:`score_batch` used, and why (``'auto'``)
        self.score_mode_: Optional[str] = None
        self.score_mode_reason_: Optional[str] = None
        #: how Hessian-vector products are formed (``'layerwise'`` or ``'backward'``), decided
        #: at the first one, and why
        self.hvp_mode_: Optional[str] = None
        self.hvp_mode_reason_: Optional[str] = None

    def __repr__(self) -> str:
        return (f'InfluenceScorer({type(self.model).__name__}, params={self.param_names}, '
                f'ihvp={self.ihvp!r}, score_mode={self.score_mode!r})')

    @property
    def num_parameters(self) -> int:
        """Number of selected parameter entries (the length of a flattened vector)."""
        return sum(p.numel() for p in self.params)

    def _scope(self):
        return restrict_grad(self.model, self.params)

    def _vector(self, vector: Sequence[torch.Tensor], what: str) -> List[torch.Tensor]:
        """Check a parameter-shaped vector and move it to the parameters' devices/dtypes."""
        vector = list(vector)
        if len(vector) != len(self.params):
            raise ValueError(f'{what}: expected {len(self.params)} tensors (one per selected '
                             f'parameter: {self.param_names}), got {len(vector)}')
        out = []
        for name, p, v in zip(self.param_names, self.params, vector):
            if tuple(v.shape) != tuple(p.shape):
                raise ValueError(f'{what}: tensor for {name} has shape {tuple(v.shape)}, the '
                                 f'parameter has {tuple(p.shape)}')
            out.append(v.detach().to(device=p.device, dtype=p.dtype))
        return out

    # -- building blocks --------------------------------------------------------------------

    def _sum_over_processes(self, total: Optional[List[torch.Tensor]],
                            count: int) -> Tuple[List[torch.Tensor], int]:
        """``(Σ total, Σ count)`` over the processes (``total`` None: this shard is empty)."""
        if total is None:
            total = [torch.zeros_like(p) for p in self.params]
        flat = _ops.flatten(total)
        both = torch.cat([flat, flat.new_tensor([float(count)])])
        self.all_reduce(both)
        return _ops.unflatten(both[:-1], total), int(round(float(both[-1])))

    def _batch_hvp(self, vector: List[torch.Tensor], batch: Any):
        """One batch's ``(Σ_i ∇²l_i · vector, B)``: layerwise where it applies (decided on the
        first batch this scorer sees, against the double backward), else double backward."""
        if self.hvp_mode_ is None:
            self.hvp_mode_ = 'backward'
            if self.score_mode in ('auto', 'layerwise') and self._owners is not None:
                self.hvp_mode_ = 'layerwise'
                try:
                    fast, count = layerwise_sum_hvp(self.loss_fn, self.model, batch,
                                                    self.params, self._owners, vector)
                    slow, _ = batch_hvp(self.model, self.params, self.loss_fn, vector, batch)
                    error = _ops.norm(_ops.add(fast, slow, -1.0))
                    if error > 1e-4 * _ops.norm(slow) + 1e-30:
                        raise LayerwiseError(f'the Hessian-vector product through the selected '
                                             f'layers differs from the double backward by '
                                             f'{error:.3g} (of {_ops.norm(slow):.3g})')
                    return slow, count
                except LayerwiseError as e:
                    if self.score_mode == 'layerwise':
                        raise
                    self.hvp_mode_ = 'backward'
                    self.hvp_mode_reason_ = f'layerwise: {e}'
        if self.hvp_mode_ == 'layerwise':
            return layerwise_sum_hvp(self.loss_fn, self.model, batch, self.params, self._owners,
                                     vector)
        return batch_hvp(self.model, self.params, self.loss_fn, vector, batch)

    def _hvp(self, vector: List[torch.Tensor], batches: Iterable) -> List[torch.Tensor]:
        if self.all_reduce is None or self.ihvp.distributed:
            return mean_hvp(self.model, self.params, self.loss_fn, vector, batches,
                            self._batch_hvp)
        total, count = self._sum_over_processes(
            *sum_hvp(self.model, self.params, self.loss_fn, vector, batches, self._batch_hvp))
        if count == 0:
            raise ValueError('batches holds no sample on any process: cannot form a Hessian')
        return _ops.scale(total, 1.0 / count)

    def hvp(self, vector: Sequence[torch.Tensor], batches: Iterable) -> List[torch.Tensor]:
        """``H · vector``, H the Hessian of the mean per-sample loss over all samples of
        ``batches`` (double backward, one pass over ``batches``)."""
        vector = self._vector(vector, 'hvp')
        with self._scope():
            return self._hvp(vector, batches)

    def reference_gradient(self, batches: Iterable, reduction: str = 'sum') -> List[torch.Tensor]:
        """Gradient of the reference loss ``Σ_i l_i`` (``'sum'``) or ``(1/N) Σ_i l_i``
        (``'mean'``) over all N samples of ``batches``; one tensor per selected parameter.

        Raises:
            ValueError: bad ``reduction``, or ``batches`` holds no sample.
            ArithmeticError: the gradient holds NaN/Inf.
        """
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reference_gradient: reduction must be one of {_REDUCTIONS}, got '
                             f'{reduction!r}')
        total, count = None, 0
        with self._scope():
            for batch in batches:
                losses = sample_losses(self.loss_fn, self.model, batch)
                part = gradient(losses.sum(), self.params)
                total = part if total is None else _ops.add(total, part)
                count += losses.numel()
        if self.all_reduce is not None:
            total, count = self._sum_over_processes(total, count)
        if count == 0:
            raise ValueError('reference_gradient: batches holds no sample')
        if reduction == 'mean':
            total = _ops.scale(total, 1.0 / count)
        if not _ops.all_finite(total):
            raise ArithmeticError('reference_gradient: the gradient of the reference loss holds '
                                  'NaN/Inf; check the reference losses')
        return total

    def inverse_hvp(self, vector: Sequence[torch.Tensor], batches: Iterable) -> List[torch.Tensor]:
        """``s = (H + λI)⁻¹ vector`` by the solver ``ihvp``, H the Hessian of the mean
        per-sample loss over the samples the solver draws from ``batches`` (re-iterable).
        λ is the solver's (``self.ihvp.lambda_`` after the call)."""
        _require_reiterable(batches, 'inverse_hvp')
        vector = self._vector(vector, 'inverse_hvp')
        with self._scope():
            return self.ihvp.solve(self._hvp, vector, batches)

    def _resolve_mode(self) -> str:
        if self.score_mode == 'auto':
            return 'layerwise' if self._owners is not None else 'backward'
        return self.score_mode

    def _score_batch(self, batch: Any, s_test: List[torch.Tensor], mode: str,
                     check: bool = False) -> torch.Tensor:
        if mode == 'layerwise':
            _, derivative = layerwise_directional_derivatives(
                self.loss_fn, self.model, batch, self.params, self._owners, s_test, check=check)
            return -derivative
        if mode == 'forward':
            wrapper = _LossModule(self.model, self.loss_fn)

            def losses_at(*values):
                return torch.func.functional_call(
                    wrapper, {f'model.{n}': v for n, v in zip(self.param_names, values)},
                    (batch, ))

            primals = tuple(p.detach() for p in self.params)
            losses, derivative = torch.func.jvp(losses_at, primals, tuple(s_test))
            if not isinstance(losses, torch.Tensor) or losses.dim() != 1:
                raise ValueError('loss_fn must return per-sample losses, a 1-d tensor [B]')
            return -derivative.detach()
        losses = sample_losses(self.loss_fn, self.model, batch)
        return -directional_derivatives(losses, self.params, s_test)

    def _score_batches(self, batches: Iterable, s_test: List[torch.Tensor]):
        """Scores of every batch; the layerwise mode is checked on the first one and, under
        ``'auto'``, replaced by ``'backward'`` if it does not apply."""
        mode = self._resolve_mode()
        self.score_mode_, self.score_mode_reason_ = mode, None
        for k, batch in enumerate(batches):
            if mode == 'layerwise' and k == 0:
                try:
                    yield self._score_batch(batch, s_test, mode, check=True)
                    continue
                except LayerwiseError as e:
                    if self.score_mode == 'layerwise':
                        raise LayerwiseError(f'InfluenceScorer: score_mode=\'layerwise\' does not '
                                             f'apply: {e}; use score_mode=\'backward\'') from None
                    mode = 'backward'
                    self.score_mode_, self.score_mode_reason_ = mode, f'layerwise: {e}'
            yield self._score_batch(batch, s_test, mode)

    def score_batch(self, batch: Any, s_test: Sequence[torch.Tensor]) -> torch.Tensor:
        """``I(z) = − s_test · ∇θ l(z)`` for every sample z of one batch, ``Tensor[B]``.

        Per-sample exact: a score does not depend on the other samples of the batch (given a
        per-sample ``loss_fn`` and a model in eval mode). NaN/Inf losses give NaN/Inf scores,
        which are returned as they are for the caller to count or report.
        """
        s_test = self._vector(s_test, 'score')
        with self._scope():
            return next(self._score_batches([batch], s_test))

    def score(self, batches: Iterable, s_test: Sequence[torch.Tensor]) -> torch.Tensor:
        """:meth:`score_batch` over ``batches`` (read once), concatenated: ``Tensor[N]`` in
        sample order."""
        s_test = self._vector(s_test, 'score')
        with self._scope():
            parts = list(self._score_batches(batches, s_test))
        if not parts:
            p = self.params[0]
            return torch.zeros(0, dtype=p.dtype, device=p.device)
        return torch.cat(parts)

    def influence(self, reference_batches: Iterable, train_batches: Iterable,
                  candidate_batches: Iterable, reduction: str = 'mean') -> torch.Tensor:
        """Influence of every candidate sample on the reference loss, ``Tensor[N]``.

        ``s_test = inverse_hvp(reference_gradient(reference_batches, reduction),
        train_batches)`` (kept as ``self.s_test_``), then ``score(candidate_batches, s_test)``.
        ``reduction`` scales all scores alike and does not change their ranking.
        """
        _require_reiterable(train_batches, 'influence')
        v = self.reference_gradient(reference_batches, reduction=reduction)
        self.s_test_ = self.inverse_hvp(v, train_batches)
        return self.score(candidate_batches, self.s_test_)
