"""Labels as annotation tools export them, read into one form: a COCO file (CVAT's "COCO 1.0",
Label Studio's "COCO", or any tool's) or a folder of Pascal VOC XML files (CVAT's "PASCAL VOC
1.1", LabelImg, ...).

Nothing here knows the pool: images keep the names and ids the tool gave them (tools renumber
ids and rewrite paths), boxes their class names. :mod:`.imports` matches them to the pool.
Coordinates become COCO's ``[x, y, width, height]`` in pixels, ``x, y`` the top-left corner
(VOC's 1-based inclusive corners ``xmin..xmax`` become ``x = xmin - 1``,
``width = xmax - xmin + 1``).
"""
import glob
import hashlib
import math
import os.path as osp
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from mmdet_isal.datasets.validate import AnnotationError, Problems, load_coco

#: The kinds of label files :func:`read_labels` reads.
FORMATS = ('coco', 'voc')


@dataclass
class LabeledBox:
    """One box as exported: ``bbox`` ``(x, y, width, height)`` in pixels, its class name, and
    where it is in the file (for messages, e.g. ``'annotation id 7'``)."""
    bbox: Tuple[float, float, float, float]
    category: str
    where: str


@dataclass
class LabeledImage:
    """One image of an export: its name as the tool wrote it, its size if the file gives one,
    its boxes, and where it is in the file (e.g. ``"images[3] (id 12)"``, ``'a.xml'``)."""
    file_name: str
    width: Optional[float]
    height: Optional[float]
    where: str
    boxes: List[LabeledBox] = field(default_factory=list)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def read_coco_labels(path: str) -> List[LabeledImage]:
    """The images and boxes of a COCO export.

    Raises:
        AnnotationError: the file is not a COCO instances file, or (listing every one) an
            image without ``file_name``, an annotation on an image or category id the file does
            not declare, a ``bbox`` that is not 4 finite numbers.
    """
    coco = load_coco(path)
    problems = Problems(path)
    names = {}
    for n, cat in enumerate(coco['categories']):
        if isinstance(cat, dict) and 'id' in cat and 'name' in cat:
            names[cat['id']] = str(cat['name'])
        else:
            problems.add('categories without "id" or "name"', f'categories[{n}]')
    images, by_id = [], {}
    for n, img in enumerate(coco['images']):
        if not isinstance(img, dict) or not isinstance(img.get('file_name'), str):
            problems.add('images without a "file_name"', f'images[{n}]')
            continue
        width, height = img.get('width'), img.get('height')
        entry = LabeledImage(img['file_name'], width if _finite(width) else None,
                             height if _finite(height) else None,
                             f'images[{n}] (id {img.get("id")!r}, {img["file_name"]!r})')
        images.append(entry)
        if img.get('id') in by_id:
            problems.add('repeated image ids', f'id {img.get("id")!r}')
        by_id[img.get('id')] = entry
    for n, ann in enumerate(coco['annotations']):
        ann = ann if isinstance(ann, dict) else {}
        where = f'annotation id {ann.get("id", n)!r}'
        image = by_id.get(ann.get('image_id'))
        if image is None:
            problems.add('annotations on an image id the file does not declare',
                         f'{where}: image_id {ann.get("image_id")!r}')
            continue
        if ann.get('category_id') not in names:
            problems.add('annotations whose category_id the file does not declare',
                         f'{where} on {image.file_name!r}: category_id '
                         f'{ann.get("category_id")!r}')
            continue
        box = ann.get('bbox')
        if not (isinstance(box, list) and len(box) == 4 and all(_finite(v) for v in box)):
            problems.add('annotations whose bbox is not 4 finite numbers [x, y, width, height]',
                         f'{where} on {image.file_name!r}: bbox {box!r:.60}')
            continue
        image.boxes.append(LabeledBox(tuple(float(v) for v in box), names[ann['category_id']],
                                      where))
    problems.raise_if_any('Export the labels again from the annotation tool (as COCO), then run '
                          'again; nothing was merged.')
    return images


def voc_xml_files(folder: str) -> List[str]:
    """The ``.xml`` files under ``folder`` (any depth: an export's ``Annotations/`` or the files
    themselves), sorted."""
    return sorted(glob.glob(osp.join(folder, '**', '*.xml'), recursive=True))


def read_voc_labels(folder: str) -> List[LabeledImage]:
    """The images and boxes of a folder of VOC XML files; an image's name is its
    ``<filename>``, else the XML file's stem.

    Raises:
        AnnotationError: the folder holds no XML file, or (listing every one) a file that is
            not well-formed, an object without ``<name>`` or with a ``<bndbox>`` that is not
            four numbers.
    """
    files = voc_xml_files(folder)
    if not files:
        raise AnnotationError(f'{folder} holds no .xml file: a Pascal VOC export is a folder of '
                              f'XML files (e.g. its Annotations/); export the labels as COCO or '
                              f'Pascal VOC and pass the file or the folder')
    problems = Problems(folder)
    images = []
    for path in files:
        rel = osp.relpath(path, folder)
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            problems.add('XML files that are not well-formed', f'{rel}: {e}')
            continue
        name = (root.findtext('filename') or '').strip() or osp.splitext(osp.basename(path))[0]
        size = root.find('size')
        width = height = None
        if size is not None:
            try:
                width, height = float(size.findtext('width')), float(size.findtext('height'))
            except (TypeError, ValueError):
                width = height = None
        image = LabeledImage(name, width, height, rel)
        for n, obj in enumerate(root.findall('object')):
            where = f'{rel} object {n}'
            cls = (obj.findtext('name') or '').strip()
            box = obj.find('bndbox')
            try:
                x1, y1, x2, y2 = (float(box.findtext(t)) for t in ('xmin', 'ymin', 'xmax', 'ymax'))
            except (AttributeError, TypeError, ValueError):
                problems.add('objects without a <bndbox> of four numbers', where)
                continue
            if not cls:
                problems.add('objects without a <name>', where)
                continue
            image.boxes.append(LabeledBox((x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1), cls, where))
        images.append(image)
    problems.raise_if_any('Export the labels again from the annotation tool, then run again; '
                          'nothing was merged.')
    return images


def read_labels(path: str) -> Tuple[str, List[LabeledImage]]:
    """``('coco', images)`` for a COCO json file, ``('voc', images)`` for a folder of VOC XML
    files.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        AnnotationError: it cannot be read as either (naming what is wrong).
    """
    if osp.isdir(path):
        return 'voc', read_voc_labels(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: pass the COCO file (.json) or the '
                                f'folder of VOC .xml files the annotation tool exported')
    return 'coco', read_coco_labels(path)


def labels_digest(path: str) -> str:
    """SHA-256 of a label file, or of a VOC folder (its XML files' relative names and bytes, in
    order): what the ledger records, so that a re-import is recognised."""
    digest = hashlib.sha256()
    if osp.isdir(path):
        for xml in voc_xml_files(path):
            digest.update(osp.relpath(xml, path).encode() + b'\0')
            with open(xml, 'rb') as f:
                digest.update(f.read())
    else:
        with open(path, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()

