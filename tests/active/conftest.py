"""Fixtures of the active-learning tests: tiny synthetic pools (the shapes generator)."""
import pytest

from mmdet_isal.datasets import make_shapes_dataset


@pytest.fixture(scope='session')
def shapes_coco(tmp_path_factory):
    """A 40-image COCO pool and a 10-image val set of 128-px synthetic shapes."""
    out = tmp_path_factory.mktemp('shapes_coco')
    make_shapes_dataset(out, seed=0, fmt='coco', num_train=40, num_val=10)
    return out


@pytest.fixture(scope='session')
def shapes_voc(tmp_path_factory):
    """The same pool in VOC layout (``VOC2012/...``)."""
    out = tmp_path_factory.mktemp('shapes_voc')
    make_shapes_dataset(out, seed=0, fmt='voc', num_train=40, num_val=10)
    return out
