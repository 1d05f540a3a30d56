"""Annotation-tool I/O: making an unlabeled pool from a folder of images, the files a person
annotates a selection with (pre-labels for CVAT and Label Studio), reading what the tools export
(COCO files, VOC folders) and checking it against the selection, and the gallery of the picks.

Knows files and mmdet's visualizer; knows nothing of the active-learning loop, which calls it
(:mod:`mmdet_isal.active.manual`, :mod:`mmdet_isal.active.picks`).
"""
from .exports import FILES, Pick, kept_detections, label_studio_config, label_studio_tasks, \
    prelabels_coco, write_to_annotate
from .gallery import Tile, draw_gallery, gallery_tiles
from .imports import ImportRefused, PoolImage, check_import, read_skipped
from .labels import LabeledBox, LabeledImage, labels_digest, read_labels
from .matching import NameMatcher, normalise
from .pool import MadePool, find_images, make_pool

__all__ = [
    'FILES', 'Pick', 'kept_detections', 'label_studio_config', 'label_studio_tasks',
    'prelabels_coco', 'write_to_annotate', 'Tile', 'draw_gallery', 'gallery_tiles',
    'ImportRefused', 'PoolImage', 'check_import', 'read_skipped', 'LabeledBox',
    'LabeledImage', 'labels_digest', 'read_labels', 'NameMatcher', 'normalise', 'MadePool',
    'find_images', 'make_pool'
]
