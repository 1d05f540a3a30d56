"""``make_shapes_classification``: write a single-object classification set (``single``) to a
folder, as an image folder and one list file per split.

Layout of ``out_dir``::

    images/{split}_{nnnnnn}.png   the images (RGB PNG), n from 1
    {split}.txt                   one line per image, "{file name} {label}", label = the class's
                                  line in classes.txt (0-based)
    classes.txt                   the class names, one per line
    shapes_manifest.json          settings, summary and every file's SHA-256

Splits: ``train`` (the active-learning pool, or the pretraining set), ``val`` (ISAL's reference
set, or the pretraining's validation) and ``test`` (evaluation only). Image ``i`` of a split is a
pure function of ``(class_set, seed, split, i, image_size)``; the same settings give the same
bytes for the same numpy, Pillow and zlib versions.

Output folder: new or empty, or written by this function. Same settings: the files are checked
(SHA-256) and the set is rewritten only if one is missing or differs; other settings, or a folder
of someone else's: refused with ``FileExistsError``. Nothing is ever deleted.
"""
import hashlib
import io
import os
from collections import Counter

import numpy as np
from PIL import Image

from .manifest import check_out_dir, files_intact, write_manifest
from .single import CLASS_SETS, SINGLE_SCENES, SingleObjectRenderer
from .writers import MAX_IMAGES

#: the mark of this generator in ``shapes_manifest.json`` (the detection set has its own)
GENERATOR = 'mmdet_isal.datasets.shapes.classification'
VERSION = 1
SPLITS = ('train', 'val', 'test')


def make_shapes_classification(out_dir, class_set='shapes', seed=0, num_train=20000,
                               num_val=1000, num_test=5000, image_size=None):
    """Write a single-object classification set (see :mod:`.single` for what it holds).

    Args:
        out_dir (str | os.PathLike): Folder to write; new, empty, or one this function wrote
            with the same settings (then only checked, and rewritten if a file is missing or
            differs).
        class_set (str): ``'shapes'`` (the detection set's 8 classes, long-tailed, 32 px: the
            classification task of the active-learning loop) or ``'other_shapes'`` (10 shapes
            that are no detection class, balanced, 64 px: backbone pretraining).
        seed (int): Random seed, >= 0. Same seed, same files.
        num_train (int): Images in the train split, 1 to 999999.
        num_val (int): Images in the val split, 1 to 999999.
        num_test (int): Images in the test split, 1 to 999999.
        image_size (int | None): Image side in px, 32 to 1024; None: the class set's (32 for
            ``shapes``, 64 for ``other_shapes``).

    Returns:
        dict: ``out_dir``, ``class_set``, ``classes``, ``seed``, ``image_size``, ``status``
        (``'written'`` or ``'up-to-date'``) and per split (``splits[name]``): ``images``,
        ``class_counts`` (name -> count) and ``scenes`` (scene -> count).

    Raises:
        ValueError: an argument is out of range or ``class_set`` unknown.
        FileExistsError: ``out_dir`` is a file, or a non-empty folder not written by this
            function with the same settings.
    """
    params = _check_params(class_set, seed, num_train, num_val, num_test, image_size)
    out_dir = os.fspath(out_dir)
    previous = check_out_dir(out_dir, params, generator=GENERATOR, version=VERSION)
    if previous is not None and previous.get('complete') and \
            files_intact(out_dir, previous.get('files')):
        return dict(previous['summary'], out_dir=out_dir, status='up-to-date')
    os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
    # Written first and marked incomplete: an interrupted run is resumed by the same command.
    write_manifest(out_dir, params, generator=GENERATOR, version=VERSION)
    cs = CLASS_SETS[params['class_set']]
    hashes = {}
    summary = dict(class_set=cs.name, classes=list(cs.classes), seed=params['seed'],
                   image_size=params['image_size'], splits={})
    lines = {}
    for split in SPLITS:
        renderer = SingleObjectRenderer(cs, params['seed'], split, params['image_size'])
        labels, scenes, lines[split] = [], [], []
        for index in range(params[f'num_{split}']):
            image, label, scene, _ = renderer.render(index)
            name = f'{split}_{index + 1:06d}.png'
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format='PNG', compress_level=1)
            _write(out_dir, f'images/{name}', buf.getvalue(), hashes)
            lines[split].append(f'{name} {label}\n')
            labels.append(label)
            scenes.append(scene)
        counts, kinds = Counter(labels), Counter(scenes)
        summary['splits'][split] = dict(
            images=len(labels), class_counts={c: counts.get(k, 0) for k, c in
                                              enumerate(cs.classes)},
            scenes={s: kinds.get(s, 0) for s in SINGLE_SCENES})
    _write(out_dir, 'classes.txt', ''.join(f'{c}\n' for c in cs.classes).encode(), hashes)
    # the lists after the images, train's last: a folder whose train.txt exists holds them all
    for split in reversed(SPLITS):
        _write(out_dir, f'{split}.txt', ''.join(lines[split]).encode(), hashes)
    write_manifest(out_dir, params, summary, hashes, generator=GENERATOR, version=VERSION)
    return dict(summary, out_dir=out_dir, status='written')


def _write(out_dir, rel_path, data, hashes):
    with open(os.path.join(out_dir, rel_path), 'wb') as f:
        f.write(data)
    hashes[rel_path] = hashlib.sha256(data).hexdigest()


def _check_params(class_set, seed, num_train, num_val, num_test, image_size):
    """Validate the arguments of make_shapes_classification; return them as a JSON-able dict."""
    if class_set not in CLASS_SETS:
        raise ValueError(f'class_set must be one of {tuple(CLASS_SETS)}, got {class_set!r}')
    if image_size is None:
        image_size = CLASS_SETS[class_set].image_size
    for name, value, low, high in (('seed', seed, 0, None), ('num_train', num_train, 1,
                                                              MAX_IMAGES),
                                   ('num_val', num_val, 1, MAX_IMAGES),
                                   ('num_test', num_test, 1, MAX_IMAGES),
                                   ('image_size', image_size, 32, 1024)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f'{name} must be an integer, got {value!r}')
        if value < low or (high is not None and value > high):
            raise ValueError(f'{name} must be >= {low}' +
                             (f' and <= {high}' if high is not None else '') + f', got {value}')
    return dict(class_set=class_set, seed=int(seed), num_train=int(num_train),
                num_val=int(num_val), num_test=int(num_test), image_size=int(image_size))
