"""Shared fixtures: the synthetic data set at test size and the tiny configs pointed at it."""
import contextlib
import os.path as osp
import uuid

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# One thread: torch's OpenMP threads spin-wait and slow to a crawl when another process
# (a data loader worker, a second job) holds the other core.
torch.set_num_threads(1)
# mmengine keeps one visualizer per name (mmdet's configs name it 'visualizer') and one logger
# and message hub per experiment name (the config name and a timestamp in seconds): Runners of
# two tests would share a visualizer whose save directory is the first test's tmp_path, gone
# once that test removed it. Each toy config gets names of its own (random, not counted: some
# tests import this module a second time).


@pytest.fixture(autouse=True, scope='session')
def _decode_cache(tmp_path_factory):
    """The image checks' decode cache in a temporary directory, not the user's ~/.cache."""
    import os
    from mmdet_isal.datasets.images import CACHE_ENV
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp('decode_cache'))
    yield
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


@pytest.fixture(scope='session')
def shapes_coco(tmp_path_factory):
    """A small synthetic set in COCO layout: 24 pool images, 8 val images, 64x64 pixels.

    The tiny configs resize to 128, so boxes must be scaled by 2 on the way in: a pipeline
    that loads boxes in original coordinates shows up in the tests.
    """
    from mmdet_isal.datasets import make_shapes_dataset
    out = tmp_path_factory.mktemp('shapes_coco')
    make_shapes_dataset(out, seed=0, num_train=24, num_val=8, image_size=64)
    return str(out)


def toy_config(name, data_root, **overrides):
    """``configs/toy/<name>.py`` on ``data_root``, light enough for a test.

    One epoch, no worker processes, batch 4, no validation during training, logging every
    iteration, an experiment and visualizer name of its own (mmengine shares both by name);
    evaluation on the val split (also for the configs that evaluate on a held-out test split).
    ``overrides`` are merged last (mmengine ``merge_from_dict`` keys).
    """
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'toy', f'{name}.py'))
    data_root = data_root.rstrip('/') + '/'
    options = {
        'train_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.data_root': data_root,
        'test_dataloader.dataset.data_root': data_root,
        'val_dataloader.dataset.ann_file': 'annotations/instances_val.json',
        'test_dataloader.dataset.ann_file': 'annotations/instances_val.json',
        'val_evaluator.ann_file': data_root + 'annotations/instances_val.json',
        'test_evaluator.ann_file': data_root + 'annotations/instances_val.json',
        'train_dataloader.batch_size': 4,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
        'test_dataloader.num_workers': 0,
        'test_dataloader.persistent_workers': False,
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
        'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=False)],
        'experiment_name': f'{name}_test_{uuid.uuid4().hex[:12]}',
        'visualizer.name': f'visualizer_{uuid.uuid4().hex[:12]}',
    }
    options.update(overrides)
    cfg.merge_from_dict(options)
    return cfg


@pytest.fixture
def toy_cfg():
    return toy_config


@contextlib.contextmanager
def mmdet_training_mode(model):
    """``model`` as mmdet computes its training loss, except that its norm and dropout layers
    stay in eval mode (no batch statistics, nothing random): the reference the per-image losses
    are checked against. Back in eval mode afterwards."""
    model.train()
    for m in model.modules():
        if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm,
                          torch.nn.Dropout)):
            m.eval()
    try:
        yield model
    finally:
        model.eval()
