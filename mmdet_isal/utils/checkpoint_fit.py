"""Does a checkpoint belong to a model? Checked before training, instead of mmengine's
size-mismatch warnings after which training goes on from a half-initialised model."""
from typing import List

import torch
from mmengine.runner.checkpoint import CheckpointLoader

#: Below this share of the model's parameter entries found in a checkpoint with their shape, the
#: checkpoint is taken to be of another model. Fine-tuning a detector on other classes replaces
#: the classification layers only (a few percent of the entries) and stays far above it.
MIN_FIT = 0.5


class CheckpointMismatchError(ValueError):
    """A checkpoint whose parameters do not fit the model of the config."""


def checkpoint_fit(model: torch.nn.Module, checkpoint: str, what: str = 'checkpoint',
                   min_fit: float = MIN_FIT) -> List[str]:
    """Compare the parameter names and shapes of ``checkpoint`` with ``model``'s.

    Args:
        model: the model the checkpoint will be loaded into.
        checkpoint: a path (or any name mmengine's ``CheckpointLoader`` reads).
        what: names the checkpoint in messages, e.g. ``'load_from'``.
        min_fit: the least share of the model's entries (counted in numbers, not tensors) that
            must be in the checkpoint with the model's shape.

    Returns:
        notes for the log: the parameters that will keep their initialisation (missing from the
        checkpoint or of another shape), when the checkpoint fits otherwise; ``[]`` when every
        parameter is there.

    Raises:
        CheckpointMismatchError: fewer than ``min_fit`` of the entries fit, naming examples.
        FileNotFoundError: no such checkpoint.
    """
    try:
        ckpt = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu', logger='silent')
    except FileNotFoundError:
        raise FileNotFoundError(f'{what} {checkpoint} does not exist; point {what} at a '
                                f'checkpoint file, or remove it') from None
    except Exception as e:  # torch/pickle raise many kinds for a file that is no checkpoint
        raise CheckpointMismatchError(f'{what} {checkpoint} cannot be read as a checkpoint '
                                      f'({type(e).__name__}: {str(e)[:200]})') from None
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()
             if hasattr(v, 'shape')}
    own = {k: v for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    total = sum(v.numel() for v in own.values()) or 1
    fit = sum(v.numel() for k, v in own.items() if k in state and state[k].shape == v.shape)
    shape = [f'{k}: checkpoint {tuple(state[k].shape)}, model {tuple(v.shape)}'
             for k, v in own.items() if k in state and state[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    if fit / total < min_fit:
        details = '; '.join(filter(None, [
            f'{len(shape)} of other shape, e.g. {"; ".join(shape[:2])}' if shape else '',
            f'{len(missing)} missing, e.g. {", ".join(missing[:3])}' if missing else '']))
        raise CheckpointMismatchError(
            f'{what} {checkpoint} is not a checkpoint of the config\'s model '
            f'({type(model).__name__}): only {100 * fit / total:.0f}% of the model\'s '
            f'parameters are in it with their shape ({details}). Use a checkpoint of this model '
            f'(same backbone, neck and heads), or remove {what}')
    notes = []
    if shape or missing:
        notes.append(f'{what} {checkpoint}: {len(shape) + len(missing)} parameter tensors keep '
                     f'their initialisation ({len(shape)} of other shape, {len(missing)} '
                     f'missing), e.g. {"; ".join((shape + missing)[:3])}')
    return notes
