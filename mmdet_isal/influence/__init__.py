"""Model-agnostic influence functions (docs/method.md): parameter selection, Hessian-vector
products by double backward, inverse-HVP solvers (a registry of them, and their options) and
the batched per-sample influence scorer. Imports torch and numpy only, never
mmdet/mmengine/mmcv."""
from .options import Options, SolverOptions, build_solver, option
from .params import restrict_grad, select_parameters
from .scorer import InfluenceScorer
from .solvers import (SOLVERS, ConjugateGradient, ExactInverse, InverseHVP, InverseHVPError,
                      LiSSA, LiSSADivergenceError, register_solver)

__all__ = [
    'InfluenceScorer', 'LiSSA', 'ConjugateGradient', 'ExactInverse', 'InverseHVP',
    'InverseHVPError', 'LiSSADivergenceError', 'select_parameters', 'restrict_grad',
    'SOLVERS', 'register_solver', 'SolverOptions', 'build_solver', 'Options', 'option'
]
