from .isal_hook import ISALHook
from .progress_hook import ProgressHook

__all__ = ['ISALHook', 'ProgressHook']
