"""Fixtures of the active-learning tests: tiny synthetic pools (the shapes generator), configs
on them, and loops with a fake trainer."""
import copy
import functools
import os.path as osp

import pytest

from mmdet_isal.datasets import make_shapes_dataset


@pytest.fixture(scope='session')
def pool_coco(tmp_path_factory):
    """A 40-image COCO pool and a 10-image val set of 128-px synthetic shapes."""
    out = tmp_path_factory.mktemp('pool_coco')
    make_shapes_dataset(out, seed=0, fmt='coco', num_train=40, num_val=10)
    return out


@pytest.fixture(scope='session')
def pool_voc(tmp_path_factory):
    """The same pool in VOC layout (``VOC2012/...``)."""
    out = tmp_path_factory.mktemp('pool_voc')
    make_shapes_dataset(out, seed=0, fmt='voc', num_train=40, num_val=10)
    return out


#: (width, height) in pixels of the report's plot: three panels and the legend, 15.6 x 4.6
#: inches at 110 dpi
PLOT_SIZE = (1716, 506)


def png_size(path):
    """(width, height) of a png, from its header."""
    with open(path, 'rb') as f:
        head = f.read(24)
    assert head[:8] == b'\x89PNG\r\n\x1a\n'
    return int.from_bytes(head[16:20], 'big'), int.from_bytes(head[20:24], 'big')


@functools.lru_cache(maxsize=None)
def _toy_config(detector):
    """``configs/toy/<detector>.py``, read once (reading mmdet's base configs takes a second)."""
    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    return Config.fromfile(osp.join(repo, 'configs', 'toy', f'{detector}.py'))


def al_config(data_root, work_dir, fmt='coco', detector='fcos_shapes', **active_learning):
    """``configs/toy/<detector>.py`` on a test pool with an active_learning block, light enough
    for a test: 2 epochs (a checkpoint after each), batch 4, no worker processes, constant lr.

    ``fmt='voc'`` points train and val at the VOC layout (VOCDataset, VOCMetric). Evaluation
    is on the test pool's val split, and ISAL's reference the default (the val set), also for
    the configs that evaluate on a held-out test split (the test pools have none).
    """
    cfg = copy.deepcopy(_toy_config(detector))
    root = str(data_root).rstrip('/') + '/'
    options = {
        'work_dir': str(work_dir),
        'train_dataloader.batch_size': 4,
        'train_cfg.max_epochs': 2,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
        'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=False)],
        'active_learning': dict(dict(strategy='random', initial=dict(images=8),
                                     budget=dict(images=6), steps=2, seed=0, reference=None),
                                **active_learning),
    }
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.num_workers'] = 0
        options[f'{split}_dataloader.persistent_workers'] = False
        options[f'{split}_dataloader.dataset.data_root'] = root
    if fmt == 'coco':
        for split in ('val', 'test'):
            options[f'{split}_dataloader.dataset.ann_file'] = 'annotations/instances_val.json'
            options[f'{split}_evaluator.ann_file'] = root + 'annotations/instances_val.json'
    else:
        for split, ann in (('train', 'train'), ('val', 'val'), ('test', 'val')):
            options[f'{split}_dataloader.dataset.type'] = 'VOCDataset'
            options[f'{split}_dataloader.dataset.ann_file'] = f'VOC2012/ImageSets/Main/{ann}.txt'
            options[f'{split}_dataloader.dataset.data_prefix'] = dict(
                sub_data_root='VOC2012/', _delete_=True)
            if split != 'train':
                options[f'{split}_evaluator'] = dict(type='VOCMetric', metric='mAP',
                                                     eval_mode='area', _delete_=True)
    cfg.merge_from_dict(options)
    return cfg


@pytest.fixture(scope='session')
def al_cfg():
    """:func:`al_config`, as a fixture."""
    return al_config


@pytest.fixture(scope='session')
def fake_strategy():
    """The fake strategy of :mod:`tests.active.fake_trainer`, registered as ``fake_by_id``."""
    from mmdet_isal.registry import STRATEGIES
    from tests.active.fake_trainer import FakeStrategy
    STRATEGIES.register_module(module=FakeStrategy, name='fake_by_id', force=True)
    yield 'fake_by_id'
    STRATEGIES._module_dict.pop('fake_by_id', None)


def fake_run_loop(data_root, work_dir, trainer=None, **active_learning):
    """A loop on the test pool in ``work_dir`` with a
    :class:`~tests.active.fake_trainer.FakeTrainer` (no detector), the fake strategy by default
    (the ``fake_strategy`` fixture registers it), 8 initial images, +6 per step, 3 steps."""
    from mmdet_isal.active import ActiveLearningLoop
    from tests.active.fake_trainer import FakeTrainer
    cfg = al_config(data_root, work_dir,
                    **dict(dict(strategy='fake_by_id', steps=3), **active_learning))
    return ActiveLearningLoop(cfg, trainer=trainer or FakeTrainer())


@pytest.fixture
def fake_loop(pool_coco, fake_strategy, tmp_path):
    """``fake_loop(name='run', trainer=None, **active_learning)``: :func:`fake_run_loop` in
    ``tmp_path / name``."""
    def make(name='run', trainer=None, **active_learning):
        return fake_run_loop(pool_coco, tmp_path / name, trainer, **active_learning)
    return make


@pytest.fixture(scope='session')
def fake_reference(pool_coco, fake_strategy, tmp_path_factory):
    """``{steps: ledger}`` of uninterrupted :func:`fake_run_loop` runs of 2 and 3 steps."""
    return {steps: fake_run_loop(pool_coco, tmp_path_factory.mktemp(f'fake_{steps}_steps'),
                                 steps=steps).run() for steps in (2, 3)}
