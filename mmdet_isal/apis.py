"""High-level entry points of ``tools/train.py``, ``tools/test.py`` and ``tools/score.py``
(and handy in notebooks)."""
import argparse
import os
import os.path as osp
from typing import Mapping, Optional, Sequence, Union

from mmengine.config import Config, DictAction

from .datasets.images import explain_image_failures
from .detection import ISALResult, ScorerOptions, check_isal_inputs, run_isal
from .utils.dist import init_distributed, prepare_runner_cfg


def add_runner_arguments(parser: argparse.ArgumentParser, work_dir_help: str) -> None:
    """The flags of mmdet's tools that build a Runner (``tools/train.py``, ``tools/test.py``):
    ``--work-dir``, ``--cfg-options``, ``--launcher`` and ``--local_rank`` (torch.distributed.
    launch's; :func:`parse_runner_args` exports it as ``LOCAL_RANK``)."""
    parser.add_argument('--work-dir', help=work_dir_help)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` with a parser given :func:`add_runner_arguments`, and set ``LOCAL_RANK``
    from ``--local_rank`` unless the launcher (torchrun) set it."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """A config file with ``--cfg-options`` merged and the work dir chosen as mmdet's tools
    choose it: ``work_dir`` if given, else the config's own, else ``work_dirs/<config name>``.
    """
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir:
        cfg.work_dir = work_dir
    elif not cfg.get('work_dir'):
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def build_runner(cfg, launcher: str = 'none', resume: Optional[str] = None, amp: bool = False,
                 auto_scale_lr: bool = False):
    """An mmengine Runner for ``cfg``, as mmdet's ``tools/train.py`` builds it, on one process
    or distributed (also without a GPU).

    Args:
        cfg: the config (changed in place: launcher, resume, optimiser wrapper).
        launcher: ``'none'``, ``'pytorch'`` (torchrun) or ``'slurm'`` (srun); the process group
            is initialised here (:func:`mmdet_isal.utils.dist.init_distributed`, with the
            config's ``env_cfg.dist_cfg.timeout`` if set).
        resume: ``'auto'`` (the latest checkpoint in the work dir) or a checkpoint path.
        amp: automatic mixed precision (``AmpOptimWrapper``, dynamic loss scale).
        auto_scale_lr: scale the learning rate by ``cfg.auto_scale_lr``.
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    timeout = (cfg.get('env_cfg') or {}).get('dist_cfg', {}).get('timeout')
    init_distributed(launcher, timeout_s=timeout)
    prepare_runner_cfg(cfg, launcher)
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if auto_scale_lr:
        if 'enable' not in cfg.get('auto_scale_lr', {}) or \
                'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise ValueError('--auto-scale-lr: the config has no auto_scale_lr = dict(enable=..., '
                             'base_batch_size=...)')
        cfg.auto_scale_lr.enable = True
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def load_detector(cfg, checkpoint: str, device: str = 'cpu'):
    """Build ``cfg.model`` and load an mmengine checkpoint, keeping ``train_cfg``.

    ``mmdet.apis.init_detector`` drops ``train_cfg``, which the losses of two-stage detectors
    need (assigners, samplers), so scoring builds the model itself. The checkpoint is loaded
    with torch's ``weights_only=True``; importing ``mmdet_isal`` allowed the metadata types
    mmengine writes (see :mod:`mmdet_isal.utils.checkpoint`).
    """
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import load_checkpoint
    register_all_modules(init_default_scope=True)
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint(model, checkpoint, map_location='cpu')
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    if 'dataset_meta' in meta:
        model.dataset_meta = meta['dataset_meta']
    return model.to(device).eval()


def score_from_config(model, cfg, *, out: str, unlabeled: str,
                      reference: Optional[str] = None, labeled: Optional[str] = None,
                      budget: Optional[int] = None, seed: int = 0,
                      scorer: Union[None, Mapping, ScorerOptions] = None,
                      check_images: Optional[str] = 'header') -> ISALResult:
    """Score ``unlabeled`` with ISAL and write ``out`` plus ``selection.json`` beside it.

    The scorer options are ``scorer`` (parsed :class:`ScorerOptions` or their flat dict),
    else the config's ``active_learning.scorer`` if any; a dict is parsed here, once.
    ``reference`` and ``labeled`` default to the config's validation and training sets.
    Their files and images (at depth ``check_images``: ``'header'``, ``'decode'`` or ``None``)
    are checked first; an image that still fails to load while scoring raises
    :class:`~mmdet_isal.datasets.ImageLoadError` naming it.
    Collective in a distributed run (every process calls it; the main process writes).
    """
    if scorer is None:
        scorer = ScorerOptions.from_dict(cfg.get('active_learning', {}).get('scorer'),
                                         where='active_learning.scorer')
    else:
        scorer = ScorerOptions.from_dict(scorer)
    check_isal_inputs(cfg, unlabeled, reference, labeled, owner='score',
                      check_images=check_images)
    with explain_image_failures('scoring'):
        return run_isal(model, cfg, unlabeled_ann_file=unlabeled, reference_ann_file=reference,
                        labeled_ann_file=labeled, scorer=scorer, seed=seed, budget=budget,
                        out=out)
