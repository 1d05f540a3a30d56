"""Choosing which parameters take part in influence computations, and freezing the rest."""
import contextlib
import re
from typing import Dict, Iterable, Iterator, List, Union

import torch
from torch import nn

__all__ = ['select_parameters', 'restrict_grad']

#: How many available names an error message lists before it abbreviates.
_NAMES_SHOWN = 20


def _owners(name: str) -> List[str]:
    """The dotted prefixes of a parameter name: the modules that own it, then the name itself.

    ``'bbox_head.conv_cls.weight'`` -> ``['bbox_head', 'bbox_head.conv_cls',
    'bbox_head.conv_cls.weight']``.
    """
    parts = name.split('.')
    return ['.'.join(parts[:i]) for i in range(1, len(parts) + 1)]


def _describe(names: List[str]) -> str:
    shown = ', '.join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return shown + (f', ... ({more} more)' if more > 0 else '')


def select_parameters(model: nn.Module,
                      patterns: Union[str, Iterable[str]]) -> Dict[str, nn.Parameter]:
    """Select parameters of ``model`` by name.

    The rule: a pattern selects parameter ``n`` when it matches ``n`` itself or the name of a
    module that owns ``n`` (a dotted prefix of ``n``). So ``'bbox_head.conv_cls'`` selects
    ``bbox_head.conv_cls.weight`` and ``bbox_head.conv_cls.bias``, and
    ``'bbox_head.conv_cls.weight'`` selects only the weight. Each pattern is first compared
    literally; only when it matches nothing literally is it used as a regular expression, with
    :func:`re.fullmatch` against the same names (``r'bbox_head\\.conv_(cls|reg)'``,
    ``r'.*\\.fc_cls\\.weight'``).

    Parameters that currently have ``requires_grad=False`` can be selected: the influence
    computations switch gradients on for the selection only while they run.

    Args:
        model: the module whose ``named_parameters()`` are searched.
        patterns: one pattern or an iterable of patterns (names or regular expressions).

    Returns:
        ``{name: parameter}`` in ``model.named_parameters()`` order, without duplicates
        (a parameter matched by several patterns appears once).

    Raises:
        ValueError: no pattern was given, a pattern is not a string, a pattern matches no
            parameter (the message names it and lists available names), or a pattern that
            matches nothing literally is not a valid regular expression.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    patterns = list(patterns)
    if not patterns:
        raise ValueError('select_parameters: patterns is empty; give at least one parameter '
                         'name, module name or regular expression')
    named = list(model.named_parameters())
    names = [n for n, _ in named]
    owners = {n: _owners(n) for n in names}
    selected = set()
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f'select_parameters: patterns must be strings, got {pattern!r} '
                             f'({type(pattern).__name__})')
        hits = {n for n in names if pattern in owners[n]}
        if not hits:
            try:
                regex = re.compile(pattern)
            except re.error as err:
                raise ValueError(
                    f'select_parameters: pattern {pattern!r} is no parameter or module name of '
                    f'the model and not a valid regular expression ({err})') from err
            hits = {n for n in names if any(regex.fullmatch(o) for o in owners[n])}
        if not hits:
            modules = sorted({o for n in names for o in owners[n][:-1]})
            raise ValueError(
                f'select_parameters: pattern {pattern!r} matches no parameter of '
                f'{type(model).__name__} (neither literally nor as a regular expression with '
                f're.fullmatch). Parameters: {_describe(names)}. Modules: {_describe(modules)}')
        selected |= hits
    return {n: p for n, p in named if n in selected}


@contextlib.contextmanager
def restrict_grad(model: nn.Module, params: Iterable[torch.Tensor]) -> Iterator[None]:
    """Let only ``params`` require gradients inside the block; restore the model afterwards.

    Inside the block every other parameter of ``model`` has ``requires_grad=False`` (so no
    gradient is ever taken through, e.g., once-differentiable compiled ops upstream of the
    selection, and no graph is kept for the frozen part) and grad mode is on. On exit, also
    on an exception, every parameter's ``requires_grad`` and ``.grad`` (the same tensor
    object) and every module's train/eval flag are put back exactly as they were. The block
    itself does not change train/eval mode: the caller chooses it.
    """
    params = list(params)
    chosen = {id(p) for p in params}
    all_params = list(model.parameters())
    for p in params:
        if not p.is_leaf:
            raise ValueError('restrict_grad: parameters must be leaf tensors')
    saved_flags = [(p, p.requires_grad) for p in all_params + params]
    saved_grads = [(p, p.grad) for p in all_params + params]
    saved_modes = [(m, m.training) for m in model.modules()]
    try:
        for p in all_params:
            p.requires_grad_(id(p) in chosen)
        for p in params:
            p.requires_grad_(True)
        with torch.enable_grad():
            yield
    finally:
        # Restore in reverse so that a parameter listed twice ends with its first state.
        for p, flag in reversed(saved_flags):
            p.requires_grad_(flag)
        for p, grad in reversed(saved_grads):
            p.grad = grad
        for m, training in saved_modes:
            m.training = training
