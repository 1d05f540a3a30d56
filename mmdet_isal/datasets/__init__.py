"""Data sets: the synthetic shapes detection set and its single-object classification sets (numpy
and Pillow only, no mmdet import), and the checks of annotation files and images run before any
training. :mod:`.wrappers` holds a data set wrapper for mmdet's ``DATASETS``
(``RepeatToMinLength``), :mod:`.samplers` a sampler for its ``DATA_SAMPLERS``
(``MinLengthSampler``); the package root imports them, so that this package's own imports stay
free of mmdet."""
from .shapes import (CLASS_SETS, OTHER_SHAPES_CLASSES, SHAPES_CLASSES,
                     make_shapes_classification, make_shapes_dataset)
from .images import (CHECK_DEPTHS, ImageEntry, ImageLoadError, check_image_entries,
                     check_image_files, explain_image_failures)
from .validate import AnnotationError, check_coco, check_voc, load_coco

__all__ = ['SHAPES_CLASSES', 'OTHER_SHAPES_CLASSES', 'CLASS_SETS', 'make_shapes_dataset',
           'make_shapes_classification', 'AnnotationError', 'check_coco', 'check_image_files',
           'check_voc', 'load_coco', 'CHECK_DEPTHS', 'ImageEntry', 'ImageLoadError',
           'check_image_entries', 'explain_image_failures']
