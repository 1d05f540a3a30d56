"""The gallery of a selection: one JPEG of N tiles in rank order, drawn by mmdet's
DetLocalVisualizer, its pseudo boxes the predictions' and its true boxes in another colour."""
import json

import numpy as np
import pytest
from mmdet.visualization import DetLocalVisualizer
from PIL import Image

from mmdet_isal.annotation import Pick, draw_gallery, gallery_tiles
from mmdet_isal.annotation.gallery import BACKGROUND, MARGIN, PSEUDO_COLOUR, TRUE_COLOUR

GREY = (128, 128, 128)


def grey_image(path, width, height):
    Image.new('RGB', (width, height), GREY).save(path)
    return str(path)


@pytest.fixture
def picks(tmp_path):
    """Five picks of plain grey images: 128x64 ones and 64x64 ones."""
    sizes = [(128, 64), (64, 64), (128, 64), (64, 64), (128, 64)]
    return [Pick(100 + k, f'{k}.png', grey_image(tmp_path / f'{k}.png', w, h), w, h, k + 1,
                 -0.1 * k) for k, (w, h) in enumerate(sizes)]


def prediction(k):
    """Image ``100 + k``: a box scored 0.8 and one scored 0.05 (below the threshold)."""
    return dict(bboxes=np.array([[10 + k, 8, 50 + k, 40], [2, 2, 20, 20]], float),
                scores=np.array([0.8, 0.05]), labels=np.array([0, 1]))


def near(pixel, colour, tolerance=60):
    return max(abs(int(a) - int(b)) for a, b in zip(pixel, colour)) <= tolerance


def line_at(canvas, y, x, colour):
    """Whether a pixel within one of (y, x) along the row has ``colour`` (JPEG blurs a line
    of two pixels)."""
    return any(near(canvas[y, x + d], colour) for d in (-1, 0, 1))


def test_the_gallery_holds_n_tiles_in_rank_order(picks, tmp_path):
    out = str(tmp_path / 'gallery.jpg')
    info = draw_gallery(gallery_tiles(picks, {}, 0.1), out, columns=4, tile_size=256)
    with Image.open(out) as img:
        assert img.format == 'JPEG'
        canvas = np.asarray(img.convert('RGB'))
    step = 256 + MARGIN
    assert canvas.shape == (MARGIN + 2 * step, MARGIN + 4 * step, 3)  # 5 tiles: 2 rows of 4
    assert [(t['rank'], t['image_id'], t['x'], t['y']) for t in info['tiles']] == [
        (k + 1, 100 + k, MARGIN + (k % 4) * step, MARGIN + (k // 4) * step) for k in range(5)]
    for tile in info['tiles']:  # each tile holds its grey image, scaled to 256 on its long side
        assert (tile['width'], tile['height']) in ((256, 128), (256, 256))
        middle = canvas[tile['y'] + tile['height'] // 2, tile['x'] + tile['width'] // 2]
        assert near(middle, GREY, 8)
    for k in range(5, 8):  # the empty places of the second row, and the margins, are background
        x, y = MARGIN + k % 4 * step, MARGIN + step
        assert near(canvas[y + 128, x + 128], BACKGROUND, 8)
    assert near(canvas[MARGIN + 100, MARGIN + 256 + MARGIN // 2], BACKGROUND, 8)
    with open(tmp_path / 'gallery.json') as f:
        assert json.load(f) == info


def test_its_boxes_are_the_predictions_and_the_true_boxes_in_another_colour(picks, tmp_path,
                                                                              monkeypatch):
    drawn = []
    original = DetLocalVisualizer.draw_bboxes

    def spy(self, bboxes, edge_colors, **kwargs):
        drawn.append((np.array(bboxes), list(edge_colors)))
        return original(self, bboxes, edge_colors=edge_colors, **kwargs)
    monkeypatch.setattr(DetLocalVisualizer, 'draw_bboxes', spy)
    predictions = {100 + k: prediction(k) for k in range(5)}
    truth = {100 + k: [([40, 10, 60, 50], 'x')] for k in range(5)}
    out = str(tmp_path / 'gallery.jpg')
    info = draw_gallery(gallery_tiles(picks[:2], predictions, 0.1, truth), out)
    # per tile: the true boxes (green), then the pseudo boxes (the score-0.8 prediction)
    assert len(drawn) == 4
    for k, tile in enumerate(info['tiles']):
        scale = tile['scale']
        truth_boxes, truth_colours = drawn[2 * k]
        pseudo_boxes, pseudo_colours = drawn[2 * k + 1]
        assert truth_boxes.tolist() == [[40 * scale, 10 * scale, 60 * scale, 50 * scale]]
        assert pseudo_boxes.tolist() == [[(10 + k) * scale, 8 * scale, (50 + k) * scale,
                                          40 * scale]]
        assert truth_colours == [TRUE_COLOUR] and pseudo_colours == [PSEUDO_COLOUR]
        assert tile['pseudo_boxes'] == [[10 + k, 8, 50 + k, 40]]
    # and in the picture: the left edge of each box, halfway down, in its colour
    canvas = np.asarray(Image.open(out).convert('RGB'))
    for tile in info['tiles']:
        s, x0, y0 = tile['scale'], tile['x'], tile['y']
        (x1, y1, x2, y2), = tile['pseudo_boxes']
        assert line_at(canvas, y0 + int((y1 + y2) / 2 * s), x0 + int(round(x1 * s)),
                       PSEUDO_COLOUR)
        assert line_at(canvas, y0 + int(30 * s), x0 + int(round(40 * s)), TRUE_COLOUR)
        assert near(canvas[y0 + int(24 * s), x0 + int(round(30 * s))], GREY, 8)  # inside: none


def test_no_prediction_no_pseudo_box(picks, tmp_path):
    info = draw_gallery(gallery_tiles(picks[:1], None, 0.1), str(tmp_path / 'g.jpg'))
    assert info['tiles'][0]['pseudo_boxes'] == [] and info['tiles'][0]['true_boxes'] is None
    with pytest.raises(ValueError, match='no tiles'):
        draw_gallery([], str(tmp_path / 'h.jpg'))
