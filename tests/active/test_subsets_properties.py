"""Property-based tests (hypothesis) of subset rebuilding: for random pools and random
selections, the labeled and unlabeled files written for a step partition the pool, keep its
order, ids and top-level keys, pass the annotation checks, and read back (COCO and VOC) to the
same images and box counts; the ledger round-trips through JSON."""
import json
import os.path as osp
import tempfile
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO

from mmdet_isal.active import PoolLedger
from mmdet_isal.active.config import Budget
from mmdet_isal.active.subsets import CocoPool, VocPool, apply_budget
from mmdet_isal.datasets.validate import check_coco

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def coco_pools(draw):
    """A valid COCO pool: unique (non-contiguous) image and annotation ids, boxes inside their
    images, annotations in an order unrelated to the images', extra top-level keys."""
    ids = draw(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=25, unique=True))
    cats = draw(st.lists(st.integers(1, 90), min_size=1, max_size=5, unique=True))
    images, annotations = [], []
    next_ann = draw(st.integers(0, 10 ** 6))
    for i in ids:
        w, h = draw(st.integers(2, 64)), draw(st.integers(2, 64))
        images.append(dict(id=i, file_name=f'img_{i}.png', width=w, height=h))
        for _ in range(draw(st.integers(0, 4))):
            x, y = draw(st.integers(0, w - 2)), draw(st.integers(0, h - 2))
            bw, bh = draw(st.integers(1, w - x)), draw(st.integers(1, h - y))
            category = draw(st.sampled_from(cats))
            annotations.append(dict(id=next_ann, image_id=i, category_id=category,
                                    bbox=[x, y, bw, bh], area=bw * bh, iscrowd=0))
            next_ann += draw(st.integers(1, 3))
    annotations = draw(st.permutations(annotations))
    return dict(info=dict(description='random pool'), licenses=[dict(id=1, name='x')],
                images=images, annotations=list(annotations),
                categories=[dict(id=c, name=f'class_{c}') for c in cats])


def selections(ids):
    return st.lists(st.sampled_from(ids), unique=True) if ids else st.just([])


@SETTINGS
@given(data=st.data(), coco=coco_pools())
def test_coco_subsets_partition_the_pool_and_round_trip(data, coco):
    with tempfile.TemporaryDirectory() as tmp:
        pool_file = osp.join(tmp, 'pool.json')
        with open(pool_file, 'w') as f:
            json.dump(coco, f)
        pool = CocoPool(pool_file)
        chosen = data.draw(selections(pool.image_ids))
        labeled_file, unlabeled_file = pool.write_split(chosen, osp.join(tmp, 'step'))
        subsets = [json.load(open(p)) for p in (labeled_file, unlabeled_file)]

        pool_order = [im['id'] for im in coco['images']]
        for subset, keep in zip(subsets, (True, False)):
            # pool order, the right side of the split, everything else of the pool file kept
            assert [im['id'] for im in subset['images']] == \
                [i for i in pool_order if (i in chosen) == keep]
            assert {k: v for k, v in subset.items() if k not in ('images', 'annotations')} == \
                {k: v for k, v in coco.items() if k not in ('images', 'annotations')}
            assert subset['annotations'] == [a for a in coco['annotations']
                                             if (a['image_id'] in chosen) == keep]
            if subset['images']:
                assert check_coco(subset, 'subset') == []
                back = CocoPool(labeled_file if keep else unlabeled_file)
                assert back.num_boxes == {i: pool.num_boxes[i] for i in back.image_ids}
                assert back.box_classes == {i: pool.box_classes[i] for i in back.image_ids}
                api = COCO(labeled_file if keep else unlabeled_file)
                assert sorted(api.getImgIds()) == sorted(i for i in pool_order
                                                         if (i in chosen) == keep)
        # a partition: every image and annotation once
        assert sorted(im['id'] for s in subsets for im in s['images']) == sorted(pool_order)
        assert sorted(a['id'] for s in subsets for a in s['annotations']) == \
            sorted(a['id'] for a in coco['annotations'])
        assert json.load(open(pool_file)) == coco  # the pool file is never modified


VOC_ID = st.text(alphabet='abcdefghijklmnopqrstuvwxyz0123456789_', min_size=1, max_size=12)


@st.composite
def voc_pools(draw):
    ids = draw(st.lists(VOC_ID, min_size=1, max_size=20, unique=True))
    classes = ['cat', 'dog', 'bird']
    objects = {i: draw(st.lists(st.sampled_from(classes), max_size=4)) for i in ids}
    return ids, objects, classes


def write_voc(root, ids, objects):
    listing = osp.join(root, 'train.txt')
    with open(listing, 'w') as f:
        f.write(''.join(f'{i}\n' for i in ids))
    for i in ids:
        ann = ET.Element('annotation')
        size = ET.SubElement(ann, 'size')
        ET.SubElement(size, 'width').text = '50'
        ET.SubElement(size, 'height').text = '40'
        for name in objects[i]:
            obj = ET.SubElement(ann, 'object')
            ET.SubElement(obj, 'name').text = name
            ET.SubElement(obj, 'difficult').text = '0'
            box = ET.SubElement(obj, 'bndbox')
            for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), (1, 2, 30, 40)):
                ET.SubElement(box, tag).text = str(value)
        ET.ElementTree(ann).write(osp.join(root, f'{i}.xml'))
    return listing


@SETTINGS
@given(data=st.data(), voc=voc_pools())
def test_voc_subsets_partition_the_pool_and_round_trip(data, voc):
    ids, objects, classes = voc
    with tempfile.TemporaryDirectory() as tmp:
        listing = write_voc(tmp, ids, objects)
        pool = VocPool(listing, tmp, classes)
        assert pool.image_ids == ids
        assert pool.num_boxes == {i: len(objects[i]) for i in ids}
        chosen = data.draw(selections(ids))
        labeled, unlabeled = pool.write_split(chosen, osp.join(tmp, 'step'))
        for path, keep in ((labeled, True), (unlabeled, False)):
            expected = [i for i in ids if (i in chosen) == keep]
            assert open(path).read().split() == expected
            if expected:
                back = VocPool(path, tmp, classes)
                assert back.image_ids == expected
                assert back.num_boxes == {i: pool.num_boxes[i] for i in expected}
        assert open(listing).read() == ''.join(f'{i}\n' for i in ids)


@SETTINGS
@given(data=st.data(), coco=coco_pools())
def test_steps_of_a_ledger_grow_the_labeled_set_and_round_trip(data, coco):
    """Random labeling steps: step k's labeled set is the union of steps 0..k, disjoint from its
    unlabeled set, a budget selects from the unlabeled set only, and the ledger round-trips
    through JSON with ids of their type."""
    ids = [im['id'] for im in coco['images']]
    counts = {i: sum(a['image_id'] == i for a in coco['annotations']) for i in ids}
    ledger = PoolLedger(ids, counts, 'random', 0)
    step, left = 0, list(ids)
    while left:
        order = data.draw(st.permutations(left))
        amount = data.draw(st.integers(1, len(left)))
        chosen = apply_budget(order, Budget('images', amount), counts)
        assert chosen == list(order[:amount])
        ledger.label(chosen, step)
        left = [i for i in left if i not in chosen]
        labeled, unlabeled = ledger.labeled_ids(step), ledger.unlabeled_ids(step)
        assert set(labeled) | set(unlabeled) == set(ids) and not set(labeled) & set(unlabeled)
        assert labeled == [i for i in ids if i not in left]  # pool order
        assert ledger.selected_at(step) == [i for i in ids if i in chosen]
        if step:
            assert set(ledger.labeled_ids(step - 1)) < set(labeled)
        step += 1
    back = PoolLedger([], {}, None, 0)
    back.load_state_dict(json.loads(json.dumps(ledger.state_dict(), allow_nan=False)))
    assert back.images == ledger.images and back.strategy == 'random'
