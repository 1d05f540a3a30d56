from .finite_loss_hook import FiniteLossHook, NonFiniteLossError
from .isal_hook import ISALHook
from .progress_hook import ProgressHook
from .stop_hook import StopOnSignalHook

__all__ = ['FiniteLossHook', 'ISALHook', 'NonFiniteLossError', 'ProgressHook', 'StopOnSignalHook']
