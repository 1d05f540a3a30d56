"""mmdet glue: per-image detection losses, pseudo-labels, parameter presets, pool scoring.

Knows mmdet; knows nothing of the active-learning loop.
"""
from .data import BatchSequence, build_scoring_dataset, scoring_pipeline
from .isal import ISALResult, check_isal_inputs, default_ann_files, run_isal
from .losses import (DETECTOR_ADAPTERS, FeatureCache, measure_normalizer, per_image_losses,
                     scoring_mode, sum_detection_losses)
from .normalizer import LossNormalizer
from .options import DetectionOptions, ScorerOptions, ScoringOptions
from .presets import HEAD_PRESETS, parameter_preset
from .pseudo_labels import PseudoLabeler, count_pseudo_boxes
from .ranking import rank_by_influence, write_isal_outputs
from .scoring import pool_influences, score_pool

__all__ = [
    'per_image_losses', 'parameter_preset', 'PseudoLabeler', 'score_pool', 'ScorerOptions',
    'rank_by_influence', 'write_isal_outputs', 'BatchSequence', 'build_scoring_dataset',
    'scoring_pipeline', 'DETECTOR_ADAPTERS', 'HEAD_PRESETS', 'scoring_mode',
    'LossNormalizer', 'measure_normalizer', 'sum_detection_losses', 'count_pseudo_boxes',
    'run_isal', 'ISALResult', 'default_ann_files', 'check_isal_inputs', 'FeatureCache',
    'pool_influences', 'DetectionOptions', 'ScoringOptions'
]
