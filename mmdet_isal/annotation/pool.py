"""Making an unlabeled pool from a folder of images (``tools/make_pool.py``).

:func:`make_pool` walks a folder (recursively, in sorted order) and returns a COCO file with
images only: ids numbered in that order (deterministic), file names relative to a data root,
sizes read from the headers with the EXIF orientation applied (the size mmdet loads). Files that
cannot be used (not images, truncated: :func:`~mmdet_isal.datasets.images.inspect_image`) and
files whose content repeats an earlier one (same SHA-256) are listed and left out, not fatal.

Given the images already labeled (a COCO file or a folder of VOC XML files), it leaves them out
of the pool (matched by file name, :mod:`.matching`, and by content) and can return them as a
COCO file of the same categories, file names and image directory, for the loop's
``active_learning.labeled``; image ids are numbered labeled first, then the pool, so the two
never share one.
"""
import os
import os.path as osp
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmdet_isal.datasets.images import SHORT_KINDS, DecodeCache, inspect_image
from mmdet_isal.datasets.validate import AnnotationError

from .imports import PoolImage, check_import
from .labels import read_labels
from .matching import NameMatcher

#: File extensions taken for images (case-insensitive).
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


@dataclass
class MadePool:
    """What :func:`make_pool` found.

    Attributes:
        pool: the pool's COCO dict (``"annotations": []``).
        labeled: the labeled images' COCO dict (same categories), or ``None``.
        rejected: ``(relative path, why)`` of files left out because they cannot be used.
        duplicates: ``(relative path, relative path of the file it repeats)``.
        left_out: relative paths left out because they are labeled.
        labeled_missing: names of labeled images that are not in the folder.
        shared_names: file names that occur in several folders (tools that flatten folders
            cannot tell them apart).
    """
    pool: Dict[str, Any]
    labeled: Optional[Dict[str, Any]] = None
    rejected: List[Tuple[str, str]] = field(default_factory=list)
    duplicates: List[Tuple[str, str]] = field(default_factory=list)
    left_out: List[str] = field(default_factory=list)
    labeled_missing: List[str] = field(default_factory=list)
    shared_names: List[str] = field(default_factory=list)


def find_images(images_dir: str) -> List[str]:
    """Absolute paths of the image files under ``images_dir`` (any depth, hidden folders
    skipped), sorted by their path relative to it."""
    found = []
    for root, dirs, files in os.walk(images_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        found += [osp.join(root, f) for f in files
                  if osp.splitext(f)[1].lower() in IMAGE_EXTENSIONS and not f.startswith('.')]
    return sorted(found, key=lambda p: osp.relpath(p, images_dir))


def categories_of(classes: Sequence[str]) -> List[Dict[str, Any]]:
    """COCO categories of ``classes``: ids 1..N in their order."""
    names = [str(c) for c in classes]
    if not names:
        raise ValueError('--classes: give the class names, e.g. --classes car person bicycle')
    repeated = sorted({c for c in names if names.count(c) > 1})
    if repeated:
        raise ValueError(f'--classes names {", ".join(repeated)} more than once')
    return [dict(id=k + 1, name=c, supercategory='') for k, c in enumerate(names)]


def make_pool(images_dir: str, classes: Sequence[str], data_root: Optional[str] = None,
              labeled: Optional[str] = None, decode: bool = False,
              cache: Optional[DecodeCache] = None) -> MadePool:
    """The pool of ``images_dir``; see the module docstring.

    Args:
        images_dir: the folder of images.
        classes: the class names (the categories, ids 1..N in this order).
        data_root: file names are relative to it (default ``images_dir``); it must contain
            ``images_dir``.
        labeled: a COCO file or a folder of VOC XML files of images already labeled.
        decode: decode every image in full (cached), not only its header and end.
        cache: the decode cache (default: its default place).

    Raises:
        FileNotFoundError: ``images_dir`` or ``labeled`` does not exist.
        ValueError: ``images_dir`` is not inside ``data_root``, or ``classes`` is empty.
        AnnotationError: the labeled set cannot be used (unknown classes, boxes outside their
            image, ...; every problem named).
    """
    images_dir = osp.abspath(images_dir)
    if not osp.isdir(images_dir):
        raise FileNotFoundError(f'{images_dir} is not a folder of images')
    root = osp.abspath(data_root or images_dir)
    if osp.commonpath([root, images_dir]) != root:
        raise ValueError(f'--data-root {root} must contain the images folder {images_dir}: '
                         f'file names are written relative to it')
    categories = categories_of(classes)
    cache = cache or DecodeCache()
    made = MadePool(pool={})
    readable: 'OrderedDict[str, Any]' = OrderedDict()   # relative path -> ImageInfo
    for path in find_images(images_dir):
        rel = osp.relpath(path, root).replace(os.sep, '/')
        info = inspect_image(path, decode, cache, digest=True)
        if info.problem is not None:
            kind, detail = info.problem
            made.rejected.append((rel, f'{SHORT_KINDS[kind]}: {detail}'.rstrip(': ')))
        else:
            readable[rel] = info
    cache.save()
    labeled_rels = _labeled(made, labeled, readable, categories) if labeled is not None else []
    # one file per content: a labeled one if the content is labeled, else the first
    keep: Dict[str, str] = {}
    for rel in labeled_rels + list(readable):
        keep.setdefault(readable[rel].sha256, rel)
    made.duplicates = [(rel, keep[info.sha256]) for rel, info in readable.items()
                       if keep[info.sha256] != rel and rel not in labeled_rels]
    unlabeled = [rel for rel, info in readable.items() if keep[info.sha256] == rel
                 and rel not in labeled_rels]
    names: Dict[str, List[str]] = {}
    for rel in unlabeled + labeled_rels:
        names.setdefault(rel.rsplit('/', 1)[-1], []).append(rel)
    made.shared_names = sorted(n for n, rels in names.items() if len(rels) > 1)
    first = 1 + len(labeled_rels)
    made.pool = _coco([dict(id=first + k, file_name=rel, width=readable[rel].width,
                            height=readable[rel].height) for k, rel in enumerate(unlabeled)],
                      categories, f'unlabeled pool of {images_dir} (tools/make_pool.py)')
    return made


def _coco(images, categories, description, annotations=()):
    return dict(info=dict(description=description), licenses=[], images=list(images),
                annotations=list(annotations), categories=[dict(c) for c in categories])


def _labeled(made: MadePool, labeled: str, readable: 'OrderedDict[str, Any]',
             categories: List[Dict[str, Any]]) -> List[str]:
    """Match the labeled set to the folder's files; fill ``made.labeled``, ``made.left_out``
    and ``made.labeled_missing``; returns the relative paths of the labeled images, sorted."""
    _, images = read_labels(labeled)
    matcher = NameMatcher({rel: rel for rel in readable})
    matched, unmatched, ambiguous = matcher.match_all(
        [(n, image.file_name) for n, image in enumerate(images)])
    if ambiguous:
        n, keys = next(iter(ambiguous.items()))
        raise AnnotationError(
            f'{labeled}: the names of {len(ambiguous)} labeled image(s) match several files of '
            f'the folder, e.g. {images[n].file_name!r}: {keys[:3]}; give the labeled images\' '
            f'file names with their folders')
    made.labeled_missing = [images[n].file_name for n in unmatched]
    rels = sorted(set(matched.values()))
    pool_images = {rel: PoolImage(rel, rel, readable[rel].width, readable[rel].height)
                   for rel in rels}
    boxes = check_import([images[n] for n in sorted(matched)], labeled, rels, pool_images,
                         {c['name']: c['id'] for c in categories}, what='the labeled set')
    made.left_out = rels
    entries, annotations = [], []
    for k, rel in enumerate(rels):
        entries.append(dict(id=k + 1, file_name=rel, width=readable[rel].width,
                            height=readable[rel].height))
        for bbox, cat in boxes[rel]:
            annotations.append(dict(id=len(annotations) + 1, image_id=k + 1, category_id=cat,
                                    bbox=bbox, area=bbox[2] * bbox[3], iscrowd=0))
    made.labeled = _coco(entries, categories,
                         f'labeled images of {labeled} (tools/make_pool.py)', annotations)
    return rels
