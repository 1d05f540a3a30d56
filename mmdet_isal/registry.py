"""Registries of mmdet-isal.

Hooks, models and datasets go into mmdet's own registries (so that a stock mmdet config only adds
``custom_imports``); what mmdet has no registry for (active-learning strategies) gets one here,
a child of mmengine's root so that configs can name entries with the ``mmdet_isal.`` scope.
"""
from mmengine.registry import Registry

STRATEGIES = Registry('al_strategy', locations=['mmdet_isal.strategies'])

__all__ = ['STRATEGIES']
