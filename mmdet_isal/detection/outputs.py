"""What mmdet's heads and losses return: tensors nested in tuples and lists (one per FPN level,
batch first), and loss dicts."""
from typing import Dict

from torch import Tensor


def sum_detection_losses(losses: Dict[str, object]) -> Tensor:
    """Sum the entries of an mmdet loss dict whose key contains ``'loss'``.

    Accuracy entries (``acc``, ``loss_cls`` stays, ``acc`` does not) are left out: they are not
    losses. Values may be tensors or (nested) lists of tensors, as some heads return per level.
    """
    total = None
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        for term in _flatten(value):
            total = term.sum() if total is None else total + term.sum()
    if total is None:
        raise ValueError(f'the loss dict has no entry whose key contains "loss": {list(losses)}')
    return total


def _flatten(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


def map_tensors(fn, outs):
    """Apply ``fn`` to every tensor of a head's outputs (tensors nested in tuples/lists)."""
    if isinstance(outs, Tensor):
        return fn(outs)
    if isinstance(outs, (list, tuple)):
        return type(outs)(map_tensors(fn, o) for o in outs)
    return outs


def image_slice(outs, i: int):
    """Image ``i`` of a head's outputs: every tensor has the batch as its first dimension."""
    return map_tensors(lambda t: t[i:i + 1], outs)


def flat_tensors(outs):
    """The tensors of a head's outputs (tensors nested in tuples/lists), in order."""
    if isinstance(outs, Tensor):
        return [outs]
    return [t for o in outs for t in flat_tensors(o)]
