"""The loop draws a gallery of every selection, in simulation too: step_K/strategy/gallery.jpg,
the first ``active_learning.gallery`` picks in rank order, their pseudo boxes the step's model's
detections and their true boxes the pool's."""
import json
import os.path as osp

import pytest
from PIL import Image

from mmdet_isal.annotation.gallery import LEGEND_HEIGHT

from tests.active.fake_trainer import FakeTrainer, fake_prediction


@pytest.mark.slow
def test_every_selection_has_a_gallery_of_its_first_picks(fake_loop, pool_coco):
    loop = fake_loop(gallery=4)
    ledger = loop.run()
    with open(osp.join(pool_coco, 'annotations', 'instances_train.json')) as f:
        coco = json.load(f)
    truth = {}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        truth.setdefault(ann['image_id'], []).append([x, y, x + w, y + h])
    for step in (0, 1):
        directory = osp.join(loop.work_dir, f'step_{step}', 'strategy')
        with open(osp.join(directory, 'gallery.json')) as f:
            info = json.load(f)
        picked = sorted(ledger.selected_at(step + 1),
                        key=lambda i: ledger.images[i]['ranks'][step])
        assert [t['image_id'] for t in info['tiles']] == picked[:4]
        assert [t['rank'] for t in info['tiles']] == [
            ledger.images[i]['ranks'][step] + 1 for i in picked[:4]]
        for tile in info['tiles']:
            expected = fake_prediction(tile['image_id'])
            kept = expected['scores'] >= 0.1  # scorer.score_thr: the pseudo boxes
            assert tile['pseudo_boxes'] == expected['bboxes'][kept].tolist()
            assert sorted(tile['true_boxes']) == sorted(truth.get(tile['image_id'], []))
            assert tile['score'] == ledger.images[tile['image_id']]['scores'][step]
        with Image.open(osp.join(directory, 'gallery.jpg')) as img:
            # a legend band, then 4 tiles of 256 px in a row
            assert img.size == (4 + 4 * 260, LEGEND_HEIGHT + 4 + 260)
        assert info['tiles'][0]['y'] == LEGEND_HEIGHT + 4
    # the model of the step that selected: the detections of step 0's model, not step 1's
    assert [step for step, _ in loop.trainer.predicted] == [0, 1]


def test_no_gallery_when_none_is_asked_for(fake_loop):
    loop = fake_loop(gallery=0)
    loop.run()
    assert not osp.exists(osp.join(loop.work_dir, 'step_0', 'strategy', 'gallery.jpg'))
    assert loop.trainer.predicted == []  # and no detection pass for it


@pytest.mark.slow
def test_a_trainer_without_predictions_still_gets_a_gallery(fake_loop):
    loop = fake_loop(trainer=FakeTrainer(predicts=False), gallery=2)
    loop.run()
    with open(osp.join(loop.work_dir, 'step_0', 'strategy', 'gallery.json')) as f:
        tiles = json.load(f)['tiles']
    assert len(tiles) == 2 and all(t['pseudo_boxes'] == [] for t in tiles)
