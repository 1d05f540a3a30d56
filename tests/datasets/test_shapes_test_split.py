"""The held-out test split of the synthetic shapes set: layout (COCO and VOC), determinism, its
own seed stream (train and val unchanged by it, nothing shared with them), its distribution,
and adding it to a set written without one."""
import hashlib
import json
import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mmdet_isal.datasets import SHAPES_CLASSES, make_shapes_dataset
from mmdet_isal.datasets.validate import check_coco, check_voc, load_coco

SMALL = dict(seed=0, num_train=40, num_val=10)
NUM_TEST = 30


def _is_test_file(rel_path):
    name = os.path.basename(rel_path)
    return name.startswith('test_') or name in ('instances_test.json', 'test.txt')


def _without(hashes, keep):
    """The entries of hashes whose path passes keep, minus the manifest."""
    return {k: v for k, v in hashes.items() if k != 'shapes_manifest.json' and keep(k)}


@pytest.fixture(scope='module')
def coco_sets(tmp_path_factory):
    """The same small COCO set written with and without a test split."""
    root = tmp_path_factory.mktemp('test_split')
    summary = make_shapes_dataset(root / 'with', num_test=NUM_TEST, **SMALL)
    make_shapes_dataset(root / 'without', **SMALL)
    return str(root / 'with'), str(root / 'without'), summary


def _coco(root, split):
    with open(os.path.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


@pytest.mark.slow
def test_coco_test_split_layout(coco_sets):
    root, _, summary = coco_sets
    ann_file = os.path.join(root, 'annotations', 'instances_test.json')
    coco = COCO(ann_file)
    # Ids above every train and val id (at most 999999 images per split), files numbered 1..N.
    images = coco.loadImgs(sorted(coco.getImgIds()))
    assert [img['id'] for img in images] == list(range(1_000_001, 1_000_001 + NUM_TEST))
    assert [img['file_name'] for img in images] == [
        f'test_{n:06d}.png' for n in range(1, NUM_TEST + 1)]
    assert [(c['id'], c['name']) for c in coco.loadCats(coco.getCatIds())] == [
        (i + 1, name) for i, name in enumerate(SHAPES_CLASSES)]
    assert sorted(coco.getAnnIds()) == list(range(1, len(coco.getAnnIds()) + 1))
    assert check_coco(load_coco(ann_file), ann_file, SHAPES_CLASSES) == []
    for img in images:
        with Image.open(os.path.join(root, 'images', img['file_name'])) as im:
            assert im.format == 'PNG' and im.size == (128, 128)
    test = summary['splits']['test']
    assert test['images'] == NUM_TEST and test['objects'] == len(coco.getAnnIds())
    assert test['scenes']['duplicate'] == 0
    with open(os.path.join(root, 'shapes_manifest.json')) as f:
        manifest = json.load(f)
    assert manifest['params']['num_test'] == NUM_TEST and manifest['complete']
    assert list(manifest['summary']['splits']) == ['train', 'val', 'test']
    assert sum(map(_is_test_file, manifest['files'])) == NUM_TEST + 1


def test_train_and_val_unchanged_by_the_test_split(coco_sets, file_hashes):
    with_test, without_test, _ = coco_sets
    hashes, reference = file_hashes(with_test), file_hashes(without_test)
    assert _without(hashes, lambda k: not _is_test_file(k)) == _without(reference, lambda k: True)
    assert sorted(set(hashes) - set(reference)) == ['annotations/instances_test.json'] + [
        f'images/test_{n:06d}.png' for n in range(1, NUM_TEST + 1)]
    # A set without a test split records no num_test: the manifest of the sets written before
    # the test split existed.
    with open(os.path.join(without_test, 'shapes_manifest.json')) as f:
        manifest = json.load(f)
    assert list(manifest['params']) == ['seed', 'fmt', 'num_train', 'num_val', 'image_size']
    assert list(manifest['summary']['splits']) == ['train', 'val']


def test_test_split_is_deterministic(coco_sets, tmp_path, file_hashes):
    root, _, _ = coco_sets
    make_shapes_dataset(tmp_path / 'again', num_test=NUM_TEST, **SMALL)
    first = file_hashes(root)
    assert file_hashes(tmp_path / 'again') == first
    # Image i of the split is a function of (seed, 'test', i): a smaller test split is a prefix.
    make_shapes_dataset(tmp_path / 'small', seed=0, num_train=1, num_val=1, num_test=5)
    small = file_hashes(tmp_path / 'small')
    for n in range(1, 6):
        assert small[f'images/test_{n:06d}.png'] == first[f'images/test_{n:06d}.png']
    assert _coco(tmp_path / 'small', 'test')['images'] == _coco(root, 'test')['images'][:5]
    make_shapes_dataset(tmp_path / 'other', seed=1, num_train=1, num_val=1, num_test=5)
    other = file_hashes(tmp_path / 'other')
    assert all(other[f'images/test_{n:06d}.png'] != small[f'images/test_{n:06d}.png']
               for n in range(1, 6))


def test_test_split_shares_nothing_with_train_and_val(coco_sets):
    root, _, _ = coco_sets
    splits = {split: _coco(root, split) for split in ('train', 'val', 'test')}
    ids = {split: {img['id'] for img in coco['images']} for split, coco in splits.items()}
    names = {split: {img['file_name'] for img in coco['images']}
             for split, coco in splits.items()}
    pixels = {}
    for split, coco in splits.items():
        pixels[split] = set()
        for img in coco['images']:
            with Image.open(os.path.join(root, 'images', img['file_name'])) as im:
                pixels[split].add(hashlib.sha256(np.asarray(im).tobytes()).hexdigest())
    assert len(pixels['test']) == NUM_TEST  # and no two test images alike
    for other in ('train', 'val'):
        assert not ids['test'] & ids[other]
        assert not names['test'] & names[other]
        assert not pixels['test'] & pixels[other]


@pytest.mark.slow
def test_test_split_has_the_held_out_distribution(tmp_path):
    # Same seed, 300 images each of val and test: scenes as val's (the held-out shares, no
    # duplicates), each scene's count within 4 standard deviations of its expectation, and
    # the long tail of classes in both.
    num = 300
    summary = make_shapes_dataset(tmp_path, seed=0, num_train=1, num_val=num, num_test=num,
                                  image_size=64)
    shares = dict(empty=0.06, sparse=0.20, typical=0.62, cluttered=0.12, duplicate=0.0)
    for split in ('val', 'test'):
        info = summary['splits'][split]
        for scene, share in shares.items():
            sigma = (num * share * (1 - share))**0.5
            assert abs(info['scenes'][scene] - num * share) <= 4 * sigma, (split, scene)
        counts = info['class_counts']
        assert max(counts, key=counts.get) == 'circle'
        assert counts['circle'] >= 5 * min(counts['star'], counts['ring'])
    val, test = summary['splits']['val'], summary['splits']['test']
    assert abs(test['objects'] - val['objects']) <= 0.25 * val['objects']


@pytest.mark.slow
def test_adds_the_test_split_to_a_set_without_one(tmp_path, file_hashes):
    old = tmp_path / 'old'
    make_shapes_dataset(old, **SMALL)
    before = file_hashes(old)
    stamps = {k: os.stat(old / k).st_mtime_ns for k in before}
    summary = make_shapes_dataset(old, num_test=NUM_TEST, **SMALL)
    assert summary['status'] == 'test-split-added'
    assert summary['splits']['test']['images'] == NUM_TEST
    # Train and val not even rewritten; the result is what a fresh run writes, manifest too.
    assert {k: os.stat(old / k).st_mtime_ns for k in before
            if k != 'shapes_manifest.json'} == {
        k: v for k, v in stamps.items() if k != 'shapes_manifest.json'}
    fresh = make_shapes_dataset(tmp_path / 'fresh', num_test=NUM_TEST, **SMALL)
    hashes = file_hashes(old)
    assert hashes == file_hashes(tmp_path / 'fresh')
    assert dict(summary, status='written', out_dir=fresh['out_dir']) == fresh
    # The manifest's checks cover the test split: up to date, then a deleted test image is
    # noticed and written again.
    assert make_shapes_dataset(old, num_test=NUM_TEST, **SMALL)['status'] == 'up-to-date'
    os.remove(old / 'images' / 'test_000007.png')
    assert make_shapes_dataset(old, num_test=NUM_TEST, **SMALL)['status'] == 'written'
    assert file_hashes(old) == hashes


@pytest.mark.slow
def test_interrupted_addition_leaves_the_set_as_it_was(tmp_path, monkeypatch, file_hashes):
    from mmdet_isal.datasets.shapes import writers

    def interrupt(self, split):
        raise KeyboardInterrupt

    make_shapes_dataset(tmp_path / 'set', **SMALL)
    before = file_hashes(tmp_path / 'set')
    with monkeypatch.context() as patch:
        patch.setattr(writers.CocoWriter, 'finish_split', interrupt)
        with pytest.raises(KeyboardInterrupt):
            make_shapes_dataset(tmp_path / 'set', num_test=NUM_TEST, **SMALL)
    after = file_hashes(tmp_path / 'set')
    assert {k: after[k] for k in before} == before  # the manifest too: still no test split
    assert make_shapes_dataset(tmp_path / 'set', **SMALL)['status'] == 'up-to-date'
    assert make_shapes_dataset(tmp_path / 'set', num_test=NUM_TEST, **SMALL)['status'] == \
        'test-split-added'
    make_shapes_dataset(tmp_path / 'fresh', num_test=NUM_TEST, **SMALL)
    assert file_hashes(tmp_path / 'set') == file_hashes(tmp_path / 'fresh')


@pytest.mark.parametrize('there, asked', [(NUM_TEST, 5), (NUM_TEST, 0)])
def test_refuses_another_test_split_size(tmp_path, file_hashes, there, asked):
    make_shapes_dataset(tmp_path, num_test=there, **SMALL)
    hashes = file_hashes(tmp_path)
    with pytest.raises(FileExistsError, match=f'num_test {there} there, {asked} asked') as exc:
        make_shapes_dataset(tmp_path, num_test=asked, **SMALL)
    assert f'--num-test {there}' in str(exc.value)
    assert file_hashes(tmp_path) == hashes


def test_refuses_a_set_without_test_split_made_with_other_settings(tmp_path, file_hashes):
    make_shapes_dataset(tmp_path, **SMALL)
    hashes = file_hashes(tmp_path)
    with pytest.raises(FileExistsError, match='num_val 10 there, 11 asked'):
        make_shapes_dataset(tmp_path, seed=0, num_train=40, num_val=11, num_test=NUM_TEST)
    assert file_hashes(tmp_path) == hashes


@pytest.mark.slow
def test_voc_test_split(tmp_path, file_hashes):
    make_shapes_dataset(tmp_path / 'without', fmt='voc', **SMALL)
    make_shapes_dataset(tmp_path / 'with', fmt='voc', num_test=5, **SMALL)
    voc = tmp_path / 'with' / 'VOC2012'
    ids, objects = check_voc(str(voc / 'ImageSets' / 'Main' / 'test.txt'),
                             str(voc / 'Annotations'), SHAPES_CLASSES)
    assert ids == [f'test_{n:06d}' for n in range(1, 6)]
    with open(voc / 'ImageSets' / 'Main' / 'train.txt') as f:
        assert not set(ids) & set(f.read().split())
    for image_id in ids:
        with Image.open(voc / 'JPEGImages' / f'{image_id}.jpg') as im:
            assert im.format == 'JPEG' and im.size == (128, 128)
    # Same seed, same scenes as the COCO layout's test split.
    make_shapes_dataset(tmp_path / 'coco', num_test=5, **SMALL)
    coco = _coco(tmp_path / 'coco', 'test')
    labels = Counter()
    for ann in coco['annotations']:
        labels[(ann['image_id'] - 1_000_001, SHAPES_CLASSES[ann['category_id'] - 1])] += 1
    assert labels == Counter((n, name) for n, image_id in enumerate(ids)
                             for name in objects[image_id])
    hashes = file_hashes(tmp_path / 'with')
    assert _without(hashes, lambda k: not _is_test_file(k)) == _without(
        file_hashes(tmp_path / "without"), lambda k: True)


def test_loads_with_mmdet_coco_dataset(coco_sets):
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    register_all_modules()
    root, _, _ = coco_sets
    dataset = CocoDataset(
        data_root=root, ann_file='annotations/instances_test.json',
        data_prefix=dict(img='images/'), metainfo=dict(classes=SHAPES_CLASSES),
        pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)],
        test_mode=True, lazy_init=False)
    assert len(dataset) == NUM_TEST
    sample = dataset[NUM_TEST - 1]
    assert sample['img_id'] == 1_000_000 + NUM_TEST
    assert sample['img_path'].endswith(f'test_{NUM_TEST:06d}.png')
    assert sample['img'].shape == (128, 128, 3)
