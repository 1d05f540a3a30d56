"""Per-sample directional derivatives ``∇θ l_i · s`` through the outputs of the selected layers.

When every selected parameter belongs to a layer whose output is linear in its parameters
(``Linear``, ``Conv1d/2d/3d``: ``y = conv(x, W) + b``), the chain rule gives, summed over the
calls ``c`` of those layers during the forward pass,

    ∇θ l_i · s = Σ_c ⟨∂l_i/∂y_c, Δy_c⟩,    Δy_c = conv(x_c, s_W) + s_b,

the layer evaluated on its own input with the direction as its parameters. With per-sample
losses, ``∂(Σ_i l_i)/∂y_c`` restricted to the rows of ``y_c`` that belong to sample ``i`` is
``∂l_i/∂y_c`` there, so one ordinary backward from ``Σ_i l_i`` to the layer outputs (no
``create_graph``, no second backward, no weight gradients) and one extra evaluation of each
selected layer give every ``∇θ l_i · s`` of a batch. This is what
:meth:`~mmdet_isal.influence.InfluenceScorer.score` uses by default when it applies.

Which rows of a layer output belong to which sample: by default row ``r`` (first dimension) to
sample ``r`` of the batch. A loss function that calls a layer on other rows (a group of the
batch, or the boxes of one image) says so with :func:`sample_rows` around the call.
"""
import contextlib
import contextvars
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .hvp import sample_losses

__all__ = ['sample_rows', 'current_rows', 'LINEAR_LAYERS', 'linear_layer_owners',
           'LayerwiseError', 'layerwise_directional_derivatives']

#: layer types whose output is linear in their (weight, bias) jointly
LINEAR_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

Rows = Union[None, int, Sequence[int]]
_ROWS: contextvars.ContextVar = contextvars.ContextVar('mmdet_isal_sample_rows', default=None)


@contextlib.contextmanager
def sample_rows(rows: Rows):
    """Within the block, layer calls belong to these samples of the batch.

    Args:
        rows: ``None``: row ``r`` of an output is sample ``r`` (the default outside any block);
            an ``int`` ``i``: every row is sample ``i``; a sequence: row ``r`` is sample
            ``rows[r]``.
    """
    if rows is not None and not isinstance(rows, int):
        rows = tuple(int(r) for r in rows)
    token = _ROWS.set(rows)
    try:
        yield
    finally:
        _ROWS.reset(token)


def current_rows() -> Rows:
    """What :func:`sample_rows` declared for the calls made now."""
    return _ROWS.get()


class LayerwiseError(RuntimeError):
    """The layerwise derivative does not apply to this model, loss or batch."""


def linear_layer_owners(model: nn.Module, params: Sequence[torch.Tensor]
                        ) -> Optional[Dict[nn.Module, Dict[str, int]]]:
    """``{layer: {'weight' or 'bias': index in params}}`` if every parameter of ``params`` is
    the weight or the bias of a layer of :data:`LINEAR_LAYERS` of ``model``, else None."""
    wanted = {id(p): k for k, p in enumerate(params)}
    owners: Dict[nn.Module, Dict[str, int]] = {}
    found = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in wanted:
                if not isinstance(module, LINEAR_LAYERS) or name not in ('weight', 'bias') \
                        or id(p) in found:
                    return None
                owners.setdefault(module, {})[name] = wanted[id(p)]
                found.add(id(p))
    return owners if len(found) == len(params) else None


def _direction_weights(layer: nn.Module, own: Dict[str, int],
                       direction: Sequence[torch.Tensor]):
    """``(weight, bias or None)``: the direction as ``layer``'s selected parameters, zero for
    its other weight."""
    weight = direction[own['weight']] if 'weight' in own else torch.zeros_like(layer.weight)
    bias = direction[own['bias']] if 'bias' in own else None
    return weight, bias


def _apply(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor,
           bias: Optional[torch.Tensor]) -> torch.Tensor:
    if isinstance(layer, nn.Linear):
        return nn.functional.linear(x, weight, bias)
    return layer._conv_forward(x, weight, bias)


def _fusion_key(call: '_Call') -> tuple:
    """Calls with equal keys apply the same operation to the same input tensor: their
    direction outputs are one call with the weights stacked along the output channels."""
    layer = call.layer
    if isinstance(layer, nn.Linear):
        op = (nn.Linear, )
    elif layer.groups == 1:
        op = (type(layer), layer.kernel_size, layer.stride, layer.padding, layer.dilation,
              layer.padding_mode)
    else:  # stacking output channels would regroup the input channels
        op = (id(layer), )
    return (id(call.x), ) + op


def _direction_outputs(calls: Sequence['_Call'], owners: Dict[nn.Module, Dict[str, int]],
                       direction: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """``Δy`` of every call: its layer on its input with the direction as its selected
    parameters and zero for the others. Layers called on the same input with the same
    operation (FCOS's regression and centerness convolutions share their input) run as one
    call."""
    groups: Dict[tuple, List[int]] = {}
    for k, call in enumerate(calls):
        groups.setdefault(_fusion_key(call), []).append(k)
    out: List[Optional[torch.Tensor]] = [None] * len(calls)
    for members in groups.values():
        params = [_direction_weights(calls[k].layer, owners[calls[k].layer], direction)
                  for k in members]
        first = calls[members[0]]
        if len(members) == 1:
            out[members[0]] = _apply(first.layer, first.x, *params[0])
            continue
        weight = torch.cat([w for w, _ in params])
        bias = None
        if any(b is not None for _, b in params):
            bias = torch.cat([b if b is not None else w.new_zeros(len(w)) for w, b in params])
        fused = _apply(first.layer, first.x, weight, bias)
        sizes = [len(w) for w, _ in params]
        dim = -1 if isinstance(first.layer, nn.Linear) else 1
        for k, part in zip(members, fused.split(sizes, dim=dim)):
            out[k] = part
    return out


def _sample_index(rows: Rows, count: int, batch_size: int, layer: nn.Module) -> torch.Tensor:
    if rows is None:
        if count != batch_size:
            raise LayerwiseError(
                f'{type(layer).__name__} was called on {count} rows for a batch of '
                f'{batch_size} samples outside any sample_rows block: which rows belong to '
                f'which sample is not known')
        return torch.arange(count)
    if isinstance(rows, int):
        return torch.full((count, ), rows, dtype=torch.long)
    if len(rows) != count:
        raise LayerwiseError(f'{type(layer).__name__} was called on {count} rows but '
                             f'sample_rows declared {len(rows)}')
    return torch.as_tensor(rows, dtype=torch.long)


class _Call(NamedTuple):
    """One call of a selected layer during the loss: its input, output and declared rows."""
    layer: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    rows: Rows


def _losses_and_calls(loss_fn, model: nn.Module, batch: object,
                      owners: Dict[nn.Module, Dict[str, int]]
                      ) -> Tuple[torch.Tensor, List[_Call]]:
    """``loss_fn(model, batch)`` (checked by :func:`sample_losses`) and every call of a layer
    of ``owners`` whose output is part of the graph, with the rows :func:`sample_rows`
    declared for it.

    Raises:
        LayerwiseError: a recorded output was changed in place after its call (the tensor
            autograd would differentiate is then no longer what the loss saw).
    """
    calls: List[_Call] = []
    versions: List[int] = []

    def hook(layer, args, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            calls.append(_Call(layer, args[0], output, current_rows()))
            versions.append(output._version)

    handles = [layer.register_forward_hook(hook) for layer in owners]
    try:
        losses = sample_losses(loss_fn, model, batch)
    finally:
        for handle in handles:
            handle.remove()
    for call, version in zip(calls, versions):
        if call.y._version != version:
            raise LayerwiseError(f'the output of a {type(call.layer).__name__} was changed in '
                                 f'place after the call')
    return losses, calls


def layerwise_directional_derivatives(
        loss_fn: Callable[[nn.Module, object], torch.Tensor], model: nn.Module, batch: object,
        params: Sequence[torch.Tensor], owners: Dict[nn.Module, Dict[str, int]],
        direction: Sequence[torch.Tensor], check: bool = False
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(losses, [∇θ losses[i] · direction]_i)`` for one batch, by one ordinary backward.

    Args:
        loss_fn: ``loss_fn(model, batch) -> Tensor[B]``, per-sample losses.
        params: the selected parameters (those requiring grad), as
            :func:`linear_layer_owners` indexed them in ``owners``.
        direction: one tensor per parameter.
        check: also compute ``∇θ (Σ_i losses[i]) · direction`` the usual way and compare it
            with the sum of the per-sample values; they differ when a selected parameter is
            used other than through its layer's forward (e.g. a weight penalty in the loss).

    Raises:
        LayerwiseError: a layer output was changed in place after the call, rows cannot be
            attributed, or ``check`` failed.
    """
    losses, calls = _losses_and_calls(loss_fn, model, batch, owners)
    batch_size = losses.numel()
    out = torch.zeros(batch_size, dtype=torch.float64, device=losses.device)
    if not calls:  # no selected layer reaches the losses
        return losses.detach(), out.to(losses.dtype)
    outputs = [call.y for call in calls]
    wrt = outputs + (list(params) if check else [])
    grads = torch.autograd.grad(losses.sum(), wrt, allow_unused=True)
    with torch.no_grad():
        used = [(call, g) for call, g in zip(calls, grads) if g is not None]
        dys = _direction_outputs([call for call, _ in used], owners, direction)
        for (call, g), dy in zip(used, dys):
            per_row = (g * dy).reshape(len(g), -1).sum(1, dtype=torch.float64)
            index = _sample_index(call.rows, len(per_row), batch_size,
                                  call.layer).to(out.device)
            out.index_add_(0, index, per_row)
    if check:
        total = sum(((g.double() * d.double()).sum() for g, d in
                     zip(grads[len(outputs):], direction) if g is not None),
                    torch.zeros((), dtype=torch.float64, device=out.device))
        scale = float(out.abs().sum()) + abs(float(total))
        if abs(float(out.sum() - total)) > 1e-4 * scale + 1e-12:
            raise LayerwiseError(
                f'the per-sample derivatives through the selected layers sum to '
                f'{float(out.sum()):.6g} but the gradient of the summed loss gives '
                f'{float(total):.6g}: a selected parameter is used outside its layer\'s forward')
    return losses.detach(), out.to(losses.dtype)


def layerwise_sum_hvp(loss_fn: Callable[[nn.Module, object], torch.Tensor], model: nn.Module,
                      batch: object, params: Sequence[torch.Tensor],
                      owners: Dict[nn.Module, Dict[str, int]],
                      vector: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], int]:
    """``(∇²(Σ_i losses[i]) · vector, B)`` for one batch, through the selected layers' outputs.

    With every selected layer's input independent of the selected parameters (no selected
    layer feeds another), the outputs ``y`` are linear in θ and the Hessian is ``Jᵀ ∇²_y L J``:
    ``J v`` is each layer evaluated with ``vector`` as its parameters, ``∇²_y L · J v`` one
    double backward through the loss alone (not through the layers), and ``Jᵀ`` the layers'
    ordinary weight gradients.

    Raises:
        LayerwiseError: a selected layer's input depends on the selected parameters, or a layer
            output was changed in place after the call.
    """
    losses, calls = _losses_and_calls(loss_fn, model, batch, owners)
    zeros = [torch.zeros_like(p) for p in params]
    if not calls:
        return zeros, losses.numel()
    for call in calls:
        if call.x.requires_grad:
            raise LayerwiseError(f'the input of a selected {type(call.layer).__name__} depends '
                                 f'on the selected parameters: its output is not linear in them')
    outputs = [call.y for call in calls]
    grads = torch.autograd.grad(losses.sum(), outputs, create_graph=True, allow_unused=True)
    with torch.no_grad():
        directions = _direction_outputs(calls, owners, vector)
    inner = sum(((g * d).sum() for g, d in zip(grads, directions)
                 if g is not None and g.requires_grad), torch.zeros((), device=losses.device))
    if not inner.requires_grad:  # the loss is linear in the outputs: no curvature
        return zeros, losses.numel()
    curvature = torch.autograd.grad(inner, outputs, allow_unused=True)
    pairs = [(y, c) for y, c in zip(outputs, curvature) if c is not None]
    if not pairs:
        return zeros, losses.numel()
    hv = torch.autograd.grad([y for y, _ in pairs], params, [c for _, c in pairs],
                             allow_unused=True)
    return [z if h is None else h.detach() for h, z in zip(hv, zeros)], losses.numel()
