"""Model-agnostic influence functions (ISAL.md, "The math"): parameter selection,
Hessian-vector products by double backward, inverse-HVP solvers and the batched per-sample
influence scorer. Imports torch and numpy only, never mmdet/mmengine/mmcv."""
from .params import restrict_grad, select_parameters
from .scorer import InfluenceScorer
from .solvers import (ConjugateGradient, ExactInverse, InverseHVP, InverseHVPError, LiSSA,
                      LiSSADivergenceError)

__all__ = [
    'InfluenceScorer', 'LiSSA', 'ConjugateGradient', 'ExactInverse', 'InverseHVP',
    'InverseHVPError', 'LiSSADivergenceError', 'select_parameters', 'restrict_grad'
]
