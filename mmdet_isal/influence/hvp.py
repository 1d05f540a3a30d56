"""Derivatives of per-sample losses by reverse-mode autograd only.

Everything here uses ``torch.autograd.grad`` (double backward for second-order terms): no
explicit Hessian, no forward-mode AD (many detection ops have no forward-mode formula). The
functions expect the caller to have frozen every parameter outside ``params`` (see
:func:`~mmdet_isal.influence.params.restrict_grad`).
"""
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from . import _ops

__all__ = ['sample_losses', 'hvp', 'batch_hvp', 'sum_hvp', 'mean_hvp', 'gradient',
           'directional_derivatives']

LossFn = Callable[[nn.Module, Any], torch.Tensor]


def sample_losses(loss_fn: LossFn, model: nn.Module, batch: Any) -> torch.Tensor:
    """Call ``loss_fn(model, batch)`` and check that it returned one loss per sample.

    Returns:
        The losses, a 1-d tensor ``[B]`` that depends on the selected parameters.

    Raises:
        ValueError: the result is not a 1-d tensor, or has no autograd graph (``loss_fn`` ran
            the model under ``torch.no_grad()``, or the selected parameters are unused).
    """
    losses = loss_fn(model, batch)
    if not isinstance(losses, torch.Tensor) or losses.dim() != 1:
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise ValueError(f'loss_fn must return per-sample losses, a 1-d tensor [B]; got {shape}')
    if not losses.requires_grad:
        raise ValueError('loss_fn returned losses without an autograd graph: they do not depend '
                         'on the selected parameters. Check that loss_fn does not run the model '
                         'under torch.no_grad() and that the selected parameters are used')
    return losses


def _grad(output: torch.Tensor, params: Sequence[torch.Tensor], **kwargs) -> List[torch.Tensor]:
    """``torch.autograd.grad`` with zeros for parameters that ``output`` does not depend on."""
    if not output.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(output, params, allow_unused=True, **kwargs)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def gradient(loss: torch.Tensor, params: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Gradient of a scalar ``loss`` with respect to ``params`` (detached)."""
    return [g.detach() for g in _grad(loss, params)]


def hvp(loss: torch.Tensor, params: Sequence[torch.Tensor],
        vector: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """Hessian-vector product ``∇²loss · vector`` of a scalar loss, by double backward."""
    grads = _grad(loss, params, create_graph=True)
    return [h.detach() for h in _grad(_ops.dot(grads, vector), params)]


def batch_hvp(model: nn.Module, params: Sequence[torch.Tensor], loss_fn: LossFn,
              vector: Sequence[torch.Tensor], batch: Any) -> Tuple[List[torch.Tensor], int]:
    """``(∇²(Σ_i l_i) · vector, B)`` for the B samples of one batch: one forward and one double
    backward."""
    losses = sample_losses(loss_fn, model, batch)
    return hvp(losses.sum(), params, vector), losses.numel()


BatchHVP = Callable[[Sequence[torch.Tensor], Any], Tuple[List[torch.Tensor], int]]


def sum_hvp(model: nn.Module, params: Sequence[torch.Tensor], loss_fn: LossFn,
            vector: Sequence[torch.Tensor], batches: Iterable,
            one_batch: Optional[BatchHVP] = None) -> Tuple[Optional[List[torch.Tensor]], int]:
    """``(Σ_i ∇²l_i · vector, N)`` over the N samples of ``batches``: one forward and one double
    backward per batch. The sum is None when ``batches`` holds no sample.

    ``one_batch(vector, batch) -> (product, count)``, if given, computes each batch's part
    instead of :func:`batch_hvp` (e.g. the layerwise product of
    :mod:`~mmdet_isal.influence.layerwise`)."""
    if one_batch is None:
        one_batch = lambda vec, batch: batch_hvp(model, params, loss_fn, vec, batch)  # noqa
    total, count = None, 0
    for batch in batches:
        part, n = one_batch(vector, batch)
        total = part if total is None else _ops.add(total, part)
        count += n
    return total, count


def mean_hvp(model: nn.Module, params: Sequence[torch.Tensor], loss_fn: LossFn,
             vector: Sequence[torch.Tensor], batches: Iterable,
             one_batch: Optional[BatchHVP] = None) -> List[torch.Tensor]:
    """``H · vector`` with H the Hessian of the mean per-sample loss over all samples of
    ``batches`` (:func:`sum_hvp` divided by the number of samples).

    Raises:
        ValueError: ``batches`` holds no sample.
    """
    total, count = sum_hvp(model, params, loss_fn, vector, batches, one_batch)
    if count == 0:
        raise ValueError('batches holds no sample: cannot form a Hessian')
    return _ops.scale(total, 1.0 / count)


def directional_derivatives(losses: torch.Tensor, params: Sequence[torch.Tensor],
                            direction: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[∇θ losses[i] · direction]_i`` for a whole batch in two backward passes.

    The double-backward trick: with a dummy vector ``u`` (shape ``[B]``), ``g(u) =
    ∂(uᵀ losses)/∂θ = Σ_i u_i ∇θ l_i`` is linear in ``u``, so ``∂(g(u) · direction)/∂u_i =
    ∇θ l_i · direction`` for every ``i`` at once. Each entry depends on sample ``i`` alone
    (no batch-level reduction takes part), and the cost is that of one gradient with
    ``create_graph=True`` plus one more backward, instead of ``B`` separate backward passes.
    """
    u = torch.ones_like(losses, requires_grad=True)
    grads = _grad((u * losses).sum(), params, create_graph=True)
    out = _ops.dot(grads, direction)
    if not out.requires_grad:  # no selected parameter reaches the losses
        return torch.zeros_like(losses).detach()
    return torch.autograd.grad(out, u)[0].detach()
