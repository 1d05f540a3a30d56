"""Checking an export against the selection it answers, before anything is merged.

:func:`check_import` matches each exported image to the pool by file name
(:class:`~.matching.NameMatcher`), maps classes by name to the pool's categories, and refuses,
with one :class:`ImportRefused` listing every problem (images, classes and boxes named):

- a selected image that is not in the export and not listed as skipped (a partial export);
- an exported image that was not selected (another step's image, or not in the pool), or that
  matches several pool images, or a selected image exported twice;
- a box of a class the pool does not have;
- a box outside its image, or without a positive size;
- an exported image whose size differs from the file on disk (the tool showed it otherwise).

It reads and writes nothing: the caller merges only what it returns.
"""
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from mmdet_isal.datasets.validate import BOX_TOLERANCE, AnnotationError, Problems
from mmdet_isal.influence.checks import did_you_mean

from .labels import LabeledImage
from .matching import NameMatcher

ImageId = Any
#: A merged box: ``([x, y, width, height] in pixels, pool category id)``.
Box = Tuple[List[float], Any]


class ImportRefused(AnnotationError):
    """An export that cannot be merged; the message lists every problem and says that nothing
    was merged."""


@dataclass(frozen=True)
class PoolImage:
    """A pool image as an import sees it.

    Args:
        image_id: its id in the pool.
        file_name: its file name relative to the image directory.
        width, height: its size as loaded, in pixels.
        status: what it is in the run, for messages (e.g. ``'labeled at step 1'``).
    """
    image_id: ImageId
    file_name: str
    width: float
    height: float
    status: str = 'in the pool'


def _name(img: PoolImage) -> str:
    return f'image id {img.image_id!r} ({img.file_name})'


def check_import(labels: Sequence[LabeledImage], source: str, selected: Sequence[ImageId],
                 pool_images: Mapping[ImageId, PoolImage], categories: Mapping[str, Any],
                 skipped: Sequence[ImageId] = (), what: str = 'the selection'
                 ) -> Dict[ImageId, List[Box]]:
    """The boxes of each selected, annotated image, in the pool's terms.

    Args:
        labels: the export (:func:`~.labels.read_labels`).
        source: the export's path, for messages.
        selected: the ids of the images to annotate.
        pool_images: every pool image (the selected ones and the others, so that an image of
            another step is named as such).
        categories: the pool's ``{class name: category id}``.
        skipped: selected ids the annotator skipped (``--skipped``): they may be absent.
        what: the selection, for messages (e.g. ``"step_2's selection"``).

    Returns:
        ``{image id: [([x, y, w, h], category id), ...]}`` for every selected image not skipped,
        in ``selected`` order (an image exported without boxes gets ``[]``: it holds nothing).

    Raises:
        ImportRefused: listing every problem; nothing is returned, nothing is merged.
    """
    problems = Problems(source)
    selected_set, skipped_set = set(selected), set(skipped)
    matcher = NameMatcher({i: img.file_name for i, img in pool_images.items()})
    matched, unmatched, ambiguous = matcher.match_all(
        [(n, image.file_name) for n, image in enumerate(labels)])
    for n in unmatched:
        problems.add(f'images that are not images of the pool (not selected in {what})',
                     labels[n].where)
    for n, keys in ambiguous.items():
        problems.add('images whose name matches several pool images (export with the folder '
                     'names, or rename the files)',
                     f'{labels[n].where}: ' + ', '.join(_name(pool_images[k]) for k in keys[:3]))
    found: Dict[ImageId, LabeledImage] = OrderedDict()
    for n, key in matched.items():
        image, pool_image = labels[n], pool_images[key]
        if key not in selected_set:
            problems.add(f'images that were not selected in {what}',
                         f'{image.where} is {_name(pool_image)}, {pool_image.status}')
        elif key in found:
            problems.add('selected images that appear more than once in the export',
                         f'{_name(pool_image)}: {found[key].where} and {image.where}')
        elif key in skipped_set:
            problems.add('images both annotated in the export and listed as skipped (remove '
                         'them from one of the two)', f'{_name(pool_image)}: {image.where}')
        else:
            found[key] = image
    missing = [i for i in selected if i not in found and i not in skipped_set]
    for i in missing:
        problems.add(f'of the {len(selected)} images selected in {what} are missing from the '
                     f'export (a partial export? annotate them, or list those you skip, one '
                     f'per line, in a file passed with --skipped)', _name(pool_images[i]))
    unknown = defaultdict(list)
    merged: Dict[ImageId, List[Box]] = OrderedDict()
    for i in selected:
        if i not in found:
            continue
        image, pool_image = found[i], pool_images[i]
        if image.width is not None and image.height is not None and \
                (abs(image.width - pool_image.width) > 0.5 or
                 abs(image.height - pool_image.height) > 0.5):
            problems.add('images whose size in the export differs from the image file (the '
                         'tool showed it at another size or rotated: boxes would be misplaced)',
                         f'{image.where}: {image.width:g}x{image.height:g} in the export, '
                         f'{pool_image.width:g}x{pool_image.height:g} on disk '
                         f'({_name(pool_image)})')
        boxes = []
        for box in image.boxes:
            x, y, w, h = box.bbox
            if box.category not in categories:
                unknown[box.category].append(f'{image.file_name} {box.where}')
            elif w <= 0 or h <= 0:
                problems.add('boxes without a positive width and height',
                             f'{image.file_name} {box.where}: [{x:g}, {y:g}, {w:g}, {h:g}]')
            elif x < -BOX_TOLERANCE or y < -BOX_TOLERANCE or \
                    x + w > pool_image.width + BOX_TOLERANCE or \
                    y + h > pool_image.height + BOX_TOLERANCE:
                problems.add(f'boxes outside their image (by more than {BOX_TOLERANCE:g} px)',
                             f'{image.file_name} {box.where}: [{x:g}, {y:g}, {w:g}, {h:g}] in '
                             f'a {pool_image.width:g}x{pool_image.height:g} image')
            else:
                boxes.append(([x, y, w, h], categories[box.category]))
        merged[i] = boxes
    for name, places in unknown.items():
        problems.add(f'classes that are not classes of the pool (its classes: '
                     f'{", ".join(sorted(categories))})',
                     f'{name!r}{did_you_mean(name, categories)}: {len(places)} box(es), e.g. '
                     f'{places[0]}')
    _refuse(problems, f'{source} cannot be merged into {what}',
            'Fix the export (or list the images you skipped with --skipped FILE) and run the '
            'same command again.')
    return merged


def _refuse(problems: Problems, head: str, what_to_do: str) -> None:
    """Raise :class:`ImportRefused` listing ``problems``, if any."""
    if problems:
        lines = '\n'.join(f'  - {line}' for line in problems.lines())
        raise ImportRefused(f'{head}:\n{lines}\nNothing was merged: the ledger is unchanged. '
                            f'{what_to_do}')


def read_skipped(path: str, selected: Sequence[ImageId],
                 pool_images: Mapping[ImageId, PoolImage], what: str = 'the selection'
                 ) -> List[ImageId]:
    """The selected images a ``--skipped`` file lists, one per line, by pool image id, file
    name or path (as in ``images.txt``); blank lines and ``#`` comments are ignored.

    Raises:
        FileNotFoundError: no such file.
        ImportRefused: a line that names no selected image (naming the line).
    """
    with open(path) as f:
        lines = [(n + 1, line.strip()) for n, line in enumerate(f)]
    lines = [(n, line) for n, line in lines if line and not line.startswith('#')]
    by_id = {str(i): i for i in selected}
    matcher = NameMatcher({i: pool_images[i].file_name for i in selected})
    problems, skipped = Problems(path), []
    for n, line in lines:
        keys = [by_id[line]] if line in by_id else matcher.match(line)
        if len(keys) != 1:
            problems.add(f'lines that name no single image selected in {what} (an id, a file '
                         f'name or a path of images.txt)', f'line {n}: {line!r}')
        elif keys[0] not in skipped:
            skipped.append(keys[0])
    _refuse(problems, f'{path} (--skipped) cannot be used', 'Fix the file and run the same '
            'command again.')
    return skipped
