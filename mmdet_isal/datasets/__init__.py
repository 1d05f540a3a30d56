"""Data sets: the synthetic shapes detection set (numpy and Pillow only, no mmdet import), and the
checks of annotation files and images run before any training."""
from .shapes import SHAPES_CLASSES, make_shapes_dataset
from .images import (CHECK_DEPTHS, ImageEntry, ImageLoadError, check_image_entries,
                     check_image_files, explain_image_failures)
from .validate import AnnotationError, check_coco, check_voc, load_coco

__all__ = ['SHAPES_CLASSES', 'make_shapes_dataset', 'AnnotationError', 'check_coco',
           'check_image_files', 'check_voc', 'load_coco', 'CHECK_DEPTHS', 'ImageEntry',
           'ImageLoadError', 'check_image_entries', 'explain_image_failures']
