"""Ten shapes that are never classes of the detection set: the ``other_shapes`` class set, on
which a backbone is pretrained for the detectors (as the paper's detectors start from ImageNet
weights, learnt on another task).

Polygons are in units of the shape's size, centred on 0, as ``render._shape_polygons`` gives
them; every shape turns freely (none of them is another one turned) and is stretched by up to
15 % along one axis.
"""
import math

import numpy as np

OTHER_SHAPES_CLASSES = ('pentagon', 'hexagon', 'heart', 'arrow', 'crescent', 'trapezoid',
                        'semicircle', 'chevron', 'lshape', 'hourglass')


def _regular(n):
    """A regular n-gon of circumradius 0.5, a vertex at the top."""
    a = np.arange(n) * 2 * math.pi / n - math.pi / 2
    return np.stack([np.cos(a), np.sin(a)], 1) * 0.5


def other_shape_polygons(name, rng):
    """Polygons of one of :data:`OTHER_SHAPES_CLASSES`: [(vertices Nx2, fill 255 or 0)]; a fill
    of 0 cuts a hole (the crescent's bite)."""
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1) * 0.5
    if name == 'pentagon':
        polys = [(_regular(5), 255)]
    elif name == 'hexagon':
        polys = [(_regular(6), 255)]
    elif name == 'heart':
        s = np.linspace(0, 2 * math.pi, 60, endpoint=False)
        x = 16 * np.sin(s) ** 3
        y = -(13 * np.cos(s) - 5 * np.cos(2 * s) - 2 * np.cos(3 * s) - np.cos(4 * s))
        polys = [(np.stack([x, y], 1) / 34.0, 255)]
    elif name == 'arrow':
        w = rng.uniform(0.1, 0.18)
        polys = [(np.array([[-.5, -w], [.05, -w], [.05, -.35], [.5, 0], [.05, .35], [.05, w],
                            [-.5, w]]), 255)]
    elif name == 'crescent':
        polys = [(circle, 255), (circle * 0.85 + [rng.uniform(0.15, 0.25), 0], 0)]
    elif name == 'trapezoid':
        top = rng.uniform(0.15, 0.3)
        polys = [(np.array([[-top, -.35], [top, -.35], [.5, .35], [-.5, .35]]), 255)]
    elif name == 'semicircle':
        s = np.linspace(0, math.pi, 30)
        polys = [(np.stack([np.cos(s), -np.sin(s)], 1) * 0.5 + [0, 0.2], 255)]
    elif name == 'chevron':
        w = rng.uniform(0.15, 0.25)
        polys = [(np.array([[-.5, -.4], [-.5 + w, -.4], [0, .1], [.5 - w, -.4], [.5, -.4],
                            [0, .45]]), 255)]
    elif name == 'lshape':
        w = rng.uniform(0.15, 0.25)
        polys = [(np.array([[-.5, -.5], [-.5 + 2 * w, -.5], [-.5 + 2 * w, .5 - 2 * w],
                            [.5, .5 - 2 * w], [.5, .5], [-.5, .5]]), 255)]
    elif name == 'hourglass':
        polys = [(np.array([[-.4, -.5], [.4, -.5], [0, 0], [.4, .5], [-.4, .5], [0, 0]]), 255)]
    else:
        raise ValueError(f'unknown shape {name!r}; the other shapes are '
                         f'{", ".join(OTHER_SHAPES_CLASSES)}')
    angle = rng.uniform(-math.pi, math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    stretch = np.array([rng.uniform(0.85, 1.15), 1.0])
    return [((v * stretch) @ rot.T, fill) for v, fill in polys]
