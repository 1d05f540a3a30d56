"""The files of ``to_annotate/`` against the formats the annotation tools read.

Label Studio's task format, as documented (https://labelstud.io/guide/task_format.html, "Label
Studio JSON format of annotated tasks", and https://labelstud.io/guide/predictions.html, "Import
pre-annotated data into Label Studio"): a task is an object with ``data``, holding the key the
labeling config's ``Image`` tag reads (``value="$image"``), and ``predictions``, a list of
objects with ``model_version``, ``score`` and ``result``, a list of regions. A region has an
``id`` of the characters ``A-Za-z0-9_-`` (unique in the task), ``type`` ``'rectanglelabels'``,
``from_name`` and ``to_name`` naming the config's ``RectangleLabels`` and ``Image`` tags,
``original_width`` / ``original_height`` (the image in pixels), ``image_rotation``, and a
``value`` with ``x``, ``y``, ``width``, ``height`` in percent of the image (0-100; ``x, y`` the
top-left corner), ``rotation`` and ``rectanglelabels``, a list of labels of the config. The
percent conversion is the one of Label Studio's own COCO importer
(label_studio_converter/imports/coco.py, ``create_bbox``: ``x / image_width * 100.0``).
label-studio-sdk would replace numpy 2.4 by 2.2 in the project's environment, and
label-studio-converter pulls pandas and nltk: neither is a test dependency.

CVAT's "COCO 1.0" import reads the file with datumaro (datumaro/plugins/coco_format/
extractor.py): categories with an integer ``id`` and a string ``name``; images with an integer
``id``, a string ``file_name`` and integer ``width`` / ``height``; annotations with integer
``id``, ``image_id``, ``category_id`` (0 means no label), integer ``iscrowd``, a
``segmentation`` list (``[]``: the ``bbox`` is read), a ``bbox`` of 4 numbers, and an optional
number ``score``.
"""
import json
import os.path as osp
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from mmdet_isal.annotation import (Pick, kept_detections, label_studio_config,
                                   label_studio_tasks, prelabels_coco, write_to_annotate)

CLASSES = ['cat', 'dog & co', 'bird']
CATEGORIES = [dict(id=7, name='bird'), dict(id=3, name='cat'), dict(id=5, name='dog & co')]
PICKS = [Pick(11, 'a/one.jpg', '/data/a/one.jpg', 100, 50, 1, -0.5),
         Pick(22, 'two.png', '/data/two.png', 64, 64, 2, None)]
PREDICTIONS = {
    11: dict(bboxes=np.array([[10, 5, 60, 30], [0, 0, 5, 5], [-4, 40, 120, 55]], float),
             scores=np.array([0.9, 0.1, 0.5]), labels=np.array([1, 0, 2])),
    22: dict(bboxes=np.zeros((0, 4)), scores=np.zeros(0), labels=np.zeros(0, int)),
}


def test_label_studio_tasks_follow_the_documented_task_format():
    tasks = label_studio_tasks(PICKS, PREDICTIONS, CLASSES, 0.3, 'mmdet-isal step_2')
    config = ET.fromstring(label_studio_config(CLASSES))
    image_tag, labels_tag = config.find('Image'), config.find('RectangleLabels')
    variable = image_tag.get('value')
    assert variable.startswith('$')
    labels = [label.get('value') for label in labels_tag.findall('Label')]
    assert labels == CLASSES and labels_tag.get('toName') == image_tag.get('name')
    assert isinstance(tasks, list) and len(tasks) == 2
    for task, pick in zip(tasks, PICKS):
        assert set(task) == {'data', 'predictions'}
        assert task['data'][variable[1:]] == '/data/local-files/?d=' + pick.file_name
        assert task['data']['pool_id'] == pick.image_id
        (prediction,) = task['predictions']
        assert prediction['model_version'] == 'mmdet-isal step_2'
        assert isinstance(prediction['score'], float)
        ids = [region['id'] for region in prediction['result']]
        assert len(set(ids)) == len(ids)
        for region in prediction['result']:
            assert re.fullmatch(r'[A-Za-z0-9_-]+', region['id'])
            assert region['type'] == 'rectanglelabels'
            assert region['from_name'] == labels_tag.get('name')
            assert region['to_name'] == image_tag.get('name')
            assert (region['original_width'], region['original_height']) == (pick.width,
                                                                              pick.height)
            assert region['image_rotation'] == 0
            value = region['value']
            assert value['rotation'] == 0 and len(value['rectanglelabels']) == 1
            assert value['rectanglelabels'][0] in labels
            assert 0 <= value['x'] <= value['x'] + value['width'] <= 100
            assert 0 <= value['y'] <= value['y'] + value['height'] <= 100
    json.dumps(tasks, allow_nan=False)  # plain JSON


def test_percent_coordinates_are_exact_and_keep_only_the_confident_boxes():
    (task, empty) = label_studio_tasks(PICKS, PREDICTIONS, CLASSES, 0.3, 'm')
    regions = task['predictions'][0]['result']
    # scores 0.9 and 0.5 pass 0.3, highest first; the last box is clipped to the 100x50 image
    assert [r['value'] for r in regions] == [
        dict(x=10.0, y=10.0, width=50.0, height=50.0, rotation=0, rectanglelabels=['dog & co']),
        dict(x=0.0, y=80.0, width=100.0, height=20.0, rotation=0, rectanglelabels=['bird'])]
    assert [r['score'] for r in regions] == [0.9, 0.5]
    assert task['predictions'][0]['score'] == pytest.approx(0.7, abs=1e-15)
    assert empty['predictions'][0] == dict(model_version='m', score=0.0, result=[])


def test_prelabels_are_what_cvat_reads_and_the_same_boxes_as_the_tasks():
    coco = prelabels_coco(PICKS, PREDICTIONS, CLASSES, CATEGORIES, 0.3)
    assert [(c['id'], c['name']) for c in coco['categories']] == [(7, 'bird'), (3, 'cat'),
                                                                  (5, 'dog & co')]
    for img in coco['images']:
        assert all(isinstance(img[k], int) for k in ('id', 'width', 'height'))
        assert isinstance(img['file_name'], str)
    assert [img['file_name'] for img in coco['images']] == ['a/one.jpg', 'two.png']
    for ann in coco['annotations']:
        assert all(isinstance(ann[k], int) for k in ('id', 'image_id', 'category_id',
                                                     'iscrowd'))
        assert ann['category_id'] != 0 and ann['segmentation'] == []
        assert len(ann['bbox']) == 4 and isinstance(ann['score'], float)
    assert [(a['image_id'], a['category_id'], a['bbox'], a['score'])
            for a in coco['annotations']] == [(11, 5, [10.0, 5.0, 50.0, 25.0], 0.9),
                                              (11, 7, [0.0, 40.0, 100.0, 10.0], 0.5)]
    # Label Studio's regions, back in pixels, are the same boxes
    regions = label_studio_tasks(PICKS, PREDICTIONS, CLASSES, 0.3, 'm')[0]['predictions'][0][
        'result']
    back = [[r['value'][k] * s / 100 for k, s in (('x', 100), ('y', 50), ('width', 100),
                                                 ('height', 50))] for r in regions]
    assert back == [a['bbox'] for a in coco['annotations']]


def test_kept_detections_clip_sort_and_threshold():
    boxes, scores, labels = kept_detections(PREDICTIONS[11], 0.5, 100, 50)
    assert boxes.tolist() == [[10, 5, 60, 30], [0, 40, 100, 50]]
    assert scores.tolist() == [0.9, 0.5] and labels.tolist() == [1, 2]
    assert [len(a) for a in kept_detections(None, 0.1, 10, 10)] == [0, 0, 0]


def test_the_to_annotate_folder_holds_every_file(tmp_path):
    paths = write_to_annotate(str(tmp_path), PICKS, PREDICTIONS, CLASSES, CATEGORIES, 0.3,
                              dict(step=2, strategy='isal'))
    assert sorted(osp.basename(p) for p in paths.values()) == [
        'images.txt', 'label_studio_config.xml', 'label_studio_tasks.json',
        'prelabels.coco.json', 'selection.json']
    with open(paths['selection']) as f:
        sel = json.load(f)
    assert (sel['step'], sel['strategy'], sel['num_images'], sel['prelabel_thr']) == (
        2, 'isal', 2, 0.3)
    assert [(p['rank'], p['id'], p['file_name'], p['score'], p['prelabels'])
            for p in sel['images']] == [(1, 11, 'a/one.jpg', -0.5, 2), (2, 22, 'two.png', None, 0)]
    with open(paths['images']) as f:
        assert f.read() == '/data/a/one.jpg\n/data/two.png\n'
    with open(paths['label_studio']) as f:
        assert json.load(f) == label_studio_tasks(PICKS, PREDICTIONS, CLASSES, 0.3,
                                                  'mmdet-isal step_2')
