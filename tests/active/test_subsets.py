"""Pools, labeled/unlabeled subsets and budgets."""
import json
import os

import pytest

from mmdet_isal.active import Budget, CocoPool, VocPool, apply_budget, build_pool
from mmdet_isal.strategies import random_order
from mmdet_isal.utils.rng import Stream


def coco_dataset_cfg(root):
    return dict(type='CocoDataset', data_root=str(root),
                ann_file='annotations/instances_train.json', data_prefix=dict(img='images/'))


def voc_dataset_cfg(root):
    return dict(type='VOCDataset', data_root=str(root),
                ann_file='VOC2012/ImageSets/Main/train.txt',
                data_prefix=dict(sub_data_root='VOC2012/'))


def test_coco_split_invariants(pool_coco, tmp_path):
    pool = build_pool(dict(type='RepeatDataset', times=2, dataset=coco_dataset_cfg(pool_coco)))
    assert isinstance(pool, CocoPool) and len(pool) == 40
    with open(pool.ann_file) as f:
        original = json.load(f)
    before = os.stat(pool.ann_file).st_mtime_ns
    labeled_ids = random_order(pool.image_ids, 3, Stream.INITIAL_SET)[:13]
    lab_file, unl_file = pool.write_split(labeled_ids, tmp_path / 'step_0')
    assert os.path.basename(lab_file) == 'labeled.json'
    assert os.path.basename(unl_file) == 'unlabeled.json'
    lab, unl = (json.load(open(p)) for p in (lab_file, unl_file))

    lab_imgs = [im['id'] for im in lab['images']]
    unl_imgs = [im['id'] for im in unl['images']]
    assert set(lab_imgs) == set(labeled_ids)
    assert set(lab_imgs).isdisjoint(unl_imgs)
    assert sorted(lab_imgs + unl_imgs) == sorted(pool.image_ids)
    # every image and annotation kept as it was, ids included, in file order
    for subset in (lab, unl):
        assert subset['categories'] == original['categories']
        assert set(subset) == set(original)
        ids = {im['id'] for im in subset['images']}
        assert subset['images'] == [im for im in original['images'] if im['id'] in ids]
        assert subset['annotations'] == [a for a in original['annotations']
                                         if a['image_id'] in ids]
    assert len(lab['annotations']) == pool.boxes_of(labeled_ids)
    assert len(lab['annotations']) + len(unl['annotations']) == len(original['annotations'])
    assert os.stat(pool.ann_file).st_mtime_ns == before
    # loads with pycocotools
    from pycocotools.coco import COCO
    assert len(COCO(lab_file).getImgIds()) == 13


def test_voc_split_invariants(pool_voc, tmp_path):
    pool = build_pool(voc_dataset_cfg(pool_voc))
    assert isinstance(pool, VocPool) and len(pool) == 40
    assert all(isinstance(i, str) for i in pool.image_ids)
    labeled_ids = pool.image_ids[5:17]
    lab_file, unl_file = pool.write_split(labeled_ids, tmp_path)
    lab = open(lab_file).read().split()
    unl = open(unl_file).read().split()
    assert lab == pool.image_ids[5:17]
    assert unl == pool.image_ids[:5] + pool.image_ids[17:]
    assert set(lab) | set(unl) == set(pool.image_ids) and not set(lab) & set(unl)
    assert pool.boxes_of(pool.image_ids) == 221  # what the generator reported for this pool


def test_box_counts_agree_between_formats(pool_coco, pool_voc):
    coco = build_pool(coco_dataset_cfg(pool_coco))
    voc = build_pool(voc_dataset_cfg(pool_voc))
    assert sorted(coco.num_boxes.values()) == sorted(voc.num_boxes.values())


def test_image_budget_is_exact():
    order = list(range(100))
    boxes = {i: i % 7 for i in order}
    assert apply_budget(order, Budget('images', 17), boxes) == order[:17]
    with pytest.raises(ValueError, match=r'active_learning.initial=\{.images.: 101\}'):
        apply_budget(order, Budget('images', 101), boxes, what='active_learning.initial')


@pytest.mark.parametrize('amount', [1, 5, 12, 40, 97, 250])
def test_box_budget_exceeded_by_at_most_one_image(amount):
    order = random_order(list(range(80)), 1, Stream.RANDOM_STRATEGY)
    boxes = {i: (i * 5) % 11 for i in order}  # includes images without boxes
    chosen = apply_budget(order, Budget('boxes', amount), boxes)
    total = sum(boxes[i] for i in chosen)
    assert chosen == order[:len(chosen)]
    assert total >= amount
    assert total - boxes[chosen[-1]] < amount  # without the last image it was short
    assert total - amount < max(boxes.values())


def test_box_budget_larger_than_pool():
    with pytest.raises(ValueError, match='larger than what is left'):
        apply_budget([1, 2], Budget('boxes', 10), {1: 3, 2: 4})


def test_missing_pool_file_names_it(tmp_path):
    cfg = dict(type='CocoDataset', data_root=str(tmp_path), ann_file='nope.json')
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'nope.json')):
        build_pool(cfg)


def test_concat_pool_refused(pool_coco):
    cfg = dict(type='ConcatDataset', datasets=[coco_dataset_cfg(pool_coco)] * 2)
    with pytest.raises(ValueError, match='single annotation file'):
        build_pool(cfg)


def test_budget_parsing():
    assert Budget.from_dict(dict(boxes=5), 'budget') == Budget('boxes', 5)
    for bad in (dict(images=0), dict(images=1, boxes=2), dict(imgs=3), 5, dict(images=2.5)):
        with pytest.raises(ValueError, match='active_learning.budget'):
            Budget.from_dict(bad, 'budget')
