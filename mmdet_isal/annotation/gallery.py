"""A gallery of what a selection picked: the first N picks in rank order, one tile each, drawn with
mmdet's ``DetLocalVisualizer``.

Each tile is the image as mmdet loads it (EXIF orientation applied), scaled to fit a square of
``tile_size`` pixels, with its rank and score written at its top left, its pseudo boxes (the
detector's detections the strategy saw) in :data:`PSEUDO_COLOUR` and, when they are known (in
simulation), its true boxes in :data:`TRUE_COLOUR`. Tiles are laid out ``columns`` to a row
with a margin of :data:`BACKGROUND` between them, under a legend band (what the selection is,
what each colour means); ``gallery.json`` beside the image says where each tile is and which
boxes it shows.
"""
import io
import itertools
import math
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import mmcv
import numpy as np
from mmdet.visualization import DetLocalVisualizer
from PIL import Image

from mmdet_isal.utils.fileio import atomic_write, atomic_write_json

from .exports import kept_detections

PSEUDO_COLOUR = (255, 64, 0)   # orange-red: what the detector saw
TRUE_COLOUR = (0, 200, 0)      # green: what an annotator drew (simulation only)
BACKGROUND = (255, 255, 255)
MARGIN = 4
LEGEND_HEIGHT = 44
_visualizer_ids = itertools.count()


@dataclass
class Tile:
    """One pick to draw.

    Args:
        image_id: its pool id.
        path: its image file.
        rank: 1 = the strategy's first choice.
        score: the strategy's score, or ``None``.
        pseudo_boxes: [K, 4] x1 y1 x2 y2 in pixels of the image as loaded.
        true_boxes: [M, 4] likewise, or ``None`` when unknown (manual mode).
    """
    image_id: Any
    path: str
    rank: int
    score: Optional[float]
    pseudo_boxes: np.ndarray
    true_boxes: Optional[np.ndarray] = None


def _caption(tile: Tile) -> str:
    score = 'no score' if tile.score is None else f'score {tile.score:.4g}'
    return f'#{tile.rank}  {score}'


def draw_tile(visualizer: DetLocalVisualizer, tile: Tile, tile_size: int):
    """The tile's image (RGB, uint8, long side ``tile_size``) and its scale factor."""
    image = mmcv.imread(tile.path, channel_order='rgb')
    if image is None:
        raise FileNotFoundError(f'gallery: {tile.path} (image id {tile.image_id!r}) cannot be '
                                f'read')
    scale = tile_size / max(image.shape[:2])
    image = mmcv.imrescale(image, scale)
    visualizer.set_image(image)
    layers = ((tile.true_boxes, TRUE_COLOUR, 2), (tile.pseudo_boxes, PSEUDO_COLOUR, 2))
    height, width_px = image.shape[:2]
    for boxes, colour, width in layers:
        if boxes is not None and len(boxes):
            # inside the drawn image: a box's far edge may lie on the border (x2 == width)
            drawn = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale
            drawn[:, 0::2] = drawn[:, 0::2].clip(0, width_px - 1)
            drawn[:, 1::2] = drawn[:, 1::2].clip(0, height - 1)
            visualizer.draw_bboxes(drawn, edge_colors=[colour] * len(drawn), line_widths=width,
                                   alpha=1.0)
    visualizer.draw_texts(_caption(tile), np.array([3, 3]), colors='w',
                          font_sizes=max(8, tile_size // 24),
                          bboxes=[dict(facecolor='black', alpha=0.7, pad=1, edgecolor='none')])
    return visualizer.get_image(), scale


def draw_legend(visualizer: DetLocalVisualizer, width: int, title: str,
                pseudo: str, truth: Optional[str]) -> np.ndarray:
    """A band of :data:`LEGEND_HEIGHT` pixels: ``title`` in black, then what the pseudo boxes
    are in their colour at the left and, if given, what the true boxes are in theirs at the
    right."""
    band = np.empty((LEGEND_HEIGHT, width, 3), np.uint8)
    band[...] = BACKGROUND
    visualizer.set_image(band)
    visualizer.draw_texts(title, np.array([MARGIN, 4]), colors='k', font_sizes=12)
    visualizer.draw_texts(pseudo, np.array([MARGIN, 24]), colors=[PSEUDO_COLOUR],
                          font_sizes=12)
    if truth:
        visualizer.draw_texts(truth, np.array([width - MARGIN, 24]), colors=[TRUE_COLOUR],
                              font_sizes=12, horizontal_alignments='right')
    return visualizer.get_image()


def draw_gallery(tiles: Sequence[Tile], out_path: str, columns: int = 4,
                 tile_size: int = 256, legend: Optional[Sequence[Optional[str]]] = None
                 ) -> Dict[str, Any]:
    """Draw ``tiles`` into one JPEG at ``out_path`` and describe it in ``gallery.json`` beside
    it.

    Args:
        tiles: the picks, in rank order.
        out_path: the JPEG to write (atomically).
        columns: tiles per row.
        tile_size: the side of a tile's square, in pixels.
        legend: ``(title, what the pseudo boxes are, what the true boxes are or None)``,
            written in a band above the tiles (:func:`draw_legend`); ``None``: no band.

    Returns:
        the layout written to ``gallery.json``: ``columns``, ``tile_size``, ``margin``, and per
        tile its ``image_id``, ``rank``, ``score``, ``path``, top-left corner ``x``, ``y`` in
        the gallery, ``scale`` (gallery pixels per image pixel), and the ``pseudo_boxes`` and
        ``true_boxes`` drawn (image pixels).
    """
    if not tiles:
        raise ValueError('draw_gallery: no tiles to draw')
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    step = tile_size + MARGIN
    top = LEGEND_HEIGHT if legend else 0
    canvas = np.empty((top + MARGIN + rows * step, MARGIN + columns * step, 3), np.uint8)
    canvas[...] = BACKGROUND
    visualizer = DetLocalVisualizer(name=f'mmdet_isal_gallery_{next(_visualizer_ids)}')
    if legend:
        canvas[:top] = draw_legend(visualizer, canvas.shape[1], *legend)
    layout = []
    for n, tile in enumerate(tiles):
        drawn, scale = draw_tile(visualizer, tile, tile_size)
        x, y = MARGIN + (n % columns) * step, top + MARGIN + (n // columns) * step
        canvas[y:y + drawn.shape[0], x:x + drawn.shape[1]] = drawn
        layout.append(dict(
            image_id=tile.image_id, rank=tile.rank, score=tile.score, path=tile.path, x=x, y=y,
            scale=scale, width=int(drawn.shape[1]), height=int(drawn.shape[0]),
            pseudo_boxes=np.asarray(tile.pseudo_boxes, dtype=float).reshape(-1, 4).tolist(),
            true_boxes=None if tile.true_boxes is None else
            np.asarray(tile.true_boxes, dtype=float).reshape(-1, 4).tolist()))
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format='JPEG', quality=90)
    atomic_write(out_path, buf.getvalue())
    info = dict(columns=columns, tile_size=tile_size, margin=MARGIN,
                pseudo_colour=list(PSEUDO_COLOUR), true_colour=list(TRUE_COLOUR), tiles=layout)
    atomic_write_json(osp.join(osp.dirname(out_path), 'gallery.json'), info, indent=1)
    return info


def gallery_tiles(picks: Sequence[Any], predictions: Optional[Dict[Any, Dict[str, np.ndarray]]],
                  score_thr: float, true_boxes: Optional[Dict[Any, List]] = None
                  ) -> List[Tile]:
    """Tiles of ``picks`` (:class:`~.exports.Pick`): pseudo boxes = detections with
    ``score >= score_thr`` (:func:`~.exports.kept_detections`, the one rule); true boxes from
    ``true_boxes`` (``{id: [(x1 y1 x2 y2, class)]}``) when given."""
    tiles = []
    for pick in picks:
        boxes = kept_detections((predictions or {}).get(pick.image_id), score_thr, pick.width,
                                pick.height)[0]
        truth = None
        if true_boxes is not None:
            truth = np.asarray([b for b, _ in true_boxes.get(pick.image_id, [])],
                               dtype=float).reshape(-1, 4)
        tiles.append(Tile(pick.image_id, pick.path, pick.rank, pick.score, boxes, truth))
    return tiles
