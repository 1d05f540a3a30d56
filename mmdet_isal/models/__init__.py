"""Models registered into mmdet's ``MODELS``: the learning-loss wrapper of any detector."""
from .loss_prediction import LossPredictionDetector, LossPredictionModule, margin_ranking_loss

__all__ = ['LossPredictionDetector', 'LossPredictionModule', 'margin_ranking_loss']
