"""The classification data: a list file of "file label" lines (the layout of
:func:`~mmdet_isal.datasets.make_shapes_classification`, and of the loop's labeled subsets), a
dataset that reads it, and the transform that packs an image and its label for the model.

Registered in mmdet's registries (``DATASETS``, ``TRANSFORMS``), so that a config with
``default_scope='mmdet'`` and ``custom_imports=dict(imports=['mmdet_isal'])`` names them.
"""
import os.path as osp
from typing import List, Tuple

import cv2
import numpy as np
import torch
from mmdet.registry import DATASETS, TRANSFORMS
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.dataset import BaseDataset
from mmengine.structures import BaseDataElement

__all__ = ['read_label_list', 'ClassificationListDataset', 'CachedLoadImageFromFile',
           'RandomPadCrop', 'PackClassificationInputs']


def read_label_list(path: str, num_classes: int = None) -> List[Tuple[str, int]]:
    """``(file name, label)`` of every line of a list file, in file order.

    Each non-empty line is ``"{file name} {label}"``, the label a class index (0-based).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: naming the first bad lines (not two fields, a label that is no integer or
            outside ``[0, num_classes)``, a file listed twice).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'list file {path} does not exist; make the data set first '
                                f'(tools/make_classification_dataset.py) or point ann_file at '
                                f'an existing list of "file label" lines')
    entries, bad, seen = [], [], set()
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].lstrip('-').isdigit():
                bad.append(f'line {number}: {line.strip()!r} is not "file label"')
                continue
            name, label = fields[0], int(fields[1])
            if label < 0 or (num_classes is not None and label >= num_classes):
                bad.append(f'line {number}: label {label} is not in [0, {num_classes})')
            elif name in seen:
                bad.append(f'line {number}: {name} is listed twice')
            else:
                seen.add(name)
                entries.append((name, label))
    if bad:
        raise ValueError(f'{path}: {len(bad)} bad line(s): ' + '; '.join(bad[:5]) +
                         ('; ...' if len(bad) > 5 else ''))
    return entries


@DATASETS.register_module()
class ClassificationListDataset(BaseDataset):
    """Images and their class labels from a list file of "file label" lines.

    Args:
        ann_file: the list file (joined to ``data_root`` as mmengine does).
        metainfo: ``dict(classes=(...))``: the class names, label k is ``classes[k]``.
        data_prefix: ``dict(img='images/')``: the folder of the files the list names.
        pipeline, data_root, test_mode, ...: as mmengine's ``BaseDataset``.

    Each sample's ``img_id`` is its file name as the list gives it (the pool's image id in the
    active-learning loop).
    """

    METAINFO = dict(classes=())

    def __init__(self, *args, data_prefix=dict(img=''), **kwargs):
        super().__init__(*args, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        classes = self.metainfo.get('classes') or ()
        if not classes:
            raise ValueError(f'{type(self).__name__}: metainfo.classes is empty; set '
                             f'metainfo=dict(classes=(...)) in the dataset config')
        img_dir = self.data_prefix.get('img', '')
        return [dict(img_path=osp.join(img_dir, name), img_id=name, gt_label=label)
                for name, label in read_label_list(self.ann_file, len(classes))]


@TRANSFORMS.register_module()
class CachedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that keeps each image it decoded in memory and gives a copy
    of it when the same file is asked again (the next epoch).

    For small images that a schedule reads many times: the shapes recipe decodes each of 2000
    images 48 times (12 epochs of 8000 samples), 7 ms of a 0.09 s training step on one core.
    The cache belongs to the transform, i.e. to one data loader's pipeline in one process (a
    loader worker fills its own); it holds every image read, e.g. 3 KB for a 32-px image,
    36 MB for 12000 of them. Arguments as ``LoadImageFromFile``.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._images = {}

    def transform(self, results: dict):
        path = results['img_path']
        img = self._images.get(path)
        if img is None:
            results = super().transform(results)
            if results is None:  # ignore_empty and an unreadable file: nothing to keep
                return None
            self._images[path] = results['img']
            img = results['img']
        # later transforms may write into the array: they get their own copy
        results['img'] = img.copy()
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class RandomPadCrop(BaseTransform):
    """Pad the image by ``pad`` px on every side (reflecting it) and crop a window of its
    own size at a random place: a random shift by up to ``pad`` px in each direction (the usual
    CIFAR augmentation).

    Args:
        pad: the largest shift in px, >= 0.
    """

    def __init__(self, pad: int = 4):
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f'RandomPadCrop: pad must be an integer >= 0, got {pad!r}')
        self.pad = pad

    def transform(self, results: dict) -> dict:
        if self.pad:
            img = results['img']
            h, w = img.shape[:2]
            if self.pad < min(h, w):
                # OpenCV's BORDER_REFLECT_101 is numpy's 'reflect' (the edge not repeated),
                # 30x faster on a 32-px image (2.4 against 77 us); it drops a last axis of 1
                padded = cv2.copyMakeBorder(img, *(self.pad, ) * 4, cv2.BORDER_REFLECT_101)
                padded = padded.reshape(padded.shape[:2] + img.shape[2:])
            else:  # a reflection wider than the image: numpy reflects again
                padded = np.pad(img, ((self.pad, self.pad), (self.pad, self.pad)) +
                                ((0, 0), ) * (img.ndim - 2), mode='reflect')
            # numpy's global generator, as mmcv's own random transforms: seeded per worker
            # by mmengine's randomness settings
            y, x = np.random.randint(0, 2 * self.pad + 1, size=2)
            results['img'] = padded[y:y + h, x:x + w]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(pad={self.pad})'


@TRANSFORMS.register_module()
class PackClassificationInputs(BaseTransform):
    """Pack an image (HxWxC, as loaded) and its label: ``inputs`` a CxHxW uint8 tensor,
    ``data_samples`` a ``BaseDataElement`` with ``gt_label`` (a long tensor of one element,
    absent without a label) and the meta keys ``img_id``, ``img_path``, ``flip``."""

    META_KEYS = ('img_id', 'img_path', 'flip')

    def transform(self, results: dict) -> dict:
        img = np.ascontiguousarray(results['img'].transpose(2, 0, 1))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.META_KEYS
                                           if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.tensor([int(results['gt_label'])])
        return dict(inputs=torch.from_numpy(img), data_samples=sample)
