"""A synthetic shapes detection data set on which the choice of images matters.

``make_shapes_dataset`` renders small RGB images of filled shapes on busy backgrounds and writes
them with box annotations in COCO or VOC layout. It imports only numpy, Pillow and the standard
library, so that making the data set does not wait for torch or mmdet.

Design (what makes active learning on it non-trivial):

* Classes: ``SHAPES_CLASSES``, eight shapes. Their expected shares of all objects are
  long-tailed, about 16:1 from the most frequent (circle) to the rarest (star), and the rare
  classes are the confusable ones: ring looks like circle, diamond like a rotated square, star
  like triangle. A selector that finds the rare classes gains AP that random sampling does not.
* Class mixture varies between images: each image draws its own class distribution from a
  Dirichlet centred on the global shares (concentration ``_CLASS_CONCENTRATION``), so a few
  images are rich in rare classes while most hold none.
* Scenes, drawn per image (shares in ``_SCENE_SHARES``):
  ``empty`` (no objects, often with distractor strokes: hard negatives); ``sparse`` (1-3 large
  objects on a smooth background with little noise: easy, little to learn); ``typical`` (a
  heavy-tailed count, mean about 5, sizes 6 px up to 55% of the image side); ``cluttered``
  (12 or more small objects, striped and blotchy background, strong noise: hard); and in the
  train split only, ``duplicate`` (an earlier train image re-rendered shifted by up to 3 px with
  new brightness and noise: redundant to label). Each COCO image record carries its ``scene``
  (and ``duplicate_of``, the source image id) for analysis; detectors ignore these keys.
* Sizes: log-uniform, so small objects are common: from 6 px to 55% of the image side (70 px
  at 128), per ``_SCENE_STYLES``. Size is a shape's side or diameter before rotation, so a
  turned square's box can be 1.4 times larger; boxes run from about 4 to 95 px at 128.
* Occlusion: objects are drawn in sequence and may overlap; a placement that would hide more
  than ``1 - _MIN_VISIBLE`` of an earlier object, or leave less than ``_MIN_IN_IMAGE`` of the
  new one inside the image, is retried elsewhere and dropped after ``_PLACE_TRIES`` tries, so
  every annotated object stays recognisable. Boxes are the visible extent: the tight box around
  the pixels where the object is on top (alpha >= 0.5), like COCO boxes around visible masks.
  ``area`` is that visible pixel count, as COCO's mask area.
* Backgrounds: a two-colour gradient, plus sinusoidal stripes and low-frequency colour blobs
  by chance, plus thin unannotated strokes and arcs (distractors); then per-image Gaussian noise
  (sigma up to 20 grey levels) over everything, and a slight blur on some images.
* Colour never tells the class: each object's colour (and optional gradient fill) is drawn
  uniformly in RGB, independently of the class, and resampled only for contrast with what lies
  beneath it.

The default set (seed 0, 2000 train images): 11,473 objects, circle 3971 down to star 222
(17.9:1); objects per image median 3, mean 5.7, 90th percentile 16, max 40; 120 empty images;
15% of boxes at most 8 px on their longer side, 4.5% at least 60 px; 189 duplicates.

Determinism: image ``i`` of a split is a pure function of ``(seed, split, i, image_size)``,
rendered with its own ``numpy.random.Generator``; the same seed gives the same bytes for the same
numpy, Pillow and zlib versions. Images are PNG (COCO) or JPEG at fixed quality 95 without chroma
subsampling (VOC, whose loader reads ``JPEGImages/{id}.jpg``).

Output folder: ``out_dir`` must be new or empty, or hold a data set this function wrote (it
leaves ``shapes_manifest.json`` there, with the settings and each file's SHA-256). Same settings:
the files are checked and rewritten only if one is missing or differs; other settings, or a
folder with files of someone else's: refused with ``FileExistsError``. Nothing is ever deleted.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Category ids are 1 + the index in this tuple (COCO); VOC uses the names.
SHAPES_CLASSES = ('circle', 'square', 'triangle', 'cross', 'ring', 'star', 'diamond',
                  'ellipse')

# Frequency rank of each class (0 = most frequent); the expected share of rank r is
# proportional to _TAIL_RATIO ** (-r / 7).
_FREQUENCY_RANK = dict(circle=0, square=1, triangle=2, ellipse=3, cross=4, diamond=5, ring=6,
                       star=7)
_TAIL_RATIO = 16.0
_CLASS_SHARES = np.array([_TAIL_RATIO**(-_FREQUENCY_RANK[c] / 7) for c in SHAPES_CLASSES])
_CLASS_SHARES /= _CLASS_SHARES.sum()
# Dirichlet concentration of an image's own class mixture around _CLASS_SHARES; lower values
# make images more specialised (a few rich in rare classes, most with none).
_CLASS_CONCENTRATION = 3.0

_SCENES = ('empty', 'sparse', 'typical', 'cluttered', 'duplicate')
_SCENE_SHARES = dict(
    train=(0.06, 0.20, 0.52, 0.12, 0.10),
    val=(0.06, 0.20, 0.62, 0.12, 0.0),
)

# How each scene looks: object sizes from min_size px to max_size (a share of the largest,
# _MAX_SIZE_FRAC of the image side), drawn log-uniform; noise sigma range in grey levels;
# chance of each background texture (stripes, blobs); mean number of distractor strokes.
_SCENE_STYLES = dict(
    empty=dict(min_size=6.0, max_size=1.0, noise=(2, 16), texture=0.6, distractors=4.0),
    sparse=dict(min_size=20.0, max_size=1.0, noise=(0, 6), texture=0.1, distractors=0.0),
    typical=dict(min_size=6.0, max_size=1.0, noise=(2, 14), texture=0.4, distractors=1.0),
    cluttered=dict(min_size=6.0, max_size=0.35, noise=(8, 20), texture=0.8, distractors=3.0),
)
_MAX_OBJECTS = 40  # per image, before placements that fail
_MAX_SIZE_FRAC = 0.55  # of the image side, the largest shape drawn (70 px at 128)
_MIN_VISIBLE = 0.45  # an annotated object keeps at least this share of its pixels visible
_MIN_IN_IMAGE = 0.6  # ... and at least this share inside the image
_MIN_PIXELS = 10  # ... and at least this many visible pixels
_PLACE_TRIES = 10
_MIN_CONTRAST = 60.0  # RGB distance between an object's colour and what lies beneath it
_SUPERSAMPLE = 4  # shapes are drawn at this factor and box-filtered down (anti-aliasing)
_MAX_DUPLICATE_SHIFT = 3  # px

_MANIFEST = 'shapes_manifest.json'
_GENERATOR = 'mmdet_isal.datasets.synthetic'
_VERSION = 1
_SPLIT_CODES = dict(train=0, val=1)
_JPEG_QUALITY = 95


def make_shapes_dataset(out_dir, seed=0, fmt='coco', num_train=2000, num_val=300,
                        image_size=128):
    """Write the synthetic shapes data set (see the module docstring for its design).

    Args:
        out_dir (str | os.PathLike): Folder to write; new, empty, or one this function wrote
            with the same settings (then only missing or changed files are rewritten).
        seed (int): Random seed, >= 0. Same seed, same files.
        fmt (str): ``'coco'``: ``annotations/instances_{train,val}.json`` and
            ``images/{split}_{nnnnnn}.png``. ``'voc'``: ``VOC2012/Annotations/*.xml``,
            ``VOC2012/JPEGImages/*.jpg`` and ``VOC2012/ImageSets/Main/{train,val}.txt``.
        num_train (int): Images in the train split (the active-learning pool), >= 1.
        num_val (int): Images in the val split, >= 1.
        image_size (int): Side of the square images in px, 32 to 1024.

    Returns:
        dict: ``out_dir``, ``format``, ``seed``, ``image_size``, ``status`` (``'written'``
        or ``'up-to-date'``) and per split (``splits[name]``): ``images``, ``objects``,
        ``empty_images``, ``max_objects``, ``class_counts`` (name -> count) and ``scenes``
        (scene -> image count).

    Raises:
        ValueError: An argument is out of range.
        FileExistsError: ``out_dir`` is a file, or a non-empty folder not written by this
            function with the same settings.
    """
    params = _check_params(seed, fmt, num_train, num_val, image_size)
    out_dir = os.fspath(out_dir)
    previous = _check_out_dir(out_dir, params)
    if previous is not None and previous.get('complete') and \
            _files_intact(out_dir, previous.get('files')):
        return dict(previous['summary'], out_dir=out_dir, status='up-to-date')

    os.makedirs(out_dir, exist_ok=True)
    # Written first and marked incomplete, so that an interrupted run can be resumed by
    # running the same command again, and is not taken for someone else's folder.
    _write_json(os.path.join(out_dir, _MANIFEST),
                dict(generator=_GENERATOR, version=_VERSION, params=params, complete=False))
    writer = _CocoWriter(out_dir) if fmt == 'coco' else _VocWriter(out_dir)
    counts = dict(train=num_train, val=num_val)
    summary = dict(format=fmt, seed=params['seed'], image_size=params['image_size'], splits={})
    for split in ('train', 'val'):
        renderer = _SplitRenderer(seed, split, image_size)
        records = []
        for index in range(counts[split]):
            image, objects, scene, source = renderer.render(index)
            record = dict(index=index, objects=objects, scene=scene)
            if source is not None:
                record['duplicate_of'] = source
            writer.add_image(split, record, image)
            records.append(record)
        summary['splits'][split] = _split_summary(records)
    # Annotation lists last, train last of all: a set whose instances_train.json or train.txt
    # exists is complete, even if a run was interrupted before writing the manifest.
    for split in ('val', 'train'):
        writer.finish_split(split)
    _write_json(os.path.join(out_dir, _MANIFEST),
                dict(generator=_GENERATOR, version=_VERSION, params=params, complete=True,
                     summary=summary, files=writer.hashes))
    return dict(summary, out_dir=out_dir, status='written')


def _check_params(seed, fmt, num_train, num_val, image_size):
    """Validate the arguments of make_shapes_dataset; return them as a JSON-able dict."""
    for name, value, low in (('seed', seed, 0), ('num_train', num_train, 1),
                             ('num_val', num_val, 1), ('image_size', image_size, 32)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f'{name} must be an integer, got {value!r}')
        if value < low:
            raise ValueError(f'{name} must be >= {low}, got {value}')
    if image_size > 1024:
        raise ValueError(f'image_size must be <= 1024, got {image_size}')
    if fmt not in ('coco', 'voc'):
        raise ValueError(f"fmt must be 'coco' or 'voc', got {fmt!r}")
    return dict(seed=int(seed), fmt=fmt, num_train=int(num_train), num_val=int(num_val),
                image_size=int(image_size))


def _check_out_dir(out_dir, params):
    """Return the manifest of a previous run with the same params, or None for a new folder.

    Raises FileExistsError for a folder this function may not write into.
    """
    if not os.path.exists(out_dir):
        return None
    if not os.path.isdir(out_dir):
        raise FileExistsError(f'{out_dir} exists and is not a folder; pass a new folder')
    if not os.listdir(out_dir):
        return None
    manifest_path = os.path.join(out_dir, _MANIFEST)
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get('generator') != _GENERATOR:
        raise FileExistsError(
            f'{out_dir} is not empty and was not written by this generator (no valid '
            f'{_MANIFEST}); pass a new or empty folder. Nothing was changed.')
    there = dict(manifest.get('params') or {}, version=manifest.get('version'))
    asked = dict(params, version=_VERSION)
    if there != asked:
        diff = ', '.join(f'{k} {there.get(k)!r} there, {v!r} asked'
                         for k, v in asked.items() if there.get(k) != v)
        raise FileExistsError(
            f'{out_dir} holds a shapes data set made with other settings ({diff}); pass '
            f'another folder, or delete that one yourself. Nothing was changed.')
    return manifest


def _files_intact(out_dir, hashes):
    """Whether every file listed in a complete manifest exists with its recorded SHA-256."""
    if not hashes:
        return False
    for rel_path, digest in hashes.items():
        try:
            with open(os.path.join(out_dir, rel_path), 'rb') as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    return False
        except OSError:
            return False
    return True


def _write_json(path, obj):
    """Write obj as JSON; return the bytes written."""
    data = json.dumps(obj, indent=1).encode() + b'\n'
    with open(path, 'wb') as f:
        f.write(data)
    return data


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
        scenes={s: sum(r['scene'] == s for r in records) for s in _SCENES})


# ----------------------------------------------------------------------------------------
# Writers


class _Writer:
    """Writes files under out_dir and records their SHA-256 (``hashes``, by relative path)."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.hashes = {}

    def _write(self, rel_path, data):
        with open(os.path.join(self.out_dir, rel_path), 'wb') as f:
            f.write(data)
        self.hashes[rel_path] = hashlib.sha256(data).hexdigest()


class _CocoWriter(_Writer):
    """COCO layout: annotations/instances_{split}.json and images/{split}_{nnnnnn}.png.

    Image and annotation ids start at 1 in each split.
    """

    def __init__(self, out_dir):
        super().__init__(out_dir)
        os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
        os.makedirs(os.path.join(out_dir, 'annotations'), exist_ok=True)
        self._images = dict(train=[], val=[])
        self._annotations = dict(train=[], val=[])

    def add_image(self, split, record, image):
        image_id = record['index'] + 1
        file_name = f'{split}_{image_id:06d}.png'
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format='PNG', compress_level=1)
        self._write(f'images/{file_name}', buf.getvalue())
        height, width = image.shape[:2]
        entry = dict(id=image_id, file_name=file_name, width=width, height=height,
                     scene=record['scene'])
        if 'duplicate_of' in record:
            entry['duplicate_of'] = record['duplicate_of'] + 1
        self._images[split].append(entry)
        annotations = self._annotations[split]
        for obj in record['objects']:
            x0, y0, x1, y1 = obj['box']
            annotations.append(
                dict(id=len(annotations) + 1, image_id=image_id,
                     category_id=obj['label'] + 1, bbox=[x0, y0, x1 - x0, y1 - y0],
                     area=obj['area'], iscrowd=0))

    def finish_split(self, split):
        """Write the split's annotation file."""
        coco = dict(
            info=dict(description=f'mmdet-isal synthetic shapes, {split} split',
                      version=str(_VERSION), url='', contributor='mmdet_isal', year=2024,
                      date_created=''),
            licenses=[],
            images=self._images.pop(split),
            annotations=self._annotations.pop(split),
            categories=[dict(id=i + 1, name=name, supercategory='shape')
                        for i, name in enumerate(SHAPES_CLASSES)])
        data = json.dumps(coco, separators=(',', ':')).encode() + b'\n'
        self._write(f'annotations/instances_{split}.json', data)


class _VocWriter(_Writer):
    """VOC layout under VOC2012/ (the folder name mmdet's VOCDataset takes the year from).

    Image ids are ``{split}_{nnnnnn}``. Boxes use VOC's 1-based inclusive pixel coordinates:
    a box covering pixel columns c0..c1 (0-based) is written xmin=c0+1, xmax=c1+1.
    """

    def __init__(self, out_dir):
        super().__init__(out_dir)
        for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
            os.makedirs(os.path.join(out_dir, 'VOC2012', sub), exist_ok=True)
        self._ids = dict(train=[], val=[])

    def add_image(self, split, record, image):
        image_id = f'{split}_{record["index"] + 1:06d}'
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format='JPEG', quality=_JPEG_QUALITY, subsampling=0)
        self._write(f'VOC2012/JPEGImages/{image_id}.jpg', buf.getvalue())
        height, width = image.shape[:2]
        root = ET.Element('annotation')
        _sub(root, 'folder', 'VOC2012')
        _sub(root, 'filename', f'{image_id}.jpg')
        _sub(root, 'scene', record['scene'])
        if 'duplicate_of' in record:
            _sub(root, 'duplicate_of', f'{split}_{record["duplicate_of"] + 1:06d}')
        size = _sub(root, 'size')
        _sub(size, 'width', width)
        _sub(size, 'height', height)
        _sub(size, 'depth', 3)
        _sub(root, 'segmented', 0)
        for obj in record['objects']:
            x0, y0, x1, y1 = obj['box']
            node = _sub(root, 'object')
            _sub(node, 'name', SHAPES_CLASSES[obj['label']])
            _sub(node, 'pose', 'Unspecified')
            _sub(node, 'truncated', int(x0 == 0 or y0 == 0 or x1 == width or y1 == height))
            _sub(node, 'difficult', 0)
            box = _sub(node, 'bndbox')
            _sub(box, 'xmin', x0 + 1)
            _sub(box, 'ymin', y0 + 1)
            _sub(box, 'xmax', x1)
            _sub(box, 'ymax', y1)
        ET.indent(root)
        self._write(f'VOC2012/Annotations/{image_id}.xml',
                    ET.tostring(root, encoding='utf-8', xml_declaration=False) + b'\n')
        self._ids[split].append(image_id)

    def finish_split(self, split):
        """Write the split's image list."""
        self._write(f'VOC2012/ImageSets/Main/{split}.txt',
                    ''.join(f'{i}\n' for i in self._ids.pop(split)).encode())


def _sub(parent, tag, text=None):
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = str(text)
    return node


# ----------------------------------------------------------------------------------------
# Rendering


class _SplitRenderer:
    """Renders image ``index`` of one split; a pure function of (seed, split, index, size)."""

    def __init__(self, seed, split, image_size):
        self.seed, self.split, self.size = seed, split, image_size
        self.shares = np.array(_SCENE_SHARES[split])
        coords = np.arange(image_size, dtype=np.float32) / image_size
        self.yy, self.xx = np.meshgrid(coords, coords, indexing='ij')

    def render(self, index):
        """Return (uint8 HxWx3 image, objects, scene, source index or None).

        Each object is a dict with ``label`` (index into SHAPES_CLASSES), ``box`` (x0, y0, x1,
        y1 in px, x1 and y1 exclusive) and ``area`` (visible pixels). A duplicate's source is
        the original image it copies (never itself a duplicate).
        """
        scene, rng = self._scene(index)
        if scene != 'duplicate':
            clean, owner, labels, noise, blur = _render_scene(scene, rng, self.size, self.xx,
                                                              self.yy)
            return _finish(clean, noise, blur, rng), _objects(owner, labels), scene, None
        source = int(rng.integers(index))
        source_scene, source_rng = self._scene(source)
        while source_scene == 'duplicate':
            source = int(source_rng.integers(source))
            source_scene, source_rng = self._scene(source)
        clean, owner, labels, noise, blur = _render_scene(source_scene, source_rng, self.size,
                                                          self.xx, self.yy)
        clean, owner = _shift(clean, owner, rng)
        clean = clean * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15)
        image = _finish(clean, noise * rng.uniform(0.7, 1.3), blur, rng)
        return image, _objects(owner, labels), scene, source

    def _scene(self, index):
        """The scene of image index and its generator, positioned after that draw."""
        rng = np.random.default_rng([self.seed, _SPLIT_CODES[self.split], index])
        scene = _SCENES[rng.choice(len(_SCENES), p=self.shares)]
        if scene == 'duplicate' and index == 0:
            scene = 'typical'
        return scene, rng


def _render_scene(scene, rng, size, xx, yy):
    """Render a scene before blur and noise.

    Returns (float32 HxWx3 image, int16 owner map: index of the object on top or -1, labels per
    object, noise sigma in grey levels, blur radius in px or 0).
    """
    style = _SCENE_STYLES[scene]
    if scene == 'empty':
        num = 0
    elif scene == 'sparse':
        num = 1 + rng.binomial(2, 0.35)
    elif scene == 'typical':
        num = 1 + rng.negative_binomial(1.5, 1.5 / (1.5 + 4.0))  # mean 5, long tail
    else:
        num = 12 + rng.negative_binomial(2.0, 2.0 / (2.0 + 7.0))  # mean 19
    num = min(int(num), _MAX_OBJECTS)
    high = style['max_size'] * _MAX_SIZE_FRAC * size
    sizes = (min(style['min_size'], high), high)
    texture = style['texture']
    distractors = rng.poisson(style['distractors'])
    image = _background(rng, size, xx, yy, texture)
    for _ in range(distractors):
        _draw_distractor(image, rng)
    owner = np.full((size, size), -1, dtype=np.int16)
    labels, visible, full = [], [], []
    mixture = rng.dirichlet(_CLASS_CONCENTRATION * _CLASS_SHARES)
    for _ in range(num):
        label = int(rng.choice(len(SHAPES_CLASSES), p=mixture))
        obj_size = math.exp(rng.uniform(math.log(sizes[0]), math.log(sizes[1])))
        _place(image, owner, labels, visible, full, label, obj_size, rng)
    blur = rng.uniform(0.4, 0.9) if rng.random() < 0.2 else 0.0
    return image, owner, labels, rng.uniform(*style['noise']), blur


def _background(rng, size, xx, yy, texture):
    """A float32 HxWx3 background: gradient, and by chance stripes and colour blobs."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = xx * math.cos(theta) + yy * math.sin(theta)
    ramp -= ramp.min()
    ramp /= max(float(ramp.max()), 1e-6)
    image = c0 + (c1 - c0) * ramp[..., None]
    if rng.random() < texture:
        freq, phi, phase = rng.uniform(2, 14), rng.uniform(0, math.pi), rng.uniform(0, 6.3)
        direction = rng.normal(size=3).astype(np.float32)
        direction *= rng.uniform(10, 45) / np.linalg.norm(direction)
        wave = np.sin((2 * math.pi * freq) * (xx * math.cos(phi) + yy * math.sin(phi)) + phase)
        image += wave[..., None] * direction
    if rng.random() < texture:
        cells = int(rng.choice([3, 4, 6, 8]))
        blobs = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        blobs = Image.fromarray(blobs).resize((size, size), Image.BILINEAR)
        weight = rng.uniform(0.2, 0.6)
        image = image * (1 - weight) + np.asarray(blobs, np.float32) * weight
    return np.clip(image, 0, 255, out=image)


def _draw_distractor(image, rng):
    """Draw an unannotated thin line or arc onto image (in place)."""
    size = image.shape[0]
    mask = Image.new('L', (size, size), 0)
    draw = ImageDraw.Draw(mask)
    x, y = rng.uniform(0, size, 2)
    if rng.random() < 0.5:
        length, angle = rng.uniform(0.1, 0.5) * size, rng.uniform(0, 2 * math.pi)
        end = (x + length * math.cos(angle), y + length * math.sin(angle))
        draw.line([(x, y), end], fill=255, width=int(rng.integers(1, 3)))
    else:
        r = rng.uniform(0.05, 0.25) * size
        start = rng.uniform(0, 360)
        draw.arc([x - r, y - r, x + r, y + r], start, start + rng.uniform(40, 200), fill=255,
                 width=1)
    alpha = np.asarray(mask, np.float32)[..., None] / 255
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    image += (colour - image) * alpha


def _shape_polygons(name, rng):
    """Polygons of one shape in units of its size, centred on 0: [(vertices Nx2, fill)].

    A fill of 0 cuts a hole (ring). Rotation is free for round or pointed shapes and limited
    for square, cross and diamond so that they stay apart (a square turned by 45 degrees is
    a diamond).
    """
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1) * 0.5
    if name == 'circle':
        polys, turn = [(circle, 255)], math.pi
    elif name == 'ellipse':
        polys, turn = [(circle * [1.0, rng.uniform(0.35, 0.6)], 255)], math.pi
    elif name == 'ring':
        polys, turn = [(circle, 255), (circle * rng.uniform(0.45, 0.65), 0)], math.pi
    elif name == 'square':
        polys, turn = [(np.array([[-.5, -.5], [.5, -.5], [.5, .5], [-.5, .5]]), 255)], 0.5
    elif name == 'diamond':
        half = 0.5 * rng.uniform(0.5, 0.7)
        polys, turn = [(np.array([[0, -.5], [half, 0], [0, .5], [-half, 0]]), 255)], 0.35
    elif name == 'triangle':
        a = np.array([0, 2, 4]) * math.pi / 3 - math.pi / 2
        polys, turn = [(np.stack([np.cos(a), np.sin(a)], 1) * 0.55, 255)], math.pi
    elif name == 'star':
        a = np.arange(10) * math.pi / 5 - math.pi / 2
        radius = np.where(np.arange(10) % 2 == 0, 0.5, 0.5 * rng.uniform(0.38, 0.5))
        polys, turn = [(np.stack([np.cos(a), np.sin(a)], 1) * radius[:, None], 255)], math.pi
    elif name == 'cross':
        w = rng.uniform(0.12, 0.2)
        cross = [[-w, -.5], [w, -.5], [w, -w], [.5, -w], [.5, w], [w, w], [w, .5], [-w, .5],
                 [-w, w], [-.5, w], [-.5, -w], [-w, -w]]
        polys, turn = [(np.array(cross), 255)], 0.35
    else:
        raise ValueError(f'unknown shape {name!r}')
    stretch = np.array([rng.uniform(0.9, 1.1), 1.0])
    angle = rng.uniform(-turn, turn)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return [((v * stretch) @ rot.T, fill) for v, fill in polys]


def _rasterise(polys, obj_size, rng):
    """Anti-aliased alpha (float32 hxw in [0, 1]) of the polygons scaled to obj_size px."""
    offset = rng.uniform(0, 1, 2)  # sub-pixel position
    scaled = [(v * obj_size + offset, fill) for v, fill in polys]
    low = np.floor(np.min([v.min(0) for v, _ in scaled], 0)) - 1
    high = np.ceil(np.max([v.max(0) for v, _ in scaled], 0)) + 1
    w, h = (high - low).astype(int)
    ss = _SUPERSAMPLE
    canvas = Image.new('L', (int(w) * ss, int(h) * ss), 0)
    draw = ImageDraw.Draw(canvas)
    for v, fill in scaled:
        draw.polygon([tuple(p) for p in ((v - low) * ss).tolist()], fill=fill)
    return np.asarray(canvas.reduce(ss), np.float32) / 255


def _place(image, owner, labels, visible, full, label, obj_size, rng):
    """Try to draw one object onto image (in place), keeping every object recognisable.

    Updates owner (index of the object on top at each pixel), labels, visible and full (pixel
    counts per object). Returns whether the object was placed.
    """
    size = image.shape[0]
    alpha = _rasterise(_shape_polygons(SHAPES_CLASSES[label], rng), obj_size, rng)
    solid = alpha >= 0.5
    total = int(solid.sum())
    h, w = alpha.shape
    visible_arr = np.asarray(visible, np.int64)
    need = _MIN_VISIBLE * np.asarray(full, np.float64)
    for _ in range(_PLACE_TRIES):
        # Up to a quarter of the patch may lie outside the image (truncated objects).
        x = int(rng.integers(-(w // 4), size - w + w // 4 + 1))
        y = int(rng.integers(-(h // 4), size - h + h // 4 + 1))
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
        if x1 <= x0 or y1 <= y0:
            continue
        sub = solid[y0 - y:y1 - y, x0 - x:x1 - x]
        inside = int(sub.sum())
        if inside < max(_MIN_IN_IMAGE * total, _MIN_PIXELS):
            continue
        under = owner[y0:y1, x0:x1][sub]
        covered = np.bincount(under[under >= 0], minlength=len(labels))
        if np.any(visible_arr - covered < need):
            continue
        break
    else:
        return False
    region = image[y0:y1, x0:x1]
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    beneath = region[sub].mean(0)
    colour = _contrasting_colour(beneath, rng)
    if rng.random() < 0.3:
        # A gradient fill: colour still says nothing about the class.
        second = np.clip(colour + rng.normal(0, 50, 3), 0, 255)
        phi = rng.uniform(0, 2 * math.pi)
        gy, gx = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float32)
        ramp = (gx * math.cos(phi) + gy * math.sin(phi)) / max(w, h) + 0.5
        fill = colour + (second - colour) * np.clip(ramp, 0, 1)[..., None]
    else:
        fill = colour
    region += (fill - region) * a
    for j, n in enumerate(covered):
        visible[j] -= int(n)
    owner[y0:y1, x0:x1][sub] = len(labels)
    labels.append(label)
    visible.append(inside)
    full.append(total)
    return True


def _contrasting_colour(beneath, rng):
    """A uniform random RGB colour at least _MIN_CONTRAST from beneath (best of 8 tries)."""
    best, best_dist = None, -1.0
    for _ in range(8):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        dist = float(np.linalg.norm(colour - beneath))
        if dist >= _MIN_CONTRAST:
            return colour
        if dist > best_dist:
            best, best_dist = colour, dist
    return best


def _shift(image, owner, rng):
    """Shift image and owner map by up to _MAX_DUPLICATE_SHIFT px (edges repeated)."""
    m = _MAX_DUPLICATE_SHIFT
    dy, dx = rng.integers(-m, m + 1, 2)
    size = image.shape[0]
    image = np.pad(image, ((m, m), (m, m), (0, 0)), mode='edge')
    owner = np.pad(owner, m, mode='constant', constant_values=-1)
    ys, xs = slice(m - dy, m - dy + size), slice(m - dx, m - dx + size)
    return image[ys, xs], owner[ys, xs]


def _finish(image, noise, blur, rng):
    """Blur (radius px, 0 for none), add Gaussian noise (sigma grey levels), quantise."""
    out = np.clip(image, 0, 255).astype(np.uint8)
    if blur > 0:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(blur)))
    noisy = out + rng.standard_normal(out.shape, dtype=np.float32) * np.float32(noise)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _objects(owner, labels):
    """Boxes around each object's visible pixels in owner; objects left with fewer than
    _MIN_PIXELS visible pixels (shifted out of a duplicate) are dropped."""
    size = owner.shape[0]
    ys, xs = np.nonzero(owner >= 0)
    ids = owner[ys, xs].astype(np.int64)
    order = np.argsort(ids, kind='stable')
    ids, ys, xs = ids[order], ys[order], xs[order]
    counts = np.bincount(ids, minlength=len(labels))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    objects = []
    for i, label in enumerate(labels):
        if counts[i] < _MIN_PIXELS:
            continue
        seg = slice(starts[i], starts[i] + counts[i])
        x0, x1 = int(xs[seg].min()), int(xs[seg].max()) + 1
        y0, y1 = int(ys[seg].min()), int(ys[seg].max()) + 1
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        objects.append(dict(label=label, box=(x0, y0, x1, y1), area=int(counts[i])))
    return objects
