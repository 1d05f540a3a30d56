"""Selection strategies behind one interface, registered by name in ``STRATEGIES``."""
from mmdet_isal.strategies.base import BaseStrategy, Ranking, SelectionContext, read_image_ids
from mmdet_isal.strategies.fewest_detections import FewestDetectionsStrategy
from mmdet_isal.strategies.isal import ISALStrategy
from mmdet_isal.strategies.random import RandomStrategy, random_order

__all__ = ['BaseStrategy', 'Ranking', 'SelectionContext', 'read_image_ids', 'ISALStrategy',
           'RandomStrategy', 'random_order', 'FewestDetectionsStrategy']
