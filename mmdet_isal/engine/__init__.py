from .hooks import ISALHook

__all__ = ['ISALHook']
