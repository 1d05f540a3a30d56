"""The synthetic shapes data sets (numpy and Pillow only, no mmdet import).

Detection: ``design`` (classes, scenes and their shares: what the set holds), ``render`` (one
image and its boxes from ``(seed, split, index, image_size)``), ``writers`` (COCO and VOC
files), ``manifest`` (the record that lets a rerun check, resume or complete a folder) and
``generate`` (:func:`make_shapes_dataset`, which ties them together).

Classification: ``single`` (single-object scenes drawn with the same renderer, in two class
sets), ``other_shapes`` (the ten shapes that are no detection class) and ``classification``
(:func:`make_shapes_classification`: an image folder and a list file per split).
"""
from .classification import make_shapes_classification
from .design import SHAPES_CLASSES
from .generate import make_shapes_dataset
from .other_shapes import OTHER_SHAPES_CLASSES
from .single import CLASS_SETS

__all__ = ['SHAPES_CLASSES', 'make_shapes_dataset', 'OTHER_SHAPES_CLASSES', 'CLASS_SETS',
           'make_shapes_classification']
