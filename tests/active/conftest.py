"""Fixtures of the active-learning tests: tiny synthetic pools (the shapes generator)."""
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


def al_config(data_root, work_dir, fmt='coco', detector='fcos_shapes', **active_learning):
    """``configs/toy/<detector>.py`` on a test pool with an active_learning block, light enough
    for a test: 2 epochs (a checkpoint after each), batch 4, no worker processes, constant lr.

    ``fmt='voc'`` points train and val at the VOC layout (VOCDataset, VOCMetric).
    """
    import os.path as osp

    from mmengine.config import Config

    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    cfg = Config.fromfile(osp.join(repo, 'configs', 'toy', f'{detector}.py'))
    root = str(data_root).rstrip('/') + '/'
    options = {
        'work_dir': str(work_dir),
        'train_dataloader.batch_size': 4,
        'train_cfg.max_epochs': 2,
        'default_hooks.logger.interval': 1,
        'default_hooks.checkpoint.interval': 1,
        'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=False)],
        'active_learning': dict(dict(strategy='random', initial=dict(images=8),
                                     budget=dict(images=6), steps=2, seed=0),
                                **active_learning),
    }
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.num_workers'] = 0
        options[f'{split}_dataloader.persistent_workers'] = False
        options[f'{split}_dataloader.dataset.data_root'] = root
    if fmt == 'coco':
        for split in ('val', 'test'):
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
