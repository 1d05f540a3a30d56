"""mmdet glue: per-image detection losses, pseudo-labels, parameter presets, pool scoring.

Knows mmdet; knows nothing of the active-learning loop. What differs between detector families
is in :mod:`.specs`, one file per family.
"""
from .data import BatchSequence, build_scoring_dataset, scoring_pipeline
from .feature_cache import FeatureCache
from .features import detect_pool, feature_modules
from .isal import ISALResult, check_isal_inputs, default_ann_files, run_isal
from .normalizer import LossNormalizer
from .options import DetectionOptions, ScorerOptions, ScoringOptions
from .outputs import sum_detection_losses
from .patches import loss_mode, scoring_mode
from .per_image import measure_normalizer, per_image_losses
from .presets import parameter_preset
from .pseudo_labels import PseudoLabeler, count_pseudo_boxes
from .ranking import rank_by_influence, write_isal_outputs
from .scoring import pool_influences, score_pool
from .specs import SPECS, DetectorSpec, HeadSpec, detector_spec, head_spec

__all__ = [
    'per_image_losses', 'parameter_preset', 'PseudoLabeler', 'score_pool', 'ScorerOptions',
    'rank_by_influence', 'write_isal_outputs', 'BatchSequence', 'build_scoring_dataset',
    'scoring_pipeline', 'SPECS', 'HeadSpec', 'DetectorSpec', 'detector_spec', 'head_spec',
    'scoring_mode', 'loss_mode', 'LossNormalizer', 'measure_normalizer',
    'sum_detection_losses', 'count_pseudo_boxes', 'run_isal', 'ISALResult',
    'default_ann_files', 'check_isal_inputs', 'FeatureCache', 'pool_influences',
    'detect_pool', 'feature_modules', 'DetectionOptions', 'ScoringOptions'
]
