"""The package: version guard, registration, checkpoints under weights_only, configs."""
import glob
import os.path as osp

import pytest
import torch

from tests.conftest import ROOT


def test_version_guard_names_what_to_install():
    from mmdet_isal.utils import check_dependencies
    check_dependencies()  # the installed stack is in range
    with pytest.raises(ImportError) as err:
        check_dependencies((('mmcv', '2.0.0rc4', '2.0.0', '"mmcv>=2.0.0rc4,<2.2.0"'),
                            ('not-a-package-xyz', '1.0', '2.0', '"not-a-package-xyz"')))
    message = str(err.value)
    assert 'mmcv 2.1.0 is installed but mmdet-isal needs 2.0.0rc4 <= mmcv < 2.0.0' in message
    assert 'not-a-package-xyz is not installed: pip install "not-a-package-xyz"' in message


def test_components_are_registered_in_mmdet_registries():
    import mmdet_isal  # noqa: F401
    from mmdet.registry import HOOKS
    from mmdet_isal.registry import STRATEGIES
    assert HOOKS.get('ISALHook') is mmdet_isal.engine.ISALHook
    assert {'isal', 'random'} <= set(STRATEGIES.module_dict)


@pytest.mark.slow  # a subprocess importing mmdet, or a Runner: seconds each
def test_runner_checkpoint_loads_with_weights_only(shapes_coco, toy_cfg, tmp_path):
    """A checkpoint mmengine's Runner writes (message hub, scheduler state, numpy) loads back
    with torch's weights_only=True and without the user setting anything."""
    from mmengine.runner import Runner
    cfg = toy_cfg('fcos_shapes', shapes_coco, **{'train_cfg.max_iters': 2})
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=100)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=2, by_epoch=False)
    cfg.param_scheduler = [dict(type='MultiStepLR', milestones=[1], by_epoch=False)]
    cfg.work_dir = str(tmp_path)
    Runner.from_cfg(cfg).train()
    path = str(tmp_path / 'iter_2.pth')
    from mmengine.logging import HistoryBuffer
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert 'state_dict' in ckpt and 'param_schedulers' in ckpt
    buffers = ckpt['message_hub']['log_scalars'].values()
    assert any(isinstance(b, HistoryBuffer) for b in buffers)  # the metadata torch refuses
    # and in a fresh process, where mmengine has built no HistoryBuffer yet
    import subprocess
    import sys
    code = ('import torch, mmdet_isal; '
            f'print(sorted(torch.load({path!r}, weights_only=True)["message_hub"]))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'log_scalars' in result.stdout
    # resuming reads the same file through mmengine
    cfg.resume, cfg.load_from = True, path
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 2


def test_weights_only_still_refuses_other_globals(tmp_path):
    import mmdet_isal  # noqa: F401
    path = tmp_path / 'evil.pth'
    torch.save({'x': torch.nn.Linear(2, 2)}, path)  # a module object: arbitrary class
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(path, weights_only=True)


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                                                  recursive=True)))
def test_every_config_loads_and_builds_its_model(path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config
    register_all_modules()
    cfg = Config.fromfile(path)
    assert cfg.custom_imports == dict(imports=['mmdet_isal'], allow_failed_imports=False)
    # a wrapper (LossPredictionDetector) holds the detector's config under `detector`
    detector = cfg.model.detector if 'detector' in cfg.model else cfg.model
    if detector.backbone.get('init_cfg'):
        detector.backbone.init_cfg = None  # no weight download in tests
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.slow
def test_paper_configs_follow_the_paper():
    from mmengine.config import Config
    for name in ('fcos_coco_isal', 'faster_rcnn_coco_isal', 'fcos_voc_isal'):
        cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
        assert cfg.train_cfg.max_epochs == 12
        assert cfg.optim_wrapper.optimizer.lr == 0.01
        assert cfg.optim_wrapper.optimizer.momentum == 0.9
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.0001
        steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
        assert steps[0].milestones == [8, 11] and steps[0].gamma == 0.1
        assert cfg.auto_scale_lr.base_batch_size == 8
        scorer = cfg.active_learning.scorer
        assert (scorer.hessian_images, scorer.repeats, scorer.damping, scorer.score_thr) == (
            500, 4, 0.01, 0.1)
    coco = Config.fromfile(osp.join(ROOT, 'configs', 'fcos_coco_isal.py'))
    assert coco.model.backbone.depth == 50 and coco.model.backbone.style == 'caffe'
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    coco.model.backbone.init_cfg = None
    head = MODELS.build(coco.model).bbox_head
    assert any(isinstance(m, torch.nn.GroupNorm) for m in head.modules())  # GN head
    assert coco.train_dataloader.dataset.data_root == 'data/coco/'
    al = coco.active_learning
    assert (al.initial.images, al.budget.images, al.steps) == (5000, 1000, 20)
    voc = Config.fromfile(osp.join(ROOT, 'configs', 'fcos_voc_isal.py'))
    assert voc.train_dataloader.dataset.data_root == 'data/VOCdevkit/'


def test_tiny_config_data_blocks_agree_with_each_other_and_the_generator():
    from mmengine.config import Config
    from mmdet_isal.datasets import SHAPES_CLASSES
    fcos = Config.fromfile(osp.join(ROOT, 'configs', 'toy', 'fcos_shapes.py'))
    frcnn = Config.fromfile(osp.join(ROOT, 'configs', 'toy', 'faster_rcnn_shapes.py'))
    for key in ('train_dataloader', 'val_dataloader', 'val_evaluator'):
        assert fcos[key].to_dict() == frcnn[key].to_dict(), key
    assert tuple(fcos.train_dataloader.dataset.metainfo.classes) == SHAPES_CLASSES
    assert fcos.model.bbox_head.num_classes == len(SHAPES_CLASSES)
    assert frcnn.model.roi_head.bbox_head.num_classes == len(SHAPES_CLASSES)


def test_getattr_in_a_checkpoint_is_refused_beyond_history_buffer(tmp_path):
    """builtins.getattr is bound to a restricted function, never to getattr itself."""
    import pickle
    import mmdet_isal  # noqa: F401

    class Evil:
        def __reduce__(self):
            return (getattr, ({}, 'get'))  # a bound dict.get: a step to arbitrary calls

    path = tmp_path / 'evil_getattr.pth'
    torch.save({'x': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='allows getattr only for HistoryBuffer'):
        torch.load(path, weights_only=True)
