"""StopOnSignalHook: stop training on SIGINT/SIGTERM between iterations, never mid-checkpoint."""
import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook

from ...utils.signals import check_stop, pending_stop, set_deferred


def stop_everywhere() -> None:
    """Raise ``StopRequested`` in every process if any process recorded a stop signal: in a
    distributed run the processes agree (one all-reduce of a number), so that none is left
    waiting in a collective for one that stopped."""
    signum = pending_stop()
    if get_world_size() > 1:
        flag = torch.tensor([signum], dtype=torch.int64)
        all_reduce(flag, op='max')
        signum = int(flag.item())
    check_stop(signum)


@HOOKS.register_module()
class StopOnSignalHook(Hook):
    """Defer stop signals during training and act on them after an iteration or an epoch.

    Within :func:`mmdet_isal.utils.signals.stop_on_signals` (``tools/al_loop.py`` runs the loop
    in it), a SIGINT or SIGTERM during training raises ``StopRequested`` once the iteration and
    the checkpoint hook after it are done, so that no checkpoint or ``last_checkpoint`` file is
    left half-written and mmengine's ``resume`` can continue from the last checkpoint. The last
    iteration of an epoch waits for the epoch's checkpoint. In a distributed run every process
    stops at the same iteration when any of them got the signal. Outside ``stop_on_signals``
    it does nothing.
    """
    priority = 'LOWEST'  # after CheckpointHook (VERY_LOW)

    def before_train(self, runner) -> None:
        set_deferred(True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loop = runner.train_loop
        if getattr(loop, 'dataloader', None) is not None and hasattr(loop, 'max_epochs') and \
                self.end_of_epoch(loop.dataloader, batch_idx):
            return  # the epoch's checkpoint is written in after_train_epoch
        stop_everywhere()

    def after_train_epoch(self, runner) -> None:
        stop_everywhere()

    def after_train(self, runner) -> None:
        set_deferred(False)
        stop_everywhere()
