"""The data ISAL reads: the reference, labeled and unlabeled sets, built from an mmdet config.

All three reuse the config's own data set definition (type, data_root, data_prefix, metainfo)
with another annotation file, and its deterministic test pipeline, changed in one place: boxes
are loaded *before* ``Resize`` so that targets live in the same coordinates as the network
input (mmdet's test pipelines load them after, in original-image coordinates, for evaluation).
Unlabeled images get no boxes at all: their targets are pseudo-labels.
"""
import copy
import os.path as osp
from collections.abc import Sequence
from typing import Callable, List, Optional

from mmengine.dataset import pseudo_collate

from ..datasets.images import ImageEntry, check_image_entries
from ..datasets.validate import check_coco, load_coco
from ..utils.console import Progress

def base_dataset_cfg(dataloader_cfg, what: str):
    """The data set config inside a dataloader config, through wrappers that hold one data set
    (RepeatDataset, ClassBalancedDataset, RepeatToMinLength, ...)."""
    cfg = copy.deepcopy(dataloader_cfg['dataset'])
    while 'ann_file' not in cfg and 'dataset' in cfg:
        cfg = copy.deepcopy(cfg['dataset'])
    if cfg.get('type') == 'ConcatDataset' or 'datasets' in cfg:
        raise ValueError(f'{what} is a ConcatDataset: ISAL needs one data set whose ann_file it '
                         'can replace; point the config at a single annotation file')
    return cfg


def scoring_pipeline(test_pipeline: List[dict], with_boxes: bool) -> List[dict]:
    """The test pipeline with ``LoadAnnotations`` right after image loading, or removed."""
    steps = [copy.deepcopy(t) for t in test_pipeline if t['type'] != 'LoadAnnotations']
    if with_boxes:
        at = next((k + 1 for k, t in enumerate(steps) if 'LoadImage' in t['type']), 0)
        steps.insert(at, dict(type='LoadAnnotations', with_bbox=True))
    for step in steps:
        if step['type'] == 'PackDetInputs':
            keys = tuple(step.get('meta_keys', ('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                'scale_factor', 'flip', 'flip_direction')))
            step['meta_keys'] = keys + tuple(k for k in ('img_id', 'img_path') if k not in keys)
    return steps


def scoring_source(cfg, ann_file: str):
    """The data set definition an annotation file of ISAL is read with: the training set's,
    except for the validation set's own file when its images are elsewhere (another
    ``data_root`` or ``data_prefix``: a labeled validation folder next to a folder of
    unlabeled images), which is read with the validation set's.

    Returns:
        (the data set config, a copy; the file's path: relative ones are joined to the
        training set's ``data_root``, absolute ones kept; the validation set's is its own).
    """
    train = base_dataset_cfg(cfg.train_dataloader, 'train_dataloader.dataset')
    val = base_dataset_cfg(cfg.val_dataloader, 'val_dataloader.dataset')
    path = ann_file if osp.isabs(ann_file) else osp.join(train.get('data_root') or '', ann_file)

    def where(ds_cfg):
        return ds_cfg.get('data_root'), dict(ds_cfg.get('data_prefix') or {})

    if where(val) != where(train) and 'ann_file' in val:
        val_file = osp.abspath(osp.join(val.get('data_root') or '', val['ann_file']))
        if ann_file == val['ann_file'] or osp.abspath(path) == val_file:
            val['ann_file'] = val_file
            return val, val_file
    train['ann_file'] = ann_file
    return train, path


def build_scoring_dataset(cfg, ann_file: str, with_boxes: bool):
    """An mmdet data set of ``cfg``'s training data with ``ann_file``, in test mode (the
    validation set's file with the validation set's image folder: :func:`scoring_source`).

    Args:
        cfg: an mmengine ``Config`` of an mmdet detector.
        ann_file: a COCO json or a VOC ImageSets list; relative paths are taken as the
            config's (relative to its ``data_root``), absolute paths as they are.
        with_boxes: load the ground-truth boxes (reference and labeled sets) or not
            (unlabeled pool).
    """
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    ds_cfg, full = scoring_source(cfg, ann_file)
    val_cfg = base_dataset_cfg(cfg.val_dataloader, 'val_dataloader.dataset')
    ds_cfg['pipeline'] = scoring_pipeline(val_cfg['pipeline'], with_boxes)
    ds_cfg['test_mode'] = True          # keep images without boxes; no filtering
    ds_cfg.pop('filter_cfg', None)
    if not osp.isfile(full):
        raise FileNotFoundError(f'annotation file not found: {full}')
    return DATASETS.build(ds_cfg)


def scoring_ann_path(cfg, ann_file: str) -> str:
    """``ann_file`` as :func:`build_scoring_dataset` reads it (:func:`scoring_source`)."""
    return scoring_source(cfg, ann_file)[1]


def check_ann_file(path: str, classes=None, img_dir: Optional[str] = None,
                   check_images: Optional[str] = None) -> List[str]:
    """Check a COCO annotation file as the loop checks its pool (:mod:`mmdet_isal.datasets.
    validate`), so that the hook and ``tools/score.py``, which take the user's files, refuse a
    malformed one with one message naming every problem; with ``check_images`` (``'header'``
    or ``'decode'``) also its images in ``img_dir``
    (:func:`~mmdet_isal.datasets.images.check_image_entries`: missing, unreadable, truncated,
    of another size than the file says, two entries on one file). Returns the notes of what
    mmdet will skip. VOC lists are checked by the loop only (their XML directory is the data
    set's business). An empty COCO file is allowed: a pool may be scored to nothing.

    Raises:
        AnnotationError: the file or its images cannot be used.
    """
    if not path.endswith('.json'):
        return []
    coco = load_coco(path)
    if not coco['images']:
        return []
    notes = check_coco(coco, path, classes)
    if check_images:
        notes += check_image_entries(
            [ImageEntry(img['id'], osp.join(img_dir or '', img['file_name']), img['width'],
                        img['height']) for img in coco['images']], path, check_images)
    return notes


def image_dir(cfg, ann_file: str) -> str:
    """The directory the images of ``ann_file`` are looked up in when ISAL reads it
    (:func:`scoring_source`): its data set's ``data_root`` + ``data_prefix.img``."""
    ds_cfg = scoring_source(cfg, ann_file)[0]
    prefix = (ds_cfg.get('data_prefix') or {}).get('img', '')
    root = ds_cfg.get('data_root') or ''
    return prefix if osp.isabs(prefix) else osp.join(root, prefix)


class BatchSequence(Sequence):
    """Batches of a data set, collated on demand: a re-iterable, indexable list of batches.

    Indexable so that LiSSA can draw batches in a seeded random order without holding images
    in memory; ``len`` is the number of batches. A progress line (images per second, time left)
    is drawn on the terminal while iterating when ``title`` is given.
    """

    def __init__(self, dataset, batch_size: int, indices: Optional[List[int]] = None,
                 collate_fn: Callable = pseudo_collate, title: Optional[str] = None):
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        self.dataset = dataset
        self.indices = list(range(len(dataset))) if indices is None else list(indices)
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.title = title
        #: a :class:`Progress` counting every batch collated (set it to track indexed access,
        #: e.g. LiSSA's random draws); iterating with a ``title`` draws its own
        self.progress: Optional[Progress] = None

    def __len__(self):
        return -(-len(self.indices) // self.batch_size)

    def num_images(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        if isinstance(k, slice):
            raise TypeError('BatchSequence does not support slicing')
        if not -len(self) <= k < len(self):
            raise IndexError(k)
        k %= len(self)
        chunk = self.indices[k * self.batch_size:(k + 1) * self.batch_size]
        batch = self.collate_fn([self.dataset[i] for i in chunk])
        if self.progress is not None:
            self.progress.update(1, images=len(chunk))
        return batch

    def __iter__(self):
        own = self.progress is None and self.title is not None
        if own:
            self.progress = Progress(self.title, len(self), unit='batches')
        try:
            for k in range(len(self)):
                yield self[k]
        finally:
            if own:
                self.progress.close()
                self.progress = None
