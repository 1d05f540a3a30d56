"""The synthetic shapes detection data set (numpy and Pillow only, no mmdet import).

Modules: ``design`` (classes, scenes and their shares: what the set holds), ``render`` (one
image and its boxes from ``(seed, split, index, image_size)``), ``writers`` (COCO and VOC
files), ``manifest`` (the record that lets a rerun check, resume or complete a folder) and
``generate`` (:func:`make_shapes_dataset`, which ties them together).
"""
from .design import SHAPES_CLASSES
from .generate import make_shapes_dataset

__all__ = ['SHAPES_CLASSES', 'make_shapes_dataset']
