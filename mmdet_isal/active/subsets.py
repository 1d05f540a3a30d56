"""The unlabeled pool, its labeled/unlabeled annotation subsets, and budgets.

A pool is the training set of a config (``train_dataloader.dataset``): a COCO json file or a
VOC ``ImageSets`` list. It is read once and never modified; each step writes two subsets of it
in the same format, which mmdet's ``CocoDataset`` / ``VOCDataset`` read unchanged:

- COCO: ``labeled.json`` and ``unlabeled.json`` keep every top-level key of the pool file
  (``categories``, ``info``, ``licenses``) and the original image and annotation ids.
- VOC: ``labeled.txt`` and ``unlabeled.txt`` list image ids (file stems); the images and XML
  files stay where the pool's ``data_root`` / ``data_prefix`` point.

Boxes are counted as an annotator drew them: every annotation of a COCO image (crowd regions
included) or every ``<object>`` of a VOC XML file (``difficult`` ones included). These counts
price the box and seconds budgets (:func:`~mmdet_isal.cost.apply_budget`, imported here as
before) and the reports' annotation hours.
"""
import copy
import os.path as osp
import xml.etree.ElementTree as ET
from abc import ABCMeta, abstractmethod
from collections import Counter
from typing import (Any, Collection, Dict, Iterable, List, Mapping, MutableMapping, Optional,
                    Sequence, Tuple, Union)

from mmdet_isal.cost import apply_budget  # noqa: F401  (its home before mmdet_isal.cost)
from mmdet_isal.datasets.images import ImageEntry, check_image_entries, read_header
from mmdet_isal.datasets.validate import VOC_BOX_TAGS, check_coco, check_voc, load_coco
from mmdet_isal.utils.fileio import atomic_write, atomic_write_json

ImageId = Any  # int (COCO) or str (VOC file stem)


class Pool(metaclass=ABCMeta):
    """The images a run may label, their ground-truth box counts, and subset writing.

    Attributes:
        ann_file: absolute path of the pool's annotation file.
        image_ids: pool image ids in file order.
        num_boxes: ground-truth boxes per image id.
        box_classes: per image id, a ``Counter`` of its ground-truth boxes' class names (what
            an annotator would draw; read only for reports after the image is labeled).
        img_dir: the directory the image files are in (set by :func:`build_pool`).
        labels: per image id, its class index, for a pool with one label per image (image
            classification); ``None`` for a detection pool.
    """
    kind: str = ''
    suffix: str = ''
    labels: Optional[Dict[ImageId, int]] = None

    def __init__(self, ann_file: str):
        if not osp.isfile(ann_file):
            raise FileNotFoundError(
                f'pool annotation file {ann_file} does not exist; set '
                f'train_dataloader.dataset.ann_file (and data_root) to the training set, e.g. '
                f'with --cfg-options, or generate the data first')
        self.ann_file = osp.abspath(ann_file)
        self.image_ids: List[ImageId] = []
        self.num_boxes: Dict[ImageId, int] = {}
        self.box_classes: Dict[ImageId, Counter] = {}
        self.notes: List[str] = []
        self.img_dir = ''

    def __len__(self) -> int:
        return len(self.image_ids)

    def boxes_of(self, ids: Iterable[ImageId]) -> int:
        """Total ground-truth boxes of ``ids``."""
        return sum(self.num_boxes[i] for i in ids)

    def subset_paths(self, out_dir: str) -> Tuple[str, str]:
        """Paths of the labeled and unlabeled subset files in ``out_dir``."""
        return (osp.join(out_dir, 'labeled' + self.suffix),
                osp.join(out_dir, 'unlabeled' + self.suffix))

    def check_ids(self, ids: Iterable[ImageId], what: str) -> None:
        """Raise ``KeyError`` naming the first ids of ``ids`` that are not in the pool."""
        unknown = [i for i in ids if i not in self.num_boxes]
        if unknown:
            raise KeyError(f'{what}: image id(s) {unknown[:5]} are not in the pool '
                           f'{self.ann_file}')

    @abstractmethod
    def image_files(self, img_dir: str) -> List[Tuple[ImageId, str]]:
        """``(image id, path)`` of each pool image, its file in ``img_dir``."""

    def image_entries(self, img_dir: str) -> List[ImageEntry]:
        """Each pool image for the image checks: id, path and the size the annotation file
        gives it (``None`` where the file gives none)."""
        return [ImageEntry(i, path) for i, path in self.image_files(img_dir)]

    def describe(self, ids: Iterable[ImageId]) -> Dict[ImageId, Tuple[str, str, float, float]]:
        """Per id of ``ids``: (file name relative to :attr:`img_dir`, absolute path, width,
        height as loaded); sizes read from the image headers."""
        paths = dict(self.image_files(self.img_dir))
        out = {}
        for i in ids:
            info = read_header(paths[i])
            out[i] = (osp.relpath(paths[i], self.img_dir), osp.abspath(paths[i]), info.width,
                      info.height)
        return out

    @abstractmethod
    def true_boxes(self, ids: Iterable[ImageId]) -> Dict[ImageId, List[Tuple[List[float], str]]]:
        """The ground-truth boxes of ``ids``: per id, ``([x1, y1, x2, y2] in pixels, class
        name)`` pairs. The oracle's: for reports (the gallery) of images already picked."""

    @abstractmethod
    def write_images(self, ids: Collection[ImageId], path: str) -> str:
        """Write an annotation file (in the pool's format, at ``path`` without its suffix +
        :attr:`suffix`) listing the images ``ids`` and no boxes, for a detection pass over
        them; returns its path."""

    @abstractmethod
    def write_split(self, labeled_ids: Collection[ImageId], out_dir: str) -> Tuple[str, str]:
        """Write the labeled and unlabeled subsets of the pool to ``out_dir``, atomically.

        Args:
            labeled_ids: ids of the labeled images (any order; the files keep pool order).
            out_dir: directory to write to (created if missing).

        Returns:
            (labeled file, unlabeled file), absolute paths.
        """


class CocoPool(Pool):
    """A pool given as a COCO instances json file."""
    kind = 'coco'
    suffix = '.json'

    def __init__(self, ann_file: str, classes: Optional[Sequence[str]] = None):
        super().__init__(ann_file)
        self._coco = load_coco(self.ann_file)
        # every problem of the file at once, before any training (AnnotationError)
        self.notes = check_coco(self._coco, self.ann_file, classes)
        self.image_ids = [img['id'] for img in self._coco['images']]
        counts = Counter(ann['image_id'] for ann in self._coco['annotations'])
        self.num_boxes = {i: counts.get(i, 0) for i in self.image_ids}
        names = {c['id']: str(c['name']) for c in self._coco['categories']}
        self.box_classes = {i: Counter() for i in self.image_ids}
        for ann in self._coco['annotations']:
            self.box_classes[ann['image_id']][names[ann['category_id']]] += 1

    def image_files(self, img_dir: str) -> List[Tuple[ImageId, str]]:
        return [(img['id'], osp.join(img_dir, img['file_name'])) for img in self._coco['images']]

    def image_entries(self, img_dir: str) -> List[ImageEntry]:
        return [ImageEntry(img['id'], osp.join(img_dir, img['file_name']), img['width'],
                           img['height']) for img in self._coco['images']]

    def describe(self, ids):
        images = self.images
        return {i: (images[i]['file_name'], osp.abspath(osp.join(self.img_dir,
                                                                 images[i]['file_name'])),
                    images[i]['width'], images[i]['height']) for i in ids}

    @property
    def images(self) -> Dict[ImageId, Dict[str, Any]]:
        """The pool file's image entries by id (``file_name``, ``width``, ``height``, ...)."""
        return {img['id']: img for img in self._coco['images']}

    @property
    def categories(self) -> List[Dict[str, Any]]:
        """The pool file's categories."""
        return self._coco['categories']

    def true_boxes(self, ids):
        ids = set(ids)
        names = {c['id']: str(c['name']) for c in self._coco['categories']}
        out = {i: [] for i in ids}
        for ann in self._coco['annotations']:
            if ann['image_id'] in ids:
                x, y, w, h = ann['bbox']
                out[ann['image_id']].append(([x, y, x + w, y + h], names[ann['category_id']]))
        return out

    def write_images(self, ids, path):
        ids = set(ids)
        self.check_ids(ids, 'images to write')
        path = osp.splitext(path)[0] + self.suffix
        head = {k: v for k, v in self._coco.items() if k not in ('images', 'annotations')}
        atomic_write_json(path, dict(head, images=[im for im in self._coco['images']
                                                   if im['id'] in ids], annotations=[]))
        return path

    def write_split(self, labeled_ids, out_dir):
        labeled_ids = set(labeled_ids)
        self.check_ids(labeled_ids, 'labeled set')
        paths = self.subset_paths(osp.abspath(out_dir))
        head = {k: v for k, v in self._coco.items() if k not in ('images', 'annotations')}
        for path, keep in zip(paths, (True, False)):
            subset = copy.copy(head)
            subset['images'] = [im for im in self._coco['images']
                                if (im['id'] in labeled_ids) == keep]
            subset['annotations'] = [a for a in self._coco['annotations']
                                     if (a['image_id'] in labeled_ids) == keep]
            atomic_write_json(path, subset)
        return paths


class VocPool(Pool):
    """A pool given as a VOC ``ImageSets`` list; boxes are counted from the XML files.

    Args:
        ann_file: the ImageSets list (one image id per line).
        xml_dir: directory of ``<id>.xml`` files.
    """
    kind = 'voc'
    suffix = '.txt'

    def __init__(self, ann_file: str, xml_dir: str, classes: Optional[Sequence[str]] = None):
        super().__init__(ann_file)
        self.xml_dir = osp.abspath(xml_dir)
        # every problem of the list and its XML files at once, before any training
        self.image_ids, objects = check_voc(self.ann_file, self.xml_dir, classes)
        self.num_boxes = {i: len(names) for i, names in objects.items()}
        self.box_classes = {i: Counter(names) for i, names in objects.items()}

    def image_files(self, img_dir: str) -> List[Tuple[ImageId, str]]:
        return [(i, osp.join(img_dir, f'{i}.jpg')) for i in self.image_ids]

    def true_boxes(self, ids):
        out = {}
        for i in ids:
            root = ET.parse(osp.join(self.xml_dir, f'{i}.xml')).getroot()
            boxes = []
            for obj in root.findall('object'):
                x1, y1, x2, y2 = (float(obj.find('bndbox').findtext(t)) for t in VOC_BOX_TAGS)
                # VOC's 1-based inclusive corners, in 0-based pixel edges
                boxes.append(([x1 - 1, y1 - 1, x2, y2], obj.findtext('name').strip()))
            out[i] = boxes
        return out

    def write_images(self, ids, path):
        ids = set(ids)
        self.check_ids(ids, 'images to write')
        path = osp.splitext(path)[0] + self.suffix
        atomic_write(path, ''.join(f'{i}\n' for i in self.image_ids if i in ids))
        return path

    def write_split(self, labeled_ids, out_dir):
        labeled_ids = set(labeled_ids)
        self.check_ids(labeled_ids, 'labeled set')
        paths = self.subset_paths(osp.abspath(out_dir))
        for path, keep in zip(paths, (True, False)):
            lines = [i for i in self.image_ids if (i in labeled_ids) == keep]
            atomic_write(path, ''.join(f'{i}\n' for i in lines))
        return paths


def pool_dataset_cfg(dataset_cfg: MutableMapping) -> MutableMapping:
    """The dataset dict holding the pool's ``ann_file``, through wrappers like RepeatDataset.

    Returns the dict itself (not a copy), so that setting its ``ann_file`` points the config at
    a subset. A ConcatDataset is refused: the pool must be one annotation file.
    """
    cfg = dataset_cfg
    while 'ann_file' not in cfg:
        if 'datasets' in cfg:
            raise ValueError(
                f'train_dataloader.dataset is a {cfg.get("type", "ConcatDataset")} of '
                f'{len(cfg["datasets"])} datasets; the active-learning pool must be a single '
                f'annotation file: merge them into one (COCO json or VOC ImageSets list)')
        if 'dataset' not in cfg:
            raise KeyError('train_dataloader.dataset has no ann_file; set it to the pool, '
                           'e.g. --cfg-options train_dataloader.dataset.ann_file=...')
        cfg = cfg['dataset']
    return cfg


def _join_root(data_root, path):
    if not path:
        return path
    return path if osp.isabs(path) or not data_root else osp.join(data_root, path)


def resolve_ann_file(dataset_cfg: Mapping) -> str:
    """Absolute path of a dataset config's ``ann_file`` (joined to ``data_root`` as mmengine's
    BaseDataset does), through dataset wrappers."""
    cfg = pool_dataset_cfg(dataset_cfg)
    return osp.abspath(_join_root(cfg.get('data_root'), cfg['ann_file']))


def build_pool(dataset_cfg: Mapping, check_images: Union[bool, str] = True) -> Pool:
    """Read and check the pool of a ``train_dataloader.dataset`` config, resolving paths as
    mmengine does.

    A ``.json`` ann_file is a COCO pool (images in ``data_root/<data_prefix.img>``); anything
    else is a VOC ImageSets list whose XML files are in
    ``data_root/<data_prefix.sub_data_root>/<ann_subdir or 'Annotations'>`` and images in
    ``.../<img_subdir or 'JPEGImages'>``. The annotations are checked against
    ``metainfo.classes`` when the config sets it, and with ``check_images`` (``True`` or
    ``'header'``: headers and file ends; ``'decode'``: every pixel, cached) every image file is
    checked (:func:`~mmdet_isal.datasets.images.check_image_entries`: missing, unreadable,
    truncated, of another size than the COCO file says, two entries on one file); its notes
    (identical content under two names) join the pool's :attr:`~Pool.notes`.

    Raises:
        AnnotationError: the annotation file or its images cannot be used (every problem
            listed, with the offending entries).
    """
    cfg = pool_dataset_cfg(dataset_cfg)
    data_root = cfg.get('data_root')
    ann_file = resolve_ann_file(cfg)
    classes = (cfg.get('metainfo') or {}).get('classes')
    classes = list(classes) if classes is not None else None
    prefix = cfg.get('data_prefix') or {}
    if ann_file.endswith('.json'):
        pool = CocoPool(ann_file, classes)
        img_dir = _join_root(data_root, prefix.get('img', '')) or (data_root or '')
    else:
        sub_root = _join_root(data_root, prefix.get('sub_data_root', '')) or (data_root or '')
        pool = VocPool(ann_file, osp.join(sub_root, cfg.get('ann_subdir', 'Annotations')),
                       classes)
        img_dir = osp.join(sub_root, cfg.get('img_subdir', 'JPEGImages'))
    pool.img_dir = osp.abspath(img_dir)
    if check_images:
        depth = 'header' if check_images is True else check_images
        pool.notes = pool.notes + check_image_entries(pool.image_entries(img_dir), pool.ann_file,
                                                      depth)
    return pool
