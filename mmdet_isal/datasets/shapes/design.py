"""What the synthetic shapes data set holds: classes, their shares, scenes, sizes and the rules
of placement, as numbers (``render`` draws them, the writers and the summary name them).

Design (what makes active learning on it non-trivial):

* Classes: ``SHAPES_CLASSES``, eight shapes. Their expected shares of all objects are
  long-tailed, about 16:1 from the most frequent (circle) to the rarest (star), and the rare
  classes are the confusable ones: ring looks like circle, diamond like a rotated square, star
  like triangle. A selector that finds the rare classes gains AP that random sampling does not.
* Class mixture varies between images: each image draws its own class distribution from a
  Dirichlet centred on the global shares (concentration ``CLASS_CONCENTRATION``), so a few
  images are rich in rare classes while most hold none.
* Scenes, drawn per image (shares in ``SCENE_SHARES``):
  ``empty`` (no objects, often with distractor strokes: hard negatives); ``sparse`` (1-3 large
  objects on a smooth background with little noise: easy, little to learn); ``typical`` (a
  heavy-tailed count, mean about 5, sizes 6 px up to 55% of the image side); ``cluttered``
  (12 or more small objects, striped and blotchy background, strong noise: hard); and in the
  train split only, ``duplicate`` (an earlier train image re-rendered shifted by up to 3 px with
  new brightness and noise: redundant to label). The held-out splits, ``val`` and ``test``,
  share one distribution: the train split's without duplicates (their share goes to
  ``typical``). Each COCO image record carries its ``scene`` (and ``duplicate_of``, the source
  image id) for analysis; detectors ignore these keys.
* Sizes: log-uniform, so small objects are common: from 6 px to 55% of the image side (70 px
  at 128), per ``SCENE_STYLES``. Size is a shape's side or diameter before rotation, so a
  turned square's box can be 1.4 times larger; boxes run from about 4 to 95 px at 128.
* Occlusion: objects are drawn in sequence and may overlap; a placement that would hide more
  than ``1 - MIN_VISIBLE`` of an earlier object, or leave less than ``MIN_IN_IMAGE`` of the
  new one inside the image, is retried elsewhere and dropped after ``PLACE_TRIES`` tries, so
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
"""
import numpy as np

# Category ids are 1 + the index in this tuple (COCO); VOC uses the names.
SHAPES_CLASSES = ('circle', 'square', 'triangle', 'cross', 'ring', 'star', 'diamond',
                  'ellipse')

# Frequency rank of each class (0 = most frequent); the expected share of rank r is
# proportional to TAIL_RATIO ** (-r / 7).
FREQUENCY_RANK = dict(circle=0, square=1, triangle=2, ellipse=3, cross=4, diamond=5, ring=6,
                      star=7)
TAIL_RATIO = 16.0
CLASS_SHARES = np.array([TAIL_RATIO**(-FREQUENCY_RANK[c] / 7) for c in SHAPES_CLASSES])
CLASS_SHARES /= CLASS_SHARES.sum()
# Dirichlet concentration of an image's own class mixture around CLASS_SHARES; lower values
# make images more specialised (a few rich in rare classes, most with none).
CLASS_CONCENTRATION = 3.0

SCENES = ('empty', 'sparse', 'typical', 'cluttered', 'duplicate')
# The held-out splits (val, test) share one distribution, so that a score on test estimates
# the same quantity as one on val; duplicates are a property of the pool (redundant to label).
_HELD_OUT_SHARES = (0.06, 0.20, 0.62, 0.12, 0.0)
SCENE_SHARES = dict(
    train=(0.06, 0.20, 0.52, 0.12, 0.10),
    val=_HELD_OUT_SHARES,
    test=_HELD_OUT_SHARES,
)
# Each split draws from its own seed stream, numpy.random.default_rng([seed, code, index]):
# adding a split (test came after train and val) changes no image of the others.
SPLIT_CODES = dict(train=0, val=1, test=2)

# How each scene looks: object sizes from min_size px to max_size (a share of the largest,
# MAX_SIZE_FRAC of the image side), drawn log-uniform; noise sigma range in grey levels;
# chance of each background texture (stripes, blobs); mean number of distractor strokes.
SCENE_STYLES = dict(
    empty=dict(min_size=6.0, max_size=1.0, noise=(2, 16), texture=0.6, distractors=4.0),
    sparse=dict(min_size=20.0, max_size=1.0, noise=(0, 6), texture=0.1, distractors=0.0),
    typical=dict(min_size=6.0, max_size=1.0, noise=(2, 14), texture=0.4, distractors=1.0),
    cluttered=dict(min_size=6.0, max_size=0.35, noise=(8, 20), texture=0.8, distractors=3.0),
)
MAX_OBJECTS = 40  # per image, before placements that fail
MAX_SIZE_FRAC = 0.55  # of the image side, the largest shape drawn (70 px at 128)
MIN_VISIBLE = 0.45  # an annotated object keeps at least this share of its pixels visible
MIN_IN_IMAGE = 0.6  # ... and at least this share inside the image
MIN_PIXELS = 10  # ... and at least this many visible pixels
PLACE_TRIES = 10
MIN_CONTRAST = 60.0  # RGB distance between an object's colour and what lies beneath it
SUPERSAMPLE = 4  # shapes are drawn at this factor and box-filtered down (anti-aliasing)
MAX_DUPLICATE_SHIFT = 3  # px
