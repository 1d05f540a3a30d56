from .hooks import FiniteLossHook, ISALHook, NonFiniteLossError, ProgressHook, StopOnSignalHook

__all__ = ['FiniteLossHook', 'ISALHook', 'NonFiniteLossError', 'ProgressHook', 'StopOnSignalHook']
