"""The pool of an image classification run: a list file of "file label" lines.

Each image carries one label: as a count of what an annotator gives, one "box" per image (the
ledger's ``num_boxes`` is 1 for every image, so an image budget and a box budget are the same,
and a seconds budget prices one label per image). The labeled and unlabeled subsets of a step
are list files in the same format (``labeled.txt``, ``unlabeled.txt``), in pool order, which
:class:`~mmdet_isal.classification.data.ClassificationListDataset` reads unchanged. The
unlabeled file keeps the labels, as the detection pool's unlabeled file keeps its boxes: a
strategy must not read them (they are the oracle's).
"""
import os.path as osp
from collections import Counter
from typing import Collection, Mapping, Optional, Sequence, Union

from mmdet_isal.active.subsets import Pool, pool_dataset_cfg, resolve_ann_file
from mmdet_isal.classification.data import read_label_list
from mmdet_isal.datasets.images import ImageEntry, check_image_entries, read_header
from mmdet_isal.utils.fileio import atomic_write

__all__ = ['ListPool', 'build_list_pool']


class ListPool(Pool):
    """A pool given as a list file of "file label" lines; image ids are the file names.

    Args:
        ann_file: the list file.
        classes: the class names (label k is ``classes[k]``); labels outside them are an error
            naming the line.
    """
    kind = 'list'
    suffix = '.txt'

    def __init__(self, ann_file: str, classes: Sequence[str]):
        super().__init__(ann_file)
        self.classes = tuple(classes)
        entries = read_label_list(self.ann_file, len(self.classes))
        self.labels = dict(entries)
        self.image_ids = [name for name, _ in entries]
        self.num_boxes = dict.fromkeys(self.image_ids, 1)
        self.box_classes = {i: Counter({self.classes[k]: 1}) for i, k in entries}

    def image_files(self, img_dir):
        return [(i, osp.join(img_dir, i)) for i in self.image_ids]

    def image_entries(self, img_dir):
        return [ImageEntry(i, path) for i, path in self.image_files(img_dir)]

    def true_boxes(self, ids):
        """The label of each image, as one box over the whole image (for the gallery)."""
        out = {}
        for i in ids:
            info = read_header(osp.join(self.img_dir, i))
            out[i] = [([0.0, 0.0, float(info.width), float(info.height)],
                       self.classes[self.labels[i]])]
        return out

    def _write(self, ids: Collection, path: str) -> str:
        atomic_write(path, ''.join(f'{i} {self.labels[i]}\n' for i in self.image_ids
                                   if i in ids))
        return path

    def write_images(self, ids, path):
        ids = set(ids)
        self.check_ids(ids, 'images to write')
        return self._write(ids, osp.splitext(path)[0] + self.suffix)

    def write_split(self, labeled_ids, out_dir):
        labeled_ids = set(labeled_ids)
        self.check_ids(labeled_ids, 'labeled set')
        labeled, unlabeled = self.subset_paths(osp.abspath(out_dir))
        self._write(labeled_ids, labeled)
        self._write(set(self.image_ids) - labeled_ids, unlabeled)
        return labeled, unlabeled


def build_list_pool(dataset_cfg: Mapping, check_images: Union[bool, str] = True) -> ListPool:
    """Read and check the pool of a ``ClassificationListDataset`` config: its list file
    (``ann_file`` joined to ``data_root``), its classes (``metainfo.classes``) and, with
    ``check_images`` (``True``/``'header'`` or ``'decode'``), every image file in
    ``data_root/<data_prefix.img>``.

    Raises:
        KeyError: the config sets no ``metainfo.classes``.
        FileNotFoundError, ValueError: the list file is missing or has bad lines (named).
        AnnotationError: image files are missing or unreadable (every one listed).
    """
    cfg = pool_dataset_cfg(dataset_cfg)
    classes: Optional[Sequence[str]] = (cfg.get('metainfo') or {}).get('classes')
    if not classes:
        raise KeyError(f'{cfg.get("type")}: set metainfo=dict(classes=(...)) in '
                       f'train_dataloader.dataset (label k of the list file is classes[k])')
    pool = ListPool(resolve_ann_file(cfg), list(classes))
    prefix = (cfg.get('data_prefix') or {}).get('img', '')
    root = cfg.get('data_root') or ''
    pool.img_dir = osp.abspath(prefix if osp.isabs(prefix) else osp.join(root, prefix))
    if check_images:
        depth = 'header' if check_images is True else check_images
        pool.notes = pool.notes + check_image_entries(pool.image_entries(pool.img_dir),
                                                      pool.ann_file, depth)
    return pool
