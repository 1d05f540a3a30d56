"""RepeatToMinLength: a small training set repeated to a least length, found through by the code
that points a config at a subset."""
import pytest
from mmdet.registry import DATASETS
from mmengine.registry import init_default_scope

import mmdet_isal  # noqa: F401  (registers the wrapper)
from mmdet_isal.active.subsets import pool_dataset_cfg
from mmdet_isal.detection.data import base_dataset_cfg


def _wrapped(root, min_length):
    return dict(type='RepeatToMinLength', min_length=min_length,
                dataset=dict(type='CocoDataset', data_root=root,
                             ann_file='annotations/instances_train.json',
                             data_prefix=dict(img='images/'), pipeline=[]))


@pytest.mark.parametrize('min_length, times', [(1, 1), (24, 1), (25, 2), (50, 3), (72, 3)])
def test_the_set_is_repeated_a_whole_number_of_times_to_at_least_min_length(
        shapes_coco, min_length, times):
    init_default_scope('mmdet')
    dataset = DATASETS.build(_wrapped(shapes_coco, min_length))
    assert len(dataset.dataset) == 24  # the fixture's pool
    assert dataset.times == times and len(dataset) == 24 * times >= min_length
    assert dataset[24 * times - 1]['img_id'] == dataset.dataset[23]['img_id']


def test_the_subset_code_reaches_the_annotation_file_inside_it(shapes_coco):
    loader = dict(dataset=_wrapped(shapes_coco, 100))
    assert base_dataset_cfg(loader, 'train')['ann_file'] == 'annotations/instances_train.json'
    pool_dataset_cfg(loader['dataset'])['ann_file'] = 'step_0/labeled.json'
    assert loader['dataset']['dataset']['ann_file'] == 'step_0/labeled.json'


@pytest.mark.parametrize('bad', [0, True, 2.5])
def test_min_length_must_be_a_positive_integer(shapes_coco, bad):
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match=r'^RepeatToMinLength: min_length must be an integer'):
        DATASETS.build(_wrapped(shapes_coco, bad))
