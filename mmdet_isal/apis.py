"""High-level entry points used by ``tools/score.py`` (and handy in notebooks)."""
import os.path as osp
from typing import Optional


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


def score_from_config(model, cfg, *, out: str, unlabeled: str, reference: str,
                      labeled: Optional[str] = None, budget: Optional[int] = None, seed: int = 0,
                      scorer: Optional[dict] = None):
    """Score ``unlabeled`` with ISAL and write ``out`` plus ``selection.json`` beside it.

    The scorer options are ``scorer``, else the config's ``active_learning.scorer`` if any.
    """
    from .detection import ScorerOptions, score_pool, write_isal_outputs
    if scorer is None:
        scorer = cfg.get('active_learning', {}).get('scorer')
    labeled = labeled or cfg.train_dataloader.dataset.get('ann_file')
    diagnostics = {}
    scores = score_pool(model, cfg, unlabeled_ann_file=unlabeled, reference_ann_file=reference,
                        labeled_ann_file=labeled, scorer=scorer, seed=seed,
                        diagnostics=diagnostics)
    selection = osp.join(osp.dirname(osp.abspath(out)), 'selection.json')
    return write_isal_outputs(out, selection, scores, budget, diagnostics, seed=seed,
                              rank_by=ScorerOptions.from_dict(scorer).rank_by)
