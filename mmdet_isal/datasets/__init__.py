"""Data sets: the synthetic shapes detection set (numpy and Pillow only, no mmdet import)."""
from .synthetic import SHAPES_CLASSES, make_shapes_dataset

__all__ = ['SHAPES_CLASSES', 'make_shapes_dataset']
