from .isal_hook import ISALHook

__all__ = ['ISALHook']
