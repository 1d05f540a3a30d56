"""ProgressHook: one progress line for training, drawn on the terminal the loop watches."""
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ...utils.console import Progress


@HOOKS.register_module()
class ProgressHook(Hook):
    """Draw training progress (iterations, images/s, time left) as a single line.

    The active-learning loop registers it on each step's Runner, whose own log goes to the
    step's folder; it can be added to any config too (``custom_hooks=[dict(type='ProgressHook')]``).

    Args:
        title: shown before the bar; default ``'train'``.
    """
    priority = 'VERY_LOW'

    def __init__(self, title: Optional[str] = None):
        self.title = title or 'train'
        self.progress: Optional[Progress] = None

    def before_train(self, runner) -> None:
        self.progress = Progress(self.title, runner.max_iters - runner.iter, unit='iterations')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.progress is not None:
            images = len(data_batch['inputs']) if isinstance(data_batch, dict) and \
                'inputs' in data_batch else 1
            self.progress.update(1, images=images)

    def after_train(self, runner) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None
