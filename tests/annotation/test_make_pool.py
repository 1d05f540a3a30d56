"""tools/make_pool.py: a folder of images to a COCO pool of images only (recursive, ids
deterministic, file names relative to a data root, sizes from the headers with EXIF applied),
the files that cannot be used listed and left out, and images already labeled (COCO or VOC)
left out and written as a labeled set."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from mmdet_isal.annotation import make_pool
from mmdet_isal.datasets import AnnotationError

CLASSES = ['cat', 'dog']


def image(path, width, height, seed, fmt='PNG', exif=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    options = {}
    if exif is not None:
        tags = Image.Exif()
        tags[0x0112] = exif
        options['exif'] = tags.tobytes()
    Image.fromarray(pixels).save(path, format=fmt, **options)


@pytest.fixture
def folder(tmp_path):
    """data/images/ with 5 usable images (one an EXIF-rotated phone photo), a copy of one, a
    truncated one and a file that is not an image."""
    root = tmp_path / 'data' / 'images'
    image(root / 'b.png', 40, 30, 1)
    image(root / 'a.png', 40, 30, 2)
    image(root / 'trip' / 'c.jpg', 60, 20, 3, 'JPEG', exif=6)
    image(root / 'trip' / 'd.png', 16, 16, 4)
    image(root / 'zoo' / 'e.png', 16, 16, 5)
    (root / 'zoo' / 'copy_of_a.png').write_bytes((root / 'a.png').read_bytes())
    image(root / 'zoo' / 'cut.png', 40, 30, 6)
    data = (root / 'zoo' / 'cut.png').read_bytes()
    (root / 'zoo' / 'cut.png').write_bytes(data[:120])
    (root / 'notes.jpg').write_text('not an image')
    (root / 'readme.txt').write_text('skipped: not an image extension')
    return root


def test_a_folder_becomes_a_pool_of_images_only(folder):
    made = make_pool(str(folder), CLASSES, data_root=str(folder.parent))
    pool = made.pool
    assert pool['annotations'] == [] and pool['categories'] == [
        dict(id=1, name='cat', supercategory=''), dict(id=2, name='dog', supercategory='')]
    assert [(im['id'], im['file_name'], im['width'], im['height']) for im in pool['images']] == [
        (1, 'images/a.png', 40, 30), (2, 'images/b.png', 40, 30),
        (3, 'images/trip/c.jpg', 20, 60),  # EXIF orientation 6: loaded 20 wide, 60 high
        (4, 'images/trip/d.png', 16, 16), (5, 'images/zoo/e.png', 16, 16)]
    assert [r for r, _ in made.rejected] == ['images/notes.jpg', 'images/zoo/cut.png']
    assert made.rejected[0][1].startswith('not an image') and \
        made.rejected[1][1].startswith('truncated or corrupt')
    assert made.duplicates == [('images/zoo/copy_of_a.png', 'images/a.png')]
    assert make_pool(str(folder), CLASSES, data_root=str(folder.parent)).pool == pool  # again


def test_images_already_labeled_are_left_out_and_written_as_a_labeled_set(folder, tmp_path):
    labeled = tmp_path / 'labeled_export.json'
    labeled.write_text(json.dumps(dict(  # a tool's export: its own ids and paths
        images=[dict(id=77, file_name='uploads/b.png', width=40, height=30),
                dict(id=78, file_name='C:\\photos\\trip\\d.png', width=16, height=16),
                dict(id=79, file_name='gone.png', width=8, height=8)],
        categories=[dict(id=5, name='dog'), dict(id=9, name='cat')],
        annotations=[dict(id=1, image_id=77, category_id=5, bbox=[1, 2, 10, 20]),
                     dict(id=2, image_id=78, category_id=9, bbox=[0, 0, 16, 16])])))
    made = make_pool(str(folder), CLASSES, labeled=str(labeled))
    assert made.left_out == ['b.png', 'trip/d.png'] and made.labeled_missing == ['gone.png']
    assert [im['file_name'] for im in made.pool['images']] == ['a.png', 'trip/c.jpg',
                                                                'zoo/e.png']
    assert [im['id'] for im in made.pool['images']] == [3, 4, 5]  # after the labeled ones
    assert [(im['id'], im['file_name']) for im in made.labeled['images']] == [
        (1, 'b.png'), (2, 'trip/d.png')]
    assert [(a['image_id'], a['category_id'], a['bbox']) for a in made.labeled['annotations']] \
        == [(1, 2, [1.0, 2.0, 10.0, 20.0]), (2, 1, [0.0, 0.0, 16.0, 16.0])]
    assert made.labeled['categories'] == made.pool['categories']


def test_a_voc_folder_of_labels_and_its_classes_are_checked(folder, tmp_path):
    voc = tmp_path / 'voc'
    voc.mkdir()
    (voc / 'a.xml').write_text(
        '<annotation><filename>copy_of_a.png</filename><size><width>40</width><height>30</height>'
        '</size><object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax>'
        '<ymax>10</ymax></bndbox></object></annotation>')
    made = make_pool(str(folder), CLASSES, labeled=str(voc))
    assert made.left_out == ['zoo/copy_of_a.png']
    assert made.labeled['annotations'][0]['bbox'] == [0.0, 0.0, 10.0, 10.0]
    # a.png, the same content as the labeled copy, stays out of the pool too
    assert made.duplicates == [('a.png', 'zoo/copy_of_a.png')]
    assert 'a.png' not in [im['file_name'] for im in made.pool['images']]
    (voc / 'a.xml').write_text((voc / 'a.xml').read_text().replace('>cat<', '>kat<'))
    with pytest.raises(AnnotationError, match=r"'kat' \(did you mean 'cat'\?\): 1 box"):
        make_pool(str(folder), CLASSES, labeled=str(voc))


def test_the_tool_writes_the_pool_the_labeled_set_and_the_rejected_list(folder, tmp_path,
                                                                      capsys):
    import tools.make_pool as tool
    labeled = tmp_path / 'l.json'
    labeled.write_text(json.dumps(dict(
        images=[dict(id=1, file_name='b.png', width=40, height=30)], annotations=[],
        categories=[dict(id=1, name='cat')])))
    out = tmp_path / 'pool.json'
    tool.main([str(folder), '--classes', *CLASSES, '--out', str(out), '--labeled',
               str(labeled), '--labeled-out', str(tmp_path / 'labeled.json')])
    printed = capsys.readouterr().out
    assert f'wrote {out}: 4 images, 2 classes; file names are relative to {folder}' in printed
    assert 'left out 2 file(s) that cannot be used' in printed
    assert json.loads((tmp_path / 'labeled.json').read_text())['images'][0]['file_name'] == \
        'b.png'
    rejected = (tmp_path / 'pool.rejected.txt').read_text().splitlines()
    assert [line.split('\t')[0] for line in rejected] == ['notes.jpg', 'zoo/cut.png',
                                                         'zoo/copy_of_a.png']
    with pytest.raises(SystemExit, match='--data-root .* must contain the images folder'):
        tool.main([str(folder), '--classes', 'cat', '--out', str(out), '--data-root',
                   str(tmp_path / 'elsewhere')])
