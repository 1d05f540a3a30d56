"""One spec per detector family (see :mod:`.base`); importing this package registers them all.

A new family is one file here, imported below.
"""
from . import anchor, atss, fcos, fovea, gfl, retina, single_stage, two_stage  # noqa: F401
from .base import (BRANCH_TAPS, GN8, HEAD_PATHS, SPECS, TINY_MODEL, DetectorSpec, HeadSpec, Spec,
                   detector_spec, get_path, head_spec, lookup, register, vectorised_loss_of)

__all__ = [
    'Spec', 'HeadSpec', 'DetectorSpec', 'SPECS', 'HEAD_PATHS', 'BRANCH_TAPS', 'GN8', 'TINY_MODEL',
    'register', 'lookup', 'head_spec', 'detector_spec', 'vectorised_loss_of', 'get_path'
]
