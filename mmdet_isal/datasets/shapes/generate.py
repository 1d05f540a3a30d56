"""``make_shapes_dataset``: write the synthetic shapes detection data set to a folder.

It renders small RGB images of filled shapes on busy backgrounds (``render``, designed in
``design``) and writes them with box annotations in COCO or VOC layout (``writers``). It imports
only numpy, Pillow and the standard library, so that making the data set does not wait for
torch or mmdet.

Splits: ``train`` (the active-learning pool), ``val`` and, when asked for, ``test`` (a held-out
split for the final score, with val's distribution). Each split draws from its own seed stream,
so adding a test split leaves every train and val file as it was.

Determinism: image ``i`` of a split is a pure function of ``(seed, split, i, image_size)``,
rendered with its own ``numpy.random.Generator``; the same seed gives the same bytes for the same
numpy, Pillow and zlib versions. Images are PNG (COCO) or JPEG at fixed quality 95 without chroma
subsampling (VOC, whose loader reads ``JPEGImages/{id}.jpg``).

Output folder: ``out_dir`` must be new or empty, or hold a data set this function wrote (it
leaves ``shapes_manifest.json`` there, with the settings and each file's SHA-256). Same settings:
the files are checked and rewritten only if one is missing or differs. A set written without a
test split, asked for one with otherwise the same settings: the test split is added and the
train and val files are left alone. Other settings, or a folder with files of someone else's:
refused with ``FileExistsError``. Nothing is ever deleted.
"""
import os
from collections import Counter

import numpy as np

from .design import SCENES, SHAPES_CLASSES
from .manifest import check_out_dir, files_intact, write_manifest
from .render import SplitRenderer
from .writers import MAX_IMAGES, WRITERS


def make_shapes_dataset(out_dir, seed=0, fmt='coco', num_train=2000, num_val=300,
                        image_size=128, num_test=0):
    """Write the synthetic shapes data set (see the module docstring of ``design``).

    Args:
        out_dir (str | os.PathLike): Folder to write; new, empty, or one this function wrote
            with the same settings (then only missing or changed files are rewritten), or with
            the same settings but no test split (then the test split is added).
        seed (int): Random seed, >= 0. Same seed, same files.
        fmt (str): ``'coco'``: ``annotations/instances_{split}.json`` and
            ``images/{split}_{nnnnnn}.png``. ``'voc'``: ``VOC2012/Annotations/*.xml``,
            ``VOC2012/JPEGImages/*.jpg`` and ``VOC2012/ImageSets/Main/{split}.txt``.
        num_train (int): Images in the train split (the active-learning pool), 1 to 999999.
        num_val (int): Images in the val split, 1 to 999999.
        image_size (int): Side of the square images in px, 32 to 1024.
        num_test (int): Images in the held-out test split, 0 (no test split) to 999999. Its
            COCO image ids start at 1000001, above every train and val id. Default 0, so
            that a call naming only train and val writes the files it wrote before the test
            split existed (the benchmark's sets go up to 1024 px); ``make data`` and
            ``tools/make_toy_dataset.py`` write 500.

    Returns:
        dict: ``out_dir``, ``format``, ``seed``, ``image_size``, ``status`` (``'written'``,
        ``'up-to-date'`` or ``'test-split-added'``) and per split (``splits[name]``):
        ``images``, ``objects``, ``empty_images``, ``max_objects``, ``class_counts`` (name ->
        count) and ``scenes`` (scene -> image count).

    Raises:
        ValueError: An argument is out of range.
        FileExistsError: ``out_dir`` is a file, or a non-empty folder not written by this
            function with the same settings.
    """
    params = _check_params(seed, fmt, num_train, num_val, num_test, image_size)
    out_dir = os.fspath(out_dir)
    previous = check_out_dir(out_dir, params)
    if previous is not None and previous.get('complete') and \
            files_intact(out_dir, previous.get('files')):
        if previous['params']['num_test'] == params['num_test']:
            return dict(previous['summary'], out_dir=out_dir, status='up-to-date')
        # Train and val are there and intact: add the test split, touch nothing else. The
        # manifest is rewritten last, so an interrupted run leaves the set as it was.
        writer = WRITERS[fmt](out_dir)
        summary = previous['summary']
        _write_splits(writer, params, ('test',), summary)
        write_manifest(out_dir, params, summary, dict(previous['files'], **writer.hashes))
        return dict(summary, out_dir=out_dir, status='test-split-added')

    os.makedirs(out_dir, exist_ok=True)
    # Written first and marked incomplete, so that an interrupted run can be resumed by
    # running the same command again, and is not taken for someone else's folder.
    write_manifest(out_dir, params)
    writer = WRITERS[fmt](out_dir)
    summary = dict(format=fmt, seed=params['seed'], image_size=params['image_size'], splits={})
    _write_splits(writer, params, ('train', 'val'), summary)
    # The test split after train and val, as when it is added to a set written without one:
    # both ways give the same files and the same manifest.
    if params['num_test']:
        _write_splits(writer, params, ('test',), summary)
    write_manifest(out_dir, params, summary, writer.hashes)
    return dict(summary, out_dir=out_dir, status='written')


def _write_splits(writer, params, splits, summary):
    """Render and write the images of splits, then their annotation lists in reverse order.

    Annotation lists last, the first split's last of all: a set whose ``instances_train.json``
    (``train.txt``) exists holds train and val, one whose ``instances_test.json`` exists holds
    all three, even if a run was interrupted before writing the manifest. Adds each split's
    counts to ``summary['splits']``.
    """
    for split in splits:
        renderer = SplitRenderer(params['seed'], split, params['image_size'])
        records = []
        for index in range(params[f'num_{split}']):
            image, objects, scene, source = renderer.render(index)
            record = dict(index=index, objects=objects, scene=scene)
            if source is not None:
                record['duplicate_of'] = source
            writer.add_image(split, record, image)
            records.append(record)
        summary['splits'][split] = _split_summary(records)
    for split in reversed(splits):
        writer.finish_split(split)


def _check_params(seed, fmt, num_train, num_val, num_test, image_size):
    """Validate the arguments of make_shapes_dataset; return them as a JSON-able dict."""
    for name, value, low in (('seed', seed, 0), ('num_train', num_train, 1),
                             ('num_val', num_val, 1), ('num_test', num_test, 0),
                             ('image_size', image_size, 32)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f'{name} must be an integer, got {value!r}')
        if value < low:
            raise ValueError(f'{name} must be >= {low}, got {value}')
    for name, value in (('num_train', num_train), ('num_val', num_val), ('num_test', num_test)):
        if value > MAX_IMAGES:
            raise ValueError(f'{name} must be <= {MAX_IMAGES} (file names number images with '
                             f'six digits), got {value}')
    if image_size > 1024:
        raise ValueError(f'image_size must be <= 1024, got {image_size}')
    if fmt not in WRITERS:
        raise ValueError(f"fmt must be 'coco' or 'voc', got {fmt!r}")
    # The manifest's order (num_test is left out of it when 0, see manifest).
    return dict(seed=int(seed), fmt=fmt, num_train=int(num_train), num_val=int(num_val),
                num_test=int(num_test), image_size=int(image_size))


def _split_summary(records):
    """Counts over one split's image records (see make_shapes_dataset's Returns)."""
    per_image = [len(r['objects']) for r in records]
    classes = Counter(SHAPES_CLASSES[o['label']] for r in records for o in r['objects'])
    return dict(
        images=len(records),
        objects=int(sum(per_image)),
        empty_images=int(sum(n == 0 for n in per_image)),
        max_objects=int(max(per_image)),
        class_counts={c: classes.get(c, 0) for c in SHAPES_CLASSES},
        scenes={s: sum(r['scene'] == s for r in records) for s in SCENES})
