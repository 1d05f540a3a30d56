from .hooks import ISALHook, ProgressHook

__all__ = ['ISALHook', 'ProgressHook']
