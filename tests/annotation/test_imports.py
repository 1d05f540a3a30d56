"""Reading what annotation tools export and checking it against a selection: names matched as
tools rewrite them, VOC coordinates, and every refusal naming the images, classes or boxes."""
import json
import os

import pytest

from mmdet_isal.annotation import (ImportRefused, NameMatcher, PoolImage, check_import,
                                   labels_digest, read_labels, read_skipped)
from mmdet_isal.datasets import AnnotationError

POOL = {1: 'photos/2024/a.jpg', 2: 'photos/2025/a.jpg', 3: 'b.png', 4: 'c d.jpg',
        5: 'sub/e.jpg'}


@pytest.mark.parametrize('name, keys', [
    ('photos/2024/a.jpg', [1]),                         # the same path
    ('C:\\Users\\me\\photos\\2024\\a.jpg', [1]),        # a longer path, Windows separators
    ('./2025/a.jpg', [2]),                              # a shorter one, by whole folders
    ('a.jpg', [1, 2]),                                  # the file name alone: ambiguous
    ('images/b.png', [3]),                              # CVAT: the upload folder
    ('1a2b3c4d-b.png', [3]),                            # Label Studio's upload prefix
    ('/data/local-files/?d=sub/e.jpg', [5]),            # Label Studio's local files
    ('http://host/files/c%20d.jpg', [4]),               # a URL, quoted
    ('e', [5]),                                         # a VOC file's stem
    ('f.jpg', []),
    ('2024/b.png', [3]),                                # folders differ: the file name
])
def test_names_match_as_tools_rewrite_them(name, keys):
    assert sorted(NameMatcher(POOL).match(name)) == keys


def write(path, data):
    with open(path, 'w') as f:
        json.dump(data, f)
    return str(path)


def voc_file(folder, name, boxes, size=(100, 50), filename=None):
    os.makedirs(folder, exist_ok=True)
    objects = ''.join(
        f'<object><name>{c}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>'
        f'<ymax>{y2}</ymax></bndbox></object>' for c, (x1, y1, x2, y2) in boxes)
    filename = f'<filename>{filename}</filename>' if filename else ''
    with open(os.path.join(folder, name), 'w') as f:
        f.write(f'<annotation>{filename}<size><width>{size[0]}</width><height>{size[1]}'
                f'</height></size>{objects}</annotation>')


def test_voc_corners_become_coco_boxes(tmp_path):
    # VOC: 1-based inclusive corners; pixel columns 10..39 and rows 20..59 (0-based)
    voc_file(tmp_path / 'x' / 'Annotations', 'b.xml', [('cat', (11, 21, 40, 60))],
             filename='b.png')
    voc_file(tmp_path / 'x' / 'Annotations', 'c.xml', [])
    kind, images = read_labels(str(tmp_path / 'x'))
    assert kind == 'voc'
    assert [(im.file_name, im.width, im.height) for im in images] == [('b.png', 100, 50),
                                                                     ('c', 100, 50)]
    assert images[0].boxes[0].bbox == (10.0, 20.0, 30.0, 40.0)
    assert images[0].boxes[0].category == 'cat' and images[1].boxes == []


def test_a_coco_export_that_contradicts_itself_is_named(tmp_path):
    path = write(tmp_path / 'e.json', dict(
        images=[dict(id=1, file_name='b.png', width=100, height=50), dict(id=2)],
        categories=[dict(id=1, name='cat')],
        annotations=[dict(id=1, image_id=9, category_id=1, bbox=[0, 0, 1, 1]),
                     dict(id=2, image_id=1, category_id=4, bbox=[0, 0, 1, 1]),
                     dict(id=3, image_id=1, category_id=1, bbox=[0, 0, 'x', 1])]))
    with pytest.raises(AnnotationError) as err:
        read_labels(path)
    message = str(err.value)
    assert '1 images without a "file_name", e.g. images[1]' in message
    assert '1 annotations on an image id the file does not declare, e.g. annotation id 1: ' \
           'image_id 9' in message
    assert "annotation id 2 on 'b.png': category_id 4" in message
    assert 'annotation id 3 on' in message and 'nothing was merged' in message


@pytest.fixture
def pool_images():
    return {i: PoolImage(i, name, 100, 50, 'selected' if i in (3, 4) else 'labeled at step 0')
            for i, name in POOL.items()}


def export(tmp_path, images, annotations, categories=('cat', 'dog')):
    return read_labels(write(tmp_path / 'e.json', dict(
        images=[dict(id=k + 1, file_name=n, width=w, height=h)
                for k, (n, w, h) in enumerate(images)],
        categories=[dict(id=10 + k, name=c) for k, c in enumerate(categories)],
        annotations=[dict(id=k + 1, image_id=i, category_id=c, bbox=b)
                     for k, (i, c, b) in enumerate(annotations)])))[1]


def test_a_good_export_becomes_boxes_in_the_pools_terms(tmp_path, pool_images):
    labels = export(tmp_path, [('up/c d.jpg', 100, 50), ('b.png', 100, 50)],
                    [(2, 11, [1, 2, 3, 4]), (2, 10, [0, 0, 100, 50])])
    boxes = check_import(labels, 'e.json', [3, 4], pool_images, {'cat': 7, 'dog': 8})
    assert boxes == {3: [([1, 2, 3, 4], 8), ([0, 0, 100, 50], 7)], 4: []}


def test_every_problem_of_an_export_is_named(tmp_path, pool_images):
    labels = export(tmp_path, [('b.png', 100, 50), ('b.png', 100, 50), ('z.png', 10, 10),
                               ('a.jpg', 100, 50), ('photos/2024/a.jpg', 100, 50),
                               ('e.jpg', 50, 100)],
                    [(1, 10, [90, 0, 20, 10]), (1, 10, [5, 5, 0, 3]), (1, 12, [0, 0, 1, 1])],
                    categories=('cat', 'dog', 'kat'))
    with pytest.raises(ImportRefused) as err:
        check_import(labels, 'e.json', [3, 4, 5], pool_images, {'cat': 7, 'dog': 8},
                     what="step_3's selection")
    message = str(err.value)
    assert message.startswith("e.json cannot be merged into step_3's selection:")
    assert "1 images that are not images of the pool (not selected in step_3's selection), " \
           "e.g. images[2] (id 3, 'z.png')" in message
    assert "1 images whose name matches several pool images" in message
    assert "images[4] (id 5, 'photos/2024/a.jpg') is image id 1 (photos/2024/a.jpg), labeled " \
           "at step 0" in message
    assert '1 selected images that appear more than once in the export, e.g. image id 3 ' \
           "(b.png): images[0] (id 1, 'b.png') and images[1] (id 2, 'b.png')" in message
    assert "1 of the 3 images selected in step_3's selection are missing from the export" in \
        message and 'image id 4 (c d.jpg)' in message
    assert "images[5] (id 6, 'e.jpg'): 50x100 in the export, 100x50 on disk" in message
    assert 'boxes outside their image (by more than 1 px), e.g. b.png annotation id 1: ' \
           '[90, 0, 20, 10] in a 100x50 image' in message
    assert 'boxes without a positive width and height, e.g. b.png annotation id 2' in message
    assert "'kat' (did you mean 'cat'?): 1 box(es), e.g. b.png annotation id 3" in message
    assert message.endswith('Nothing was merged: the ledger is unchanged. Fix the export (or '
                            'list the images you skipped with --skipped FILE) and run the same '
                            'command again.')


def test_skipped_images_are_read_by_id_name_or_path(tmp_path, pool_images):
    listing = tmp_path / 'skipped.txt'
    listing.write_text('# skipped\n3\n\n/home/me/sub/e.jpg\n')
    assert read_skipped(str(listing), [3, 4, 5], pool_images) == [3, 5]
    listing.write_text('3\nnot/there.jpg\n')
    with pytest.raises(ImportRefused, match=r"line 2: 'not/there.jpg'"):
        read_skipped(str(listing), [3, 4, 5], pool_images)


def test_a_folder_digest_follows_its_files(tmp_path):
    voc_file(tmp_path / 'v', 'a.xml', [('cat', (1, 1, 5, 5))])
    first = labels_digest(str(tmp_path / 'v'))
    voc_file(tmp_path / 'v', 'a.xml', [('cat', (1, 1, 5, 6))])
    assert labels_digest(str(tmp_path / 'v')) != first
    with pytest.raises(FileNotFoundError, match='does not exist'):
        read_labels(str(tmp_path / 'nothing.json'))
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(AnnotationError, match='holds no .xml file'):
        read_labels(str(tmp_path / 'empty'))
