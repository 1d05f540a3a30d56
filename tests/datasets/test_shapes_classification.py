"""The single-object classification sets (issue 21): layout, determinism, disjoint splits, the
class shares of each class set, duplicates only in train, the manifest's rules, the CLI."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmdet_isal.datasets import (CLASS_SETS, OTHER_SHAPES_CLASSES, SHAPES_CLASSES,
                                 make_shapes_classification, make_shapes_dataset)
from mmdet_isal.datasets.shapes.design import CLASS_SHARES
from mmdet_isal.datasets.shapes.single import SingleObjectRenderer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, 'tools', 'make_classification_dataset.py')
SMALL = dict(num_train=60, num_val=20, num_test=20)


@pytest.fixture(scope='module')
def shapes_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_cls')
    summary = make_shapes_classification(root, class_set='shapes', seed=0, **SMALL)
    return str(root), summary


def _lines(root, split):
    with open(os.path.join(root, f'{split}.txt')) as f:
        return [line.split() for line in f if line.strip()]


def test_layout_lists_and_images(shapes_set):
    root, summary = shapes_set
    assert sorted(os.listdir(root)) == ['classes.txt', 'images', 'shapes_manifest.json',
                                        'test.txt', 'train.txt', 'val.txt']
    with open(os.path.join(root, 'classes.txt')) as f:
        assert tuple(f.read().split()) == SHAPES_CLASSES
    for split, num in (('train', 60), ('val', 20), ('test', 20)):
        lines = _lines(root, split)
        assert [name for name, _ in lines] == [f'{split}_{n:06d}.png' for n in range(1, num + 1)]
        labels = [int(label) for _, label in lines]
        assert all(0 <= label < len(SHAPES_CLASSES) for label in labels)
        assert summary['splits'][split]['images'] == num
        assert summary['splits'][split]['class_counts'] == {
            c: labels.count(k) for k, c in enumerate(SHAPES_CLASSES)}
        for name, _ in lines[:5]:
            with Image.open(os.path.join(root, 'images', name)) as im:
                assert im.format == 'PNG' and im.mode == 'RGB' and im.size == (32, 32)
    images = sorted(os.listdir(os.path.join(root, 'images')))
    assert len(images) == 100


def test_deterministic_and_seed_dependent(shapes_set, tmp_path, file_hashes):
    root, summary = shapes_set
    again = make_shapes_classification(tmp_path / 'again', class_set='shapes', seed=0, **SMALL)
    assert file_hashes(root) == file_hashes(str(tmp_path / 'again'))
    assert again['splits'] == summary['splits']
    other = make_shapes_classification(tmp_path / 'seed1', class_set='shapes', seed=1, **SMALL)
    first = file_hashes(str(tmp_path / 'seed1'))
    assert first['images/train_000001.png'] != file_hashes(root)['images/train_000001.png']
    assert other['splits'] != summary['splits']


def test_splits_are_disjoint(shapes_set, file_hashes):
    """No image of one split is an image of another: names and pixels differ, and the train
    duplicates copy train images only (they are the one place two images may be near-equal)."""
    root, summary = shapes_set
    by_split = {}
    for rel, digest in file_hashes(root).items():
        if rel.startswith('images/'):
            by_split.setdefault(os.path.basename(rel).split('_')[0], set()).add(digest)
    assert sorted(by_split) == ['test', 'train', 'val']
    for a in by_split:
        for b in by_split:
            if a < b:
                assert not by_split[a] & by_split[b], (a, b)
    assert summary['splits']['val']['scenes']['duplicate'] == 0
    assert summary['splits']['test']['scenes']['duplicate'] == 0
    # duplicates are drawn from their own split's earlier images, with its label
    renderer = SingleObjectRenderer('shapes', 0, 'train', 32)
    for index in range(1, 60):
        _, label, scene, source = renderer.render(index)
        if scene == 'duplicate':
            assert 0 <= source < index and renderer.render(source)[1] == label
            assert renderer.render(source)[2] != 'duplicate'


@pytest.mark.slow
def test_class_shares_follow_each_class_set():
    """shapes: the detection set's long-tailed shares; other_shapes: balanced; checked on the
    labels alone (cheap to draw) against a chi-square bound far out in the tail."""
    for name, shares in (('shapes', CLASS_SHARES),
                         ('other_shapes', np.full(len(OTHER_SHAPES_CLASSES), 0.1))):
        renderer = SingleObjectRenderer(name, 0, 'val', CLASS_SETS[name].image_size)
        labels = [renderer._draw(*renderer._scene(i))[1] for i in range(600)]
        counts = np.bincount(labels, minlength=len(shares))
        expected = 600 * np.asarray(shares)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 40, (name, counts.tolist())  # df <= 9: p < 1e-5 beyond 40
    assert CLASS_SHARES[0] / CLASS_SHARES[5] == pytest.approx(16.0)  # circle : star


def test_other_shapes_set_is_64px_balanced_and_never_a_detection_class(tmp_path):
    assert not set(OTHER_SHAPES_CLASSES) & set(SHAPES_CLASSES)
    summary = make_shapes_classification(tmp_path, class_set='other_shapes', seed=0,
                                         num_train=10, num_val=3, num_test=3)
    assert summary['classes'] == list(OTHER_SHAPES_CLASSES) and summary['image_size'] == 64
    with Image.open(tmp_path / 'images' / 'train_000001.png') as im:
        assert im.size == (64, 64)


def test_rerun_checks_and_repairs(tmp_path):
    make_shapes_classification(tmp_path, seed=0, num_train=5, num_val=2, num_test=2)
    assert make_shapes_classification(tmp_path, seed=0, num_train=5, num_val=2,
                                      num_test=2)['status'] == 'up-to-date'
    image = tmp_path / 'images' / 'val_000001.png'
    good = image.read_bytes()
    image.write_bytes(b'not a png')
    assert make_shapes_classification(tmp_path, seed=0, num_train=5, num_val=2,
                                      num_test=2)['status'] == 'written'
    assert image.read_bytes() == good


def test_refuses_other_settings_and_foreign_folders(tmp_path):
    make_shapes_classification(tmp_path / 'a', seed=0, num_train=5, num_val=2, num_test=2)
    with pytest.raises(FileExistsError, match='num_train 5 there, 6 asked'):
        make_shapes_classification(tmp_path / 'a', seed=0, num_train=6, num_val=2, num_test=2)
    make_shapes_dataset(tmp_path / 'det', num_train=2, num_val=1, image_size=32)
    with pytest.raises(FileExistsError, match='not written by this generator'):
        make_shapes_classification(tmp_path / 'det', num_train=2, num_val=1, num_test=1)
    with pytest.raises(FileExistsError, match='not written by this generator'):
        make_shapes_dataset(tmp_path / 'a', num_train=5, num_val=2, image_size=32)
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='pass a new or empty folder'):
        make_shapes_classification(tmp_path / 'mine', num_train=2, num_val=1, num_test=1)
    assert (tmp_path / 'mine' / 'notes.txt').read_text() == 'keep me'


@pytest.mark.parametrize('kwargs, match', [
    (dict(class_set='hexagons'), "class_set must be one of \\('shapes', 'other_shapes'\\)"),
    (dict(num_train=0), 'num_train must be >= 1'),
    (dict(num_test=0), 'num_test must be >= 1'),
    (dict(image_size=16), 'image_size must be >= 32'),
    (dict(seed=1.5), 'seed must be an integer'),
])
def test_bad_arguments_name_the_argument(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shapes_classification(tmp_path, **kwargs)
    assert not os.listdir(tmp_path)


@pytest.mark.slow  # a subprocess importing mmdet, or a Runner: seconds each
def test_cli(tmp_path):
    out = tmp_path / 'cli'
    cmd = [sys.executable, TOOL, '--out', str(out), '--class-set', 'other_shapes',
           '--num-train', '4', '--num-val', '2', '--num-test', '2']
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert 'other_shapes, seed 0, 64 px, written' in result.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert 'already up to date' in again.stdout
    bad = subprocess.run(cmd[:-1] + ['0'], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and 'num_test must be >= 1' in bad.stderr
    with open(out / 'shapes_manifest.json') as f:
        manifest = json.load(f)
    assert manifest['complete'] and manifest['params']['class_set'] == 'other_shapes'
    for rel, digest in manifest['files'].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
