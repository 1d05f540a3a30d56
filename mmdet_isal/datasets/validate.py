"""Checks of detection annotation files and their images, run before any training.

mmdet reads annotation files leniently: an annotation on an image id that does not exist, a box
of negative size or a category that is not declared is dropped or trained on without a word,
and a missing image file stops training with a traceback hours later. These checks read a COCO
instances json or a VOC ``ImageSets`` list with its XML files once, collect every problem, and
raise one :class:`AnnotationError` that names the file, each kind of problem, how many entries
have it and the first of them. They never modify a file.

What is an error and what is a note:

- errors: the file is not JSON / not well-formed XML, required keys or elements are missing,
  ids repeat, two images share one ``file_name`` (one image would be labeled twice), an
  annotation points at an image or category that is not declared, a box has a
  negative size, non-numeric or non-finite coordinates, or lies outside its image by more than
  :data:`BOX_TOLERANCE` pixels, a class of ``metainfo.classes`` is not in the file;
- notes (returned, for the caller to log): boxes narrower or lower than one pixel and
  annotations of zero area, which mmdet's ``CocoDataset`` skips in training (COCO train2017
  has two boxes of height 0), and categories of the file outside ``metainfo.classes``, whose
  annotations mmdet ignores on purpose.

The image files themselves (missing, unreadable, truncated, of another size than the file
says) are checked by :mod:`mmdet_isal.datasets.images`.
"""
import json
import math
import os.path as osp
import xml.etree.ElementTree as ET
from collections import Counter, OrderedDict
from typing import Any, Dict, List, Optional, Sequence, Tuple

#: Pixels a box may extend past its image's border (annotation tools round coordinates).
BOX_TOLERANCE = 1.0
#: Examples listed per kind of problem.
MAX_EXAMPLES = 3

COCO_IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
COCO_ANNOTATION_KEYS = ('id', 'image_id', 'category_id', 'bbox', 'area')
VOC_BOX_TAGS = ('xmin', 'ymin', 'xmax', 'ymax')


class AnnotationError(ValueError):
    """An annotation file (or its images) the loop cannot use; the message lists every kind of
    problem with a count and examples."""


class Problems:
    """Problems of one file, grouped by kind: ``add(kind, example)``; :meth:`raise_if_any`."""

    def __init__(self, source: str):
        self.source = source
        self._kinds: 'OrderedDict[str, List[str]]' = OrderedDict()

    def add(self, kind: str, example: str) -> None:
        self._kinds.setdefault(kind, []).append(example)

    def __bool__(self) -> bool:
        return bool(self._kinds)

    def lines(self) -> List[str]:
        """One line per kind: ``N <kind>, e.g. <example>; <example>``."""
        out = []
        for kind, examples in self._kinds.items():
            more = f'; ... ({len(examples) - MAX_EXAMPLES} more)' \
                if len(examples) > MAX_EXAMPLES else ''
            out.append(f'{len(examples)} {kind}, e.g. {"; ".join(examples[:MAX_EXAMPLES])}{more}')
        return out

    def raise_if_any(self, what_to_do: str) -> None:
        if self:
            lines = '\n'.join(f'  - {line}' for line in self.lines())
            raise AnnotationError(f'{self.source} cannot be used:\n{lines}\n{what_to_do}')


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


class _AnnotationPlace:
    """``annotation id A (image id I)``, formatted only when a message needs it."""
    __slots__ = ('ann',)

    def __init__(self, ann):
        self.ann = ann

    def __str__(self):
        return f'annotation id {self.ann["id"]!r} (image id {self.ann["image_id"]!r})'

    def __format__(self, spec):
        return str(self)


def load_coco(ann_file: str) -> Dict[str, Any]:
    """Read a COCO instances json, with an :class:`AnnotationError` naming the file and the
    place for anything that is not a json object with ``images``, ``annotations`` and
    ``categories`` lists."""
    try:
        with open(ann_file, 'rb') as f:
            coco = json.loads(f.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        where = f': line {e.lineno}, column {e.colno}' if hasattr(e, 'lineno') else ''
        raise AnnotationError(
            f'{ann_file} is not valid JSON ({getattr(e, "msg", e)}{where}); is the file '
            f'complete? Write it again from its source') from None
    if not isinstance(coco, dict):
        raise AnnotationError(f'{ann_file} holds a JSON {type(coco).__name__}, not a COCO '
                              f'instances object with "images", "annotations", "categories"')
    missing = [k for k in ('images', 'annotations', 'categories')
               if not isinstance(coco.get(k), list)]
    if missing:
        raise AnnotationError(
            f'{ann_file} is not a COCO instances file: '
            + ', '.join(f'"{k}" is ' + ('missing' if k not in coco else 'not a list')
                        for k in missing)
            + '; a COCO instances file has "images", "annotations" and "categories" lists')
    return coco


def _complete_entries(coco: Dict[str, Any], section: str, keys: Sequence[str],
                      problems: 'Problems'):
    """The entries of ``coco[section]`` that are objects holding every key of ``keys``; the
    others are recorded in ``problems``."""
    for n, entry in enumerate(coco[section]):
        if not isinstance(entry, dict):
            problems.add(f'{section} that are not objects', f'{section}[{n}] = {entry!r:.80}')
            continue
        missing = [k for k in keys if k not in entry]
        if missing:
            problems.add(f'{section} without {"/".join(keys)}',
                         f'{section}[{n}] (id {entry.get("id")!r}) has no {", ".join(missing)}')
            continue
        yield entry


def check_coco(coco: Dict[str, Any], ann_file: str,
               classes: Optional[Sequence[str]] = None) -> List[str]:
    """Check a COCO instances dict (from :func:`load_coco`) for what mmdet would drop, train on
    wrongly or fail on later.

    Args:
        coco: the parsed file.
        ann_file: its path, for messages.
        classes: the dataset's ``metainfo['classes']`` (``None``: not checked); each must be
            the ``name`` of a category of the file.

    Returns:
        notes: what mmdet will skip on purpose (tiny or zero-area boxes, categories outside
        ``classes``), one line each, for the caller to log.

    Raises:
        AnnotationError: listing every kind of problem found.
    """
    if not coco['images']:
        raise AnnotationError(f'{ann_file} lists no images ("images": []); a data set (and an '
                              f'active-learning pool) needs at least one image')
    problems, notes = Problems(ann_file), Problems(ann_file)
    categories = {}
    for n, cat in enumerate(coco['categories']):
        if not isinstance(cat, dict) or 'id' not in cat or 'name' not in cat:
            problems.add('categories without "id" or "name"', f'categories[{n}] = {cat!r:.80}')
        elif cat['id'] in categories:
            problems.add('repeated category ids', f'id {cat["id"]!r}')
        else:
            categories[cat['id']] = str(cat['name'])
    images, by_name = {}, {}
    for img in _complete_entries(coco, 'images', COCO_IMAGE_KEYS, problems):
        if img['id'] in images:
            problems.add('repeated image ids', f'id {img["id"]!r}')
            continue
        by_name.setdefault(img['file_name'], []).append(img['id'])
        if not (_number(img['width']) and _number(img['height']) and
                img['width'] > 0 and img['height'] > 0):
            problems.add('images whose width or height is not a positive number',
                         f'id {img["id"]!r}: width {img["width"]!r}, height {img["height"]!r}')
        images[img['id']] = img
    for name, ids in by_name.items():
        if len(ids) > 1:
            problems.add('images sharing one file_name (one image would be labeled twice)',
                         f'file_name {name!r}: image ids {", ".join(map(repr, ids[:5]))}')
    ann_ids = Counter()
    for ann in _complete_entries(coco, 'annotations', COCO_ANNOTATION_KEYS, problems):
        ann_ids[ann['id']] += 1
        where = _AnnotationPlace(ann)
        img = images.get(ann['image_id'])
        if img is None:
            problems.add('annotations on an image id that is not in "images"', str(where))
        if ann['category_id'] not in categories:
            problems.add(f'annotations whose category_id is not declared in "categories" '
                         f'(declared: {sorted(categories, key=str)[:20]})',
                         f'{where}: category_id {ann["category_id"]!r}')
        box = ann['bbox']
        if not (isinstance(box, list) and len(box) == 4 and all(_number(v) for v in box)):
            problems.add('boxes that are not 4 finite numbers [x, y, width, height]',
                         f'{where}: bbox {box!r:.80}')
            continue
        x, y, w, h = box
        if w < 0 or h < 0:
            problems.add('boxes with a negative width or height', f'{where}: bbox {box}')
            continue
        if img is not None and _number(img['width']) and _number(img['height']) and (
                x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or
                x + w > img['width'] + BOX_TOLERANCE or y + h > img['height'] + BOX_TOLERANCE):
            problems.add(f'boxes outside their image (by more than {BOX_TOLERANCE:g} px)',
                         f'{where}: bbox {box} in a {img["width"]}x{img["height"]} image')
        if w < 1 or h < 1 or not _number(ann['area']) or ann['area'] <= 0:
            notes.add('annotations that mmdet skips in training (width or height < 1 px, or '
                      'area <= 0); they still count as annotated boxes',
                      f'{where}: bbox {box}, area {ann["area"]!r}')
    for ann_id, count in ann_ids.items():
        if count > 1:
            problems.add('repeated annotation ids', f'id {ann_id!r} ({count} times)')
    if classes is not None:
        names = set(categories.values())
        absent = [c for c in classes if c not in names]
        if absent:
            problems.add(f'classes of the config (metainfo.classes) that are not category names '
                         f'of the file (its names: {sorted(names)[:20]})', ', '.join(absent))
        unused = sorted(names - set(classes))
        if unused:
            notes.add('categories that are not in metainfo.classes: mmdet ignores their '
                      'annotations', ', '.join(unused[:10]))
    problems.raise_if_any('Fix the file (this tool never modifies it) or point the config at '
                          'another one, then run again.')
    return notes.lines()


def read_voc_ids(ann_file: str) -> List[str]:
    """The image ids of a VOC ``ImageSets`` list (one per line), refusing repeats."""
    with open(ann_file) as f:
        ids = [line.strip() for line in f if line.strip()]
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        raise AnnotationError(f'{ann_file} cannot be used: it lists image id(s) {repeated[:5]} '
                              f'more than once; list each image once')
    if not ids:
        raise AnnotationError(f'{ann_file} lists no image ids; it should hold one image id '
                              f'(file stem) per line')
    return ids


def parse_voc_xml(xml_file: str, problems: Problems,
                  classes: Optional[Sequence[str]] = None) -> Optional[List[str]]:
    """Parse and check one VOC XML file; returns its objects' class names, or ``None`` when
    the file cannot be read (the problem is added to ``problems``).

    Checks what mmdet's ``XMLDataset`` reads: ``size/width`` and ``size/height`` integers (when
    ``size`` is present), each ``object`` with a ``name`` (in ``classes`` when given), an
    integer ``difficult`` (when present) and a ``bndbox`` of four numbers with ``xmax >= xmin``,
    ``ymax >= ymin`` (VOC coordinates are 1-based and inclusive), inside the image.
    """
    name = osp.basename(xml_file)
    if not osp.isfile(xml_file):
        problems.add('XML files missing', xml_file)
        return None
    try:
        root = ET.parse(xml_file).getroot()
    except ET.ParseError as e:
        problems.add('XML files that are not well-formed', f'{name}: {e}')
        return None
    width = height = None
    size = root.find('size')
    if size is not None:
        try:
            width, height = int(size.findtext('width')), int(size.findtext('height'))
        except (TypeError, ValueError):
            problems.add('XML files whose size/width or size/height is not an integer',
                         f'{name}: width {size.findtext("width")!r}, '
                         f'height {size.findtext("height")!r}')
    names = []
    for n, obj in enumerate(root.findall('object')):
        where = f'{name} object {n}'
        cls = (obj.findtext('name') or '').strip()
        if not cls:
            problems.add('objects without a <name>', where)
            continue
        names.append(cls)
        if classes is not None and cls not in classes:
            problems.add('objects of a class not in metainfo.classes (mmdet would drop them; '
                         'add the class to metainfo.classes or remove the objects)',
                         f'{where}: {cls!r}')
        difficult = obj.findtext('difficult')
        if difficult is not None and not difficult.strip().lstrip('-').isdigit():
            problems.add('objects whose <difficult> is not an integer',
                         f'{where}: {difficult!r}')
        box = obj.find('bndbox')
        if box is None:
            problems.add('objects without a <bndbox>', where)
            continue
        try:
            x1, y1, x2, y2 = (float(box.findtext(t)) for t in VOC_BOX_TAGS)
        except (TypeError, ValueError):
            problems.add('boxes whose xmin/ymin/xmax/ymax are missing or not numbers',
                         f'{where}: ' + ', '.join(f'{t}={box.findtext(t)!r}'
                                                  for t in VOC_BOX_TAGS))
            continue
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            problems.add('boxes with non-finite coordinates', f'{where}: {x1, y1, x2, y2}')
        elif x2 < x1 or y2 < y1:
            problems.add('boxes with xmax < xmin or ymax < ymin (a negative size)',
                         f'{where}: ({x1:g}, {y1:g}, {x2:g}, {y2:g})')
        elif width is not None and height is not None and (
                x1 < 1 - BOX_TOLERANCE or y1 < 1 - BOX_TOLERANCE or
                x2 > width + BOX_TOLERANCE or y2 > height + BOX_TOLERANCE):
            problems.add(f'boxes outside their image (by more than {BOX_TOLERANCE:g} px)',
                         f'{where}: ({x1:g}, {y1:g}, {x2:g}, {y2:g}) in a {width}x{height} '
                         f'image')
    return names


def check_voc(ann_file: str, xml_dir: str,
              classes: Optional[Sequence[str]] = None) -> Tuple[List[str], Dict[str, List[str]]]:
    """Check a VOC ``ImageSets`` list and the XML file of each of its images.

    Args:
        ann_file: the list (one image id per line).
        xml_dir: the directory of ``<id>.xml``.
        classes: the dataset's ``metainfo['classes']`` (``None``: not checked).

    Returns:
        (image ids in list order, per image id the class names of its objects).

    Raises:
        AnnotationError: listing every kind of problem found.
    """
    ids = read_voc_ids(ann_file)
    problems = Problems(f'{ann_file} (XML files in {xml_dir})')
    objects = {}
    for img_id in ids:
        objects[img_id] = parse_voc_xml(osp.join(xml_dir, f'{img_id}.xml'), problems, classes)
    problems.raise_if_any('Fix the files (this tool never modifies them) or check '
                          'data_root and data_prefix.sub_data_root, then run again.')
    return ids, objects
