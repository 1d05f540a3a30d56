"""FiniteLossHook: stop training at the first NaN or infinite loss or gradient norm."""
import math
from typing import Any, List, Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook


class NonFiniteLossError(FloatingPointError):
    """A training loss or gradient norm became NaN or infinite; the message names the stage,
    the iteration and the image ids of the batch."""


def batch_image_ids(data_batch: Any) -> List[Any]:
    """The ``img_id`` of each sample of an mmdet data batch (``None`` where unknown)."""
    samples = data_batch.get('data_samples', []) if isinstance(data_batch, dict) else []
    return [getattr(s, 'metainfo', {}).get('img_id') for s in samples]


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` after the first iteration whose loss terms or gradient
    norm (mmengine logs it when ``optim_wrapper.clip_grad`` is set) are not finite.

    mmdet would go on training a model whose weights are NaN, and an evaluation that finds no
    prediction records AP 0 for it: the error stops the run at the iteration where it happened,
    naming the images of the batch, instead.

    Args:
        stage: names the training in the message, e.g. ``'step_3 train'``.
    """
    priority = 'VERY_HIGH'  # before the checkpoint hook saves NaN weights

    def __init__(self, stage: Optional[str] = None):
        self.stage = stage or 'train'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        bad = {}
        for name, value in (outputs or {}).items():
            if 'loss' in name:
                value = float(value.detach().float().mean()) if hasattr(value, 'detach') \
                    else float(value)
                if not math.isfinite(value):
                    bad[name] = value
        hub = runner.message_hub
        if 'train/grad_norm' in hub.log_scalars:
            # updated by the optimizer wrapper this iteration (clip_grad is on)
            norm = hub.get_scalar('train/grad_norm').current()
            if not math.isfinite(norm):
                bad['grad_norm'] = norm
        if bad:
            terms = ', '.join(f'{k}={v}' for k, v in bad.items())
            raise NonFiniteLossError(
                f'{self.stage}: {terms} at epoch {runner.epoch + 1}, iteration {runner.iter + 1} '
                f'on the batch of image ids {batch_image_ids(data_batch)}; check these images\' '
                f'annotations, or lower the learning rate (optim_wrapper.optimizer.lr) or clip '
                f'gradients (optim_wrapper.clip_grad). The checkpoints in the step\'s directory '
                f'were saved before this iteration')
