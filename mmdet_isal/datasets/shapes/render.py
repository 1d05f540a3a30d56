"""Rendering of the synthetic shapes images: image ``index`` of a split, its boxes and scene,
as a pure function of ``(seed, split, index, image_size)`` (the design is in ``design``).

Each image is rendered with its own ``numpy.random.Generator``, seeded with
``[seed, SPLIT_CODES[split], index]``; the same seed gives the same pixels for the same numpy
and Pillow versions.
"""
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .design import (CLASS_CONCENTRATION, CLASS_SHARES, MAX_DUPLICATE_SHIFT, MAX_OBJECTS,
                     MAX_SIZE_FRAC, MIN_CONTRAST, MIN_IN_IMAGE, MIN_PIXELS, MIN_VISIBLE,
                     PLACE_TRIES, SCENE_SHARES, SCENE_STYLES, SCENES, SHAPES_CLASSES,
                     SPLIT_CODES, SUPERSAMPLE)


class SplitRenderer:
    """Renders image ``index`` of one split; a pure function of (seed, split, index, size)."""

    def __init__(self, seed, split, image_size):
        self.seed, self.split, self.size = seed, split, image_size
        self.shares = np.array(SCENE_SHARES[split])
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
        rng = np.random.default_rng([self.seed, SPLIT_CODES[self.split], index])
        scene = SCENES[rng.choice(len(SCENES), p=self.shares)]
        if scene == 'duplicate' and index == 0:
            scene = 'typical'
        return scene, rng


def _render_scene(scene, rng, size, xx, yy):
    """Render a scene before blur and noise.

    Returns (float32 HxWx3 image, int16 owner map: index of the object on top or -1, labels per
    object, noise sigma in grey levels, blur radius in px or 0).
    """
    style = SCENE_STYLES[scene]
    if scene == 'empty':
        num = 0
    elif scene == 'sparse':
        num = 1 + rng.binomial(2, 0.35)
    elif scene == 'typical':
        num = 1 + rng.negative_binomial(1.5, 1.5 / (1.5 + 4.0))  # mean 5, long tail
    else:
        num = 12 + rng.negative_binomial(2.0, 2.0 / (2.0 + 7.0))  # mean 19
    num = min(int(num), MAX_OBJECTS)
    high = style['max_size'] * MAX_SIZE_FRAC * size
    sizes = (min(style['min_size'], high), high)
    texture = style['texture']
    distractors = rng.poisson(style['distractors'])
    image = _background(rng, size, xx, yy, texture)
    for _ in range(distractors):
        _draw_distractor(image, rng)
    owner = np.full((size, size), -1, dtype=np.int16)
    labels, visible, full = [], [], []
    mixture = rng.dirichlet(CLASS_CONCENTRATION * CLASS_SHARES)
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
    ss = SUPERSAMPLE
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
    need = MIN_VISIBLE * np.asarray(full, np.float64)
    for _ in range(PLACE_TRIES):
        # Up to a quarter of the patch may lie outside the image (truncated objects).
        x = int(rng.integers(-(w // 4), size - w + w // 4 + 1))
        y = int(rng.integers(-(h // 4), size - h + h // 4 + 1))
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
        if x1 <= x0 or y1 <= y0:
            continue
        sub = solid[y0 - y:y1 - y, x0 - x:x1 - x]
        inside = int(sub.sum())
        if inside < max(MIN_IN_IMAGE * total, MIN_PIXELS):
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
    _fill(region, a, beneath, max(w, h), rng)
    for j, n in enumerate(covered):
        visible[j] -= int(n)
    owner[y0:y1, x0:x1][sub] = len(labels)
    labels.append(label)
    visible.append(inside)
    full.append(total)
    return True


def _fill(region, a, beneath, extent, rng):
    """Paint ``region`` (in place) with coverage ``a``: a colour that contrasts with
    ``beneath``, as a gradient over ``extent`` pixels on 30 % of objects (colour still says
    nothing about the class)."""
    colour = _contrasting_colour(beneath, rng)
    if rng.random() < 0.3:
        second = np.clip(colour + rng.normal(0, 50, 3), 0, 255)
        phi = rng.uniform(0, 2 * math.pi)
        gy, gx = np.mgrid[0:region.shape[0], 0:region.shape[1]].astype(np.float32)
        ramp = (gx * math.cos(phi) + gy * math.sin(phi)) / extent + 0.5
        fill = colour + (second - colour) * np.clip(ramp, 0, 1)[..., None]
    else:
        fill = colour
    region += (fill - region) * a


def _contrasting_colour(beneath, rng):
    """A uniform random RGB colour at least MIN_CONTRAST from beneath (best of 8 tries)."""
    best, best_dist = None, -1.0
    for _ in range(8):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        dist = float(np.linalg.norm(colour - beneath))
        if dist >= MIN_CONTRAST:
            return colour
        if dist > best_dist:
            best, best_dist = colour, dist
    return best


def _shift(image, owner, rng):
    """Shift image and owner map by up to MAX_DUPLICATE_SHIFT px (edges repeated)."""
    m = MAX_DUPLICATE_SHIFT
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
    MIN_PIXELS visible pixels (shifted out of a duplicate) are dropped."""
    size = owner.shape[0]
    ys, xs = np.nonzero(owner >= 0)
    ids = owner[ys, xs].astype(np.int64)
    order = np.argsort(ids, kind='stable')
    ids, ys, xs = ids[order], ys[order], xs[order]
    counts = np.bincount(ids, minlength=len(labels))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    objects = []
    for i, label in enumerate(labels):
        if counts[i] < MIN_PIXELS:
            continue
        seg = slice(starts[i], starts[i] + counts[i])
        x0, x1 = int(xs[seg].min()), int(xs[seg].max()) + 1
        y0, y1 = int(ys[seg].min()), int(ys[seg].max()) + 1
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        objects.append(dict(label=label, box=(x0, y0, x1, y1), area=int(counts[i])))
    return objects
