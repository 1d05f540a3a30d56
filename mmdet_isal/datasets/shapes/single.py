"""Single-object scenes for image classification: one shape per image, its class the label, drawn
with the detection set's renderer (backgrounds, distractor strokes, anti-aliased polygons,
contrasting colours, noise, blur).

Two class sets (:data:`CLASS_SETS`):

* ``shapes``: the detection set's eight classes with its long-tailed shares (``CLASS_SHARES``,
  circle 16 times as frequent as star) and its scenes, less ``empty`` (an image holds one
  object): ``sparse`` (a large object on a smooth background, little noise), ``typical``,
  ``cluttered`` (a smaller object, striped and blotchy background, more distractors, strong
  noise) and, in the train split only, ``duplicate`` (an earlier train image re-rendered
  shifted by up to 3 px with new brightness and noise: redundant to label). Objects are 30 to
  85 % of the side, anywhere in the image. 32 px by default: the issue's classification set.
* ``other_shapes``: ten shapes that are never detection classes
  (:data:`~.other_shapes.OTHER_SHAPES_CLASSES`), balanced, the object centred (within an
  eighth of the side), 35 to 85 % of the side, 64 px by default: the set a backbone is
  pretrained on for the detectors.

Image ``index`` of a split is a pure function of ``(class set, seed, split, index, image
size)``, rendered with ``numpy.random.default_rng([seed, set code, split code, index])``: the
class sets, the splits and the detection set (whose seeds have three numbers) draw from
disjoint streams.
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from .design import CLASS_SHARES, SHAPES_CLASSES, SPLIT_CODES
from .other_shapes import OTHER_SHAPES_CLASSES, other_shape_polygons
from .render import (_background, _draw_distractor, _fill, _finish, _rasterise,
                     _shape_polygons, _shift)

SINGLE_SCENES = ('sparse', 'typical', 'cluttered', 'duplicate')


@dataclass(frozen=True)
class SceneStyle:
    """How a scene looks: object size ``size`` (a range of fractions of the image side, drawn
    log-uniform), noise sigma range in grey levels, chance of each background texture, mean
    number of distractor strokes."""
    size: Tuple[float, float]
    noise: Tuple[float, float]
    texture: float
    distractors: float


@dataclass(frozen=True)
class ClassSet:
    """A class set of single-object scenes.

    Args:
        name: ``'shapes'`` or ``'other_shapes'``.
        code: the set's number in the seed stream.
        classes: class names; a label is an index into them.
        shares: expected share of each class (sums to 1).
        polygons: ``polygons(name, rng)``, a shape's polygons in units of its size.
        image_size: the default image side in px.
        scene_shares: per split, the share of each of :data:`SINGLE_SCENES`.
        styles: per scene (not ``duplicate``), its :class:`SceneStyle`.
        centred: the object's centre lies within an eighth of the side of the image centre;
            otherwise the object goes anywhere it fits.
    """
    name: str
    code: int
    classes: Tuple[str, ...]
    shares: np.ndarray
    polygons: Callable
    image_size: int
    scene_shares: Dict[str, Tuple[float, ...]]
    styles: Dict[str, SceneStyle]
    centred: bool


# The detection set's scene shares without ``empty`` (its share goes to ``typical``); the held-out
# splits share one distribution, without duplicates.
_HELD_OUT = (0.20, 0.68, 0.12, 0.0)
CLASS_SETS = dict(
    shapes=ClassSet(
        name='shapes', code=1, classes=SHAPES_CLASSES, shares=CLASS_SHARES,
        polygons=_shape_polygons, image_size=32,
        scene_shares=dict(train=(0.20, 0.58, 0.12, 0.10), val=_HELD_OUT, test=_HELD_OUT),
        styles=dict(
            sparse=SceneStyle(size=(0.5, 0.85), noise=(0, 6), texture=0.1, distractors=0.0),
            typical=SceneStyle(size=(0.35, 0.8), noise=(2, 14), texture=0.4, distractors=1.0),
            cluttered=SceneStyle(size=(0.3, 0.6), noise=(8, 20), texture=0.8,
                                 distractors=3.0)),
        centred=False),
    other_shapes=ClassSet(
        name='other_shapes', code=2, classes=OTHER_SHAPES_CLASSES,
        shares=np.full(len(OTHER_SHAPES_CLASSES), 1.0 / len(OTHER_SHAPES_CLASSES)),
        polygons=other_shape_polygons, image_size=64,
        scene_shares={split: (0.0, 1.0, 0.0, 0.0) for split in SPLIT_CODES},
        styles=dict(typical=SceneStyle(size=(0.35, 0.85), noise=(0, 14), texture=0.5,
                                       distractors=1.5)),
        centred=True),
)


class SingleObjectRenderer:
    """Renders image ``index`` of one split of a class set: a pure function of (class set,
    seed, split, index, image size).

    Args:
        class_set: a :class:`ClassSet` (or its name in :data:`CLASS_SETS`).
        seed: the data set's seed, >= 0.
        split: ``'train'``, ``'val'`` or ``'test'``.
        image_size: the image side in px.
    """

    def __init__(self, class_set, seed, split, image_size):
        self.cs = CLASS_SETS[class_set] if isinstance(class_set, str) else class_set
        self.seed, self.split, self.size = seed, split, image_size
        self.scene_shares = np.array(self.cs.scene_shares[split])
        coords = np.arange(image_size, dtype=np.float32) / image_size
        self.yy, self.xx = np.meshgrid(coords, coords, indexing='ij')

    def render(self, index):
        """Return (uint8 HxWx3 image, label, scene, source index or None): a duplicate's source
        is the earlier train image it copies (never itself a duplicate)."""
        scene, rng = self._scene(index)
        if scene != 'duplicate':
            clean, label, noise, blur = self._draw(scene, rng)
            return _finish(clean, noise, blur, rng), label, scene, None
        source = int(rng.integers(index))
        source_scene, source_rng = self._scene(source)
        while source_scene == 'duplicate':
            source = int(source_rng.integers(source))
            source_scene, source_rng = self._scene(source)
        clean, label, noise, blur = self._draw(source_scene, source_rng)
        owner = np.full((self.size, self.size), -1, dtype=np.int16)  # _shift moves one too
        clean, _ = _shift(clean, owner, rng)
        clean = clean * rng.uniform(0.85, 1.15) + rng.uniform(-15, 15)
        return _finish(clean, noise * rng.uniform(0.7, 1.3), blur, rng), label, scene, source

    def _scene(self, index):
        """The scene of image index and its generator, positioned after that draw."""
        rng = np.random.default_rng([self.seed, self.cs.code, SPLIT_CODES[self.split], index])
        scene = SINGLE_SCENES[rng.choice(len(SINGLE_SCENES), p=self.scene_shares)]
        if scene == 'duplicate' and index == 0:
            scene = 'typical'
        return scene, rng

    def _draw(self, scene, rng):
        """One scene before blur and noise: (float32 HxWx3 image, label, noise sigma, blur)."""
        style, size = self.cs.styles[scene], self.size
        image = _background(rng, size, self.xx, self.yy, style.texture)
        for _ in range(rng.poisson(style.distractors)):
            _draw_distractor(image, rng)
        label = int(rng.choice(len(self.cs.classes), p=self.cs.shares))
        low, high = style.size
        obj_size = math.exp(rng.uniform(math.log(low * size), math.log(high * size)))
        alpha = _rasterise(self.cs.polygons(self.cs.classes[label], rng), obj_size, rng)
        x, y = self._position(alpha.shape, rng)
        _paint(image, alpha, x, y, rng)
        blur = rng.uniform(0.4, 0.9) if rng.random() < 0.2 else 0.0
        return image, label, rng.uniform(*style.noise), blur

    def _position(self, shape, rng):
        """Top-left corner (x, y) of an h x w patch: centred within an eighth of the side, or
        anywhere it fits (a patch larger than the image overhangs it on both sides alike)."""
        h, w = shape
        size = self.size
        if self.cs.centred:
            jitter = size // 8
            x = (size - w) // 2 + int(rng.integers(-jitter, jitter + 1))
            y = (size - h) // 2 + int(rng.integers(-jitter, jitter + 1))
            return (int(np.clip(x, min(0, size - w), max(0, size - w))),
                    int(np.clip(y, min(0, size - h), max(0, size - h))))
        return (int(rng.integers(min(0, size - w), max(0, size - w) + 1)),
                int(rng.integers(min(0, size - h), max(0, size - h) + 1)))


def _paint(image, alpha, x, y, rng):
    """Paint the patch ``alpha`` at (x, y) onto image (in place), cropped to the image, in a
    colour that contrasts with what lies beneath it (a gradient fill on 30 % of objects, as in
    the detection set)."""
    size = image.shape[0]
    h, w = alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, size), min(y + h, size)
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    region = image[y0:y1, x0:x1]
    solid = a[..., 0] >= 0.5
    beneath = region[solid].mean(0) if solid.any() else region.reshape(-1, 3).mean(0)
    _fill(region, a, beneath, max(w, h), rng)
