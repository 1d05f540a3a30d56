"""The synthetic shapes data set: layout, determinism, the properties issue 2 asks for, the CLI,
and loading with pycocotools and mmdet's CocoDataset / VOCDataset. The test split:
test_shapes_test_split.py."""
import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from mmdet_isal.datasets import SHAPES_CLASSES, make_shapes_dataset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, 'tools', 'make_toy_dataset.py')
SMALL = dict(num_train=40, num_val=10)


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_coco')
    make_shapes_dataset(root, seed=0, **SMALL)
    return str(root)


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_voc')
    make_shapes_dataset(root, seed=0, fmt='voc', **SMALL)
    return str(root)


@pytest.fixture(scope='module')
def pool(tmp_path_factory):
    """A few hundred train images, enough for the distribution properties."""
    root = tmp_path_factory.mktemp('shapes_pool')
    summary = make_shapes_dataset(root, seed=0, num_train=300, num_val=1)
    with open(os.path.join(root, 'annotations', 'instances_train.json')) as f:
        return str(root), summary, json.load(f)


def test_coco_layout_loads_with_pycocotools(coco_root):
    assert sorted(os.listdir(coco_root)) == ['annotations', 'images', 'shapes_manifest.json']
    for split, num in (('train', 40), ('val', 10)):
        coco = COCO(os.path.join(coco_root, 'annotations', f'instances_{split}.json'))
        assert sorted(coco.getImgIds()) == list(range(1, num + 1))
        cats = coco.loadCats(coco.getCatIds())
        assert [(c['id'], c['name']) for c in cats] == [
            (i + 1, name) for i, name in enumerate(SHAPES_CLASSES)]
        ann_ids = coco.getAnnIds()
        assert sorted(ann_ids) == list(range(1, len(ann_ids) + 1))
        for img in coco.loadImgs(coco.getImgIds()):
            path = os.path.join(coco_root, 'images', img['file_name'])
            with Image.open(path) as im:
                assert im.format == 'PNG' and im.mode == 'RGB'
                assert im.size == (img['width'], img['height']) == (128, 128)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img['id'])):
                x, y, w, h = ann['bbox']
                assert ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= len(SHAPES_CLASSES)
                assert w >= 1 and h >= 1 and 0 < ann['area'] <= w * h
                assert x >= 0 and y >= 0 and x + w <= img['width'] and y + h <= img['height']
        assert 'info' in coco.dataset


def test_voc_layout(voc_root):
    voc = os.path.join(voc_root, 'VOC2012')
    assert sorted(os.listdir(voc)) == ['Annotations', 'ImageSets', 'JPEGImages']
    with open(os.path.join(voc, 'ImageSets', 'Main', 'train.txt')) as f:
        ids = f.read().split()
    assert len(ids) == 40 and ids[0] == 'train_000001'
    with Image.open(os.path.join(voc, 'JPEGImages', f'{ids[0]}.jpg')) as im:
        assert im.format == 'JPEG' and im.size == (128, 128)


def test_same_seed_same_bytes_other_seed_other_bytes(coco_root, tmp_path, file_hashes):
    make_shapes_dataset(tmp_path / 'again', seed=0, **SMALL)
    make_shapes_dataset(tmp_path / 'other', seed=1, **SMALL)
    first = file_hashes(coco_root)
    assert len(first) == 40 + 10 + 2 + 1
    assert file_hashes(tmp_path / 'again') == first
    other = file_hashes(tmp_path / 'other')
    assert other.keys() == first.keys()
    differ = [p for p in first if p != 'shapes_manifest.json' and other[p] != first[p]]
    assert len(differ) == len(first) - 1


def test_image_does_not_depend_on_split_size(coco_root, tmp_path, file_hashes):
    # Image i is a function of (seed, split, i): a smaller pool is a prefix of a larger one.
    make_shapes_dataset(tmp_path, seed=0, num_train=5, num_val=2)
    small, big = file_hashes(tmp_path), file_hashes(coco_root)
    for name in ('train_000001.png', 'train_000005.png', 'val_000002.png'):
        assert small[f'images/{name}'] == big[f'images/{name}']


@pytest.mark.slow
def test_pool_properties(pool):
    _, summary, coco = pool
    counts = Counter(a['category_id'] for a in coco['annotations'])
    assert len(SHAPES_CLASSES) >= 6 and len(counts) == len(SHAPES_CLASSES)
    assert max(counts.values()) >= 5 * min(counts.values())
    per_image = Counter(a['image_id'] for a in coco['annotations'])
    num_objects = np.array([per_image.get(img['id'], 0) for img in coco['images']])
    assert (num_objects == 0).sum() >= 5
    assert num_objects.max() >= 15
    # Heavy tail: the mean well above the median, and a visible share of crowded images.
    assert num_objects.mean() > 1.3 * np.median(num_objects)
    assert (num_objects >= 15).mean() >= 0.05
    side = np.array([max(a['bbox'][2:]) for a in coco['annotations']])
    assert (side <= 8).sum() >= 20 and (side >= 60).sum() >= 20
    # Occlusion: some boxes of one image overlap.
    assert _overlapping_pairs(coco) >= 20
    scenes = Counter(img['scene'] for img in coco['images'])
    assert set(scenes) == {'empty', 'sparse', 'typical', 'cluttered', 'duplicate'}
    for img in coco['images']:
        if img['scene'] == 'duplicate':
            assert 1 <= img['duplicate_of'] < img['id']
    train = summary['splits']['train']
    assert train['objects'] == len(coco['annotations'])
    assert train['class_counts'] == {
        name: counts[i + 1] for i, name in enumerate(SHAPES_CLASSES)}


def test_colour_does_not_tell_the_class(pool):
    # The pixel at the centre of a mostly visible solid shape is the shape's colour (plus
    # noise); per class, its mean should be that of uniform RGB, 127.5 in each channel.
    root, _, coco = pool
    colours = {}
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        name = SHAPES_CLASSES[ann['category_id'] - 1]
        if name != 'ring' and w >= 8 and ann['area'] >= 0.5 * w * h:
            colours.setdefault(name, []).append((ann['image_id'], x + w // 2, y + h // 2))
    images = {}
    for name, points in colours.items():
        if len(points) < 100:
            continue
        values = []
        for image_id, x, y in points:
            if image_id not in images:
                with Image.open(os.path.join(root, 'images', f'train_{image_id:06d}.png')) as im:
                    images[image_id] = np.asarray(im)
            values.append(images[image_id][y, x])
        assert np.allclose(np.mean(values, 0), 127.5, atol=25), name


def _overlapping_pairs(coco):
    boxes = {}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        boxes.setdefault(a['image_id'], []).append((x, y, x + w, y + h))
    pairs = 0
    for bs in boxes.values():
        b = np.array(bs)
        ix = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
        iy = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
        pairs += int(np.triu((ix > 0) & (iy > 0), 1).sum())
    return pairs


def test_rerun_same_settings_checks_and_repairs(tmp_path, file_hashes):
    first = make_shapes_dataset(tmp_path, seed=3, num_train=4, num_val=2)
    assert first['status'] == 'written'
    hashes = file_hashes(tmp_path)
    assert make_shapes_dataset(tmp_path, seed=3, num_train=4, num_val=2)['status'] == \
        'up-to-date'
    os.remove(tmp_path / 'images' / 'train_000002.png')
    assert make_shapes_dataset(tmp_path, seed=3, num_train=4, num_val=2)['status'] == \
        'written'
    assert file_hashes(tmp_path) == hashes


def test_rerun_completes_an_interrupted_run(tmp_path, monkeypatch, file_hashes):
    from mmdet_isal.datasets.shapes import writers

    def interrupt(self, split):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(writers.CocoWriter, 'finish_split', interrupt)
        with pytest.raises(KeyboardInterrupt):
            make_shapes_dataset(tmp_path, seed=np.int64(4), num_train=3, num_val=1)
    assert not os.path.exists(tmp_path / 'annotations' / 'instances_train.json')
    assert make_shapes_dataset(tmp_path, seed=4, num_train=3, num_val=1)['status'] == 'written'
    make_shapes_dataset(tmp_path / 'fresh', seed=4, num_train=3, num_val=1)
    fresh = file_hashes(tmp_path / 'fresh')
    assert {k: v for k, v in file_hashes(tmp_path).items() if not k.startswith('fresh')} == fresh


def test_refuses_foreign_or_different_folder(tmp_path, file_hashes):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not written by this generator'):
        make_shapes_dataset(tmp_path, num_train=2, num_val=1)
    assert os.listdir(tmp_path) == ['notes.txt']

    made = tmp_path / 'made'
    make_shapes_dataset(made, seed=0, num_train=2, num_val=1)
    hashes = file_hashes(made)
    with pytest.raises(FileExistsError, match='seed 0 there, 1 asked'):
        make_shapes_dataset(made, seed=1, num_train=2, num_val=1)
    assert file_hashes(made) == hashes


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_train=0), 'num_train must be >= 1, got 0'),
    (dict(num_val=-3), 'num_val must be >= 1, got -3'),
    (dict(num_test=-1), 'num_test must be >= 0, got -1'),
    (dict(num_test=10**6), r'num_test must be <= 999999 \(file names number images with six'),
    (dict(num_train=10**6), 'num_train must be <= 999999'),
    (dict(num_test=True), 'num_test must be an integer, got True'),
    (dict(num_train=2.5), 'num_train must be an integer'),
    (dict(seed=-1), 'seed must be >= 0'),
    (dict(image_size=16), 'image_size must be >= 32'),
    (dict(fmt='yolo'), "fmt must be 'coco' or 'voc'"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_shapes_dataset(tmp_path / 'out', **kwargs)
    assert not os.path.exists(tmp_path / 'out')


def _load_tool():
    spec = importlib.util.spec_from_file_location('make_toy_dataset', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('args, message', [
    (['--num-train', '0'], 'num_train must be >= 1, got 0'),
    (['--num-val', 'ten'], "argument --num-val: invalid int value: 'ten'"),
    (['--num-test', '-2'], 'num_test must be >= 0, got -2'),
    (['--format', 'yolo'], 'invalid choice'),
])
def test_cli_refuses_bad_arguments(tmp_path, capsys, args, message):
    tool = _load_tool()
    with pytest.raises(SystemExit) as exc:
        tool.main(['--out', str(tmp_path / 'out')] + args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'out')


def test_cli_writes(tmp_path, capsys):
    out = tmp_path / 'shapes'
    assert _load_tool().main(['--out', str(out), '--seed', '2', '--num-train', '3',
                              '--num-val', '1', '--num-test', '2', '--image-size', '64']) == 0
    printed = capsys.readouterr().out
    assert 'train: 3 images' in printed and 'test: 2 images' in printed
    for name in ('train_000001.png', 'test_000002.png'):
        with Image.open(out / 'images' / name) as im:
            assert im.size == (64, 64)
    assert not os.path.exists(out / 'images' / 'test_000003.png')


@pytest.mark.slow
def test_cli_adds_the_test_split(tmp_path, capsys, file_hashes):
    # A set written without a test split (as before the test split existed), then the CLI's
    # default --num-test: the test split is added, nothing else changes.
    out = tmp_path / 'shapes'
    args = ['--out', str(out), '--num-train', '3', '--num-val', '1', '--image-size', '64']
    assert _load_tool().main(args + ['--num-test', '0']) == 0
    before = file_hashes(out)
    assert _load_tool().main(args) == 0
    assert 'test split added, train and val kept' in capsys.readouterr().out
    after = file_hashes(out)
    added = sorted(set(after) - set(before))
    assert len(added) == 500 + 1 and added[0] == 'annotations/instances_test.json'
    assert {k: after[k] for k in before if k != 'shapes_manifest.json'} == {
        k: v for k, v in before.items() if k != 'shapes_manifest.json'}
    assert _load_tool().main(args) == 0
    assert 'already up to date' in capsys.readouterr().out


@pytest.mark.slow  # a subprocess importing mmdet, or a Runner: seconds each
def test_cli_command_line(tmp_path):
    """The real command line: a clear message and no traceback for a user mistake."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    (tmp_path / 'notes.txt').write_text('mine')
    bad = subprocess.run(
        [sys.executable, TOOL, '--out', str(tmp_path), '--num-train', '3', '--num-val', '1'],
        capture_output=True, text=True, env=env, cwd=REPO)
    assert bad.returncode == 2
    assert 'Traceback' not in bad.stderr
    assert f'error: {tmp_path} is not empty and was not written by this generator' in bad.stderr
    assert os.listdir(tmp_path) == ['notes.txt']


def test_generator_imports_no_mmdet_or_torch():
    # The subpackage itself: its parents are stand-ins, so that the package's own __init__s
    # (which import mmdet) do not run.
    package = os.path.join(REPO, 'mmdet_isal')
    code = (
        'import sys, types\n'
        f'for name, path in (("mmdet_isal", {package!r}),\n'
        f'                   ("mmdet_isal.datasets", {os.path.join(package, "datasets")!r})):\n'
        '    sys.modules[name] = types.ModuleType(name)\n'
        '    sys.modules[name].__path__ = [path]\n'
        'from mmdet_isal.datasets.shapes import make_shapes_dataset\n'
        'import mmdet_isal.datasets.shapes.generate\n'
        'print(sorted(m for m in ("torch", "mmdet", "mmengine", "mmcv") if m in sys.modules))\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'


# mmdet loaders last: they need mmcv.


@pytest.fixture(scope='module')
def mmdet_datasets():
    from mmdet.utils import register_all_modules
    register_all_modules()
    from mmdet.datasets import CocoDataset, VOCDataset
    return CocoDataset, VOCDataset


PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]


def test_loads_with_mmdet_coco_dataset(coco_root, mmdet_datasets):
    coco_dataset = mmdet_datasets[0]
    dataset = coco_dataset(
        data_root=coco_root, ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'), metainfo=dict(classes=SHAPES_CLASSES),
        pipeline=PIPELINE, test_mode=True, lazy_init=False)
    assert len(dataset) == 40
    assert dataset.metainfo['classes'] == SHAPES_CLASSES
    with open(os.path.join(coco_root, 'annotations', 'instances_train.json')) as f:
        coco = json.load(f)
    for i in (0, 1, 39):
        info = dataset.get_data_info(i)
        anns = [a for a in coco['annotations'] if a['image_id'] == info['img_id']]
        assert [inst['bbox'] for inst in info['instances']] == [
            [x, y, x + w, y + h] for x, y, w, h in (a['bbox'] for a in anns)]
        assert [inst['bbox_label'] for inst in info['instances']] == [
            a['category_id'] - 1 for a in anns]
        sample = dataset[i]
        assert sample['img'].shape == (128, 128, 3)
        assert sample['gt_bboxes'].tensor.shape == (len(anns), 4)


def test_loads_with_mmdet_voc_dataset(voc_root, coco_root, mmdet_datasets):
    voc_dataset = mmdet_datasets[1]
    dataset = voc_dataset(
        data_root=voc_root, ann_file='VOC2012/ImageSets/Main/train.txt',
        data_prefix=dict(sub_data_root='VOC2012/'), metainfo=dict(classes=SHAPES_CLASSES),
        pipeline=PIPELINE, test_mode=True, lazy_init=False)
    assert len(dataset) == 40
    assert dataset.metainfo['classes'] == SHAPES_CLASSES
    assert dataset.metainfo['dataset_type'] == 'VOC2012'
    with open(os.path.join(coco_root, 'annotations', 'instances_train.json')) as f:
        coco = json.load(f)
    # Same seed, same scenes: the VOC boxes are the COCO boxes in mmdet's VOC convention
    # (1-based inclusive corners, minus one: the far edge is the last pixel, not past it).
    for i in range(40):
        info = dataset.get_data_info(i)
        anns = [a for a in coco['annotations'] if a['image_id'] == i + 1]
        assert info['img_id'] == f'train_{i + 1:06d}'
        assert [inst['bbox'] for inst in info['instances']] == [
            [x, y, x + w - 1, y + h - 1] for x, y, w, h in (a['bbox'] for a in anns)]
        assert [inst['bbox_label'] for inst in info['instances']] == [
            a['category_id'] - 1 for a in anns]
        assert not any(inst['ignore_flag'] for inst in info['instances'])
    sample = dataset[0]
    assert sample['img'].shape == (128, 128, 3)
