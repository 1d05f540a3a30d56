"""Arithmetic on parameter-shaped vectors: lists of tensors, one per selected parameter.

Vectors stay split per parameter (never flattened into one big tensor) so that they keep each
parameter's device, dtype and shape and cost no copies.
"""
from typing import List, Sequence

import torch

TensorList = List[torch.Tensor]


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inner product of two vectors, as a 0-d tensor."""
    return sum((x * y).sum() for x, y in zip(a, b))


def norm(a: Sequence[torch.Tensor]) -> float:
    """Euclidean norm of a vector, as a Python float."""
    return float(torch.sqrt(sum((x * x).sum() for x in a)))


def add(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], alpha: float = 1.0) -> TensorList:
    """a + alpha * b."""
    return [x + alpha * y for x, y in zip(a, b)]


def scale(a: Sequence[torch.Tensor], alpha: float) -> TensorList:
    """alpha * a."""
    return [alpha * x for x in a]


def zeros_like(a: Sequence[torch.Tensor]) -> TensorList:
    return [torch.zeros_like(x) for x in a]


def all_finite(a: Sequence[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in a)


def flatten(a: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([x.reshape(-1) for x in a])


def unflatten(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> TensorList:
    out, start = [], 0
    for x in like:
        out.append(flat[start:start + x.numel()].view_as(x).to(x))
        start += x.numel()
    return out
