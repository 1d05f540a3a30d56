"""Selection strategies behind one interface, registered by name in ``STRATEGIES``."""
from mmdet_isal.strategies.base import BaseStrategy, Ranking, SelectionContext, read_image_ids
from mmdet_isal.strategies.coreset import CoresetStrategy, k_center_greedy
from mmdet_isal.strategies.fewest_detections import FewestDetectionsStrategy
from mmdet_isal.strategies.isal import ISALStrategy
from mmdet_isal.strategies.learning_loss import LearningLossStrategy
from mmdet_isal.strategies.localization_stability import (LocalizationStabilityStrategy,
                                                           localization_stability)
from mmdet_isal.strategies.matched_random import MatchedRandomStrategy, match_by_boxes
from mmdet_isal.strategies.ordering import order_by_score
from mmdet_isal.strategies.random import RandomStrategy, random_order
from mmdet_isal.strategies.uncertainty import (EntropyStrategy, LeastConfidenceStrategy,
                                               binary_entropy, image_entropy,
                                               image_least_confidence)

__all__ = ['BaseStrategy', 'Ranking', 'SelectionContext', 'read_image_ids', 'ISALStrategy',
           'RandomStrategy', 'random_order', 'FewestDetectionsStrategy', 'CoresetStrategy',
           'k_center_greedy', 'LocalizationStabilityStrategy', 'localization_stability',
           'EntropyStrategy', 'LeastConfidenceStrategy', 'binary_entropy', 'image_entropy',
           'image_least_confidence', 'order_by_score', 'LearningLossStrategy',
           'MatchedRandomStrategy', 'match_by_boxes']
