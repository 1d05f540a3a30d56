"""Checks before any training: a run that cannot go through fails in its first seconds, with one
message naming the input to fix, and no input file is modified.

The loop calls them in this order: :func:`run_dir` and :func:`check_config` (the config),
:func:`check_annotator` (who annotates fits the pool, which
:func:`~mmdet_isal.active.subsets.build_pool` checks with its images),
:func:`reference_ann_file` and :func:`check_inputs` (the annotation files and images besides
the pool), the trainer's
checkpoint check (:func:`checkpoints_to_check`, :func:`check_checkpoints`); once the ledger is
there, :func:`check_same_run` (resume) and :func:`check_budget_fits`.
"""
import copy
import dataclasses
import logging
import os.path as osp
from typing import Any, List, Optional, Sequence, Tuple

from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.logging import print_log

from mmdet_isal.active.config import ActiveLearningConfig
from mmdet_isal.active.ledger import PoolLedger
from mmdet_isal.active.subsets import (CocoPool, Pool, build_pool, pool_dataset_cfg,
                                       resolve_ann_file)
from mmdet_isal.utils.checkpoint_fit import checkpoint_fit

#: Config keys the loop trains and evaluates with, as mmdet configs have them.
REQUIRED_KEYS = ('train_dataloader', 'val_dataloader', 'val_evaluator', 'train_cfg')
#: ``active_learning`` keys that may change when a run is resumed: they only affect steps (or
#: scores, galleries, pre-labels, checks) still to come, never what the ledger already holds.
RESUMABLE_CHANGES = ('steps', 'target_ap', 'scorer', 'prelabel_thr', 'gallery', 'check_images')
#: ``active_learning`` keys added after runs were recorded without them: a ledger that lacks
#: one resumes with the config's value (a run started before ``cost`` existed had no seconds
#: budget, so the cost model changes none of its selections, only its reports' hours).
ADDED_KEYS = ('cost',)


def run_dir(cfg: Config, work_dir: Optional[str] = None) -> str:
    """The run directory, absolute: ``work_dir``, else the config's ``work_dir``.

    Raises:
        ValueError: neither is given.
    """
    work_dir = work_dir or cfg.get('work_dir')
    if not work_dir:
        raise ValueError('no run directory: pass --work-dir DIR (or set work_dir in the '
                         'config)')
    return osp.abspath(work_dir)


def check_config(cfg: Config) -> None:
    """The config has every key of :data:`REQUIRED_KEYS` (``KeyError`` naming the first
    missing one otherwise)."""
    for key in REQUIRED_KEYS:
        if not cfg.get(key):
            raise KeyError(f'the config has no {key}; the loop trains with '
                           f'train_dataloader/train_cfg and evaluates with '
                           f'val_dataloader/val_evaluator, as mmdet configs do')


def reference_ann_file(cfg: Config, al: ActiveLearningConfig) -> str:
    """The annotation file of ISAL's reference set: ``active_learning.reference``, by default
    the validation set's; absolute.

    Raises:
        FileNotFoundError: it does not exist (naming the config key it came from).
    """
    if al.reference is not None:
        path, what = osp.abspath(al.reference), 'active_learning.reference'
    else:
        path = resolve_ann_file(cfg.val_dataloader.dataset)
        what = 'val_dataloader.dataset.ann_file (the default reference set)'
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} {path} does not exist; generate the data or point '
                                f'it at an existing annotation file')
    return path


def num_classes(cfg: Config) -> int:
    """The number of classes the pool's data set trains on: ``metainfo.classes`` of
    ``train_dataloader.dataset`` (through wrappers), else the default classes of its data set
    class (``METAINFO``, e.g. COCO's 80, VOC's 20). It sets the default
    ``active_learning.cost.per_image`` (1 s per class).

    Raises:
        ValueError: neither is known; naming the keys to set.
    """
    dataset = pool_dataset_cfg(cfg.train_dataloader.dataset)
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None:
        dataset_cls = DATASETS.get(dataset.get('type', '')) if dataset.get('type') else None
        classes = (getattr(dataset_cls, 'METAINFO', None) or {}).get('classes')
    if not classes:
        raise ValueError(
            f'the classes of train_dataloader.dataset ({dataset.get("type")!r}) are unknown: '
            f'set its metainfo=dict(classes=(...)), or set active_learning.cost.per_image '
            f'(seconds per image; the default is 1 s per class)')
    return len(classes)


def check_annotator(pool: Pool, al: ActiveLearningConfig, cfg: Config) -> Optional[List[str]]:
    """Who annotates fits the pool: a pool without any annotation needs
    ``annotator='manual'``; manual mode needs a COCO pool without annotations and the
    training set's ``metainfo.classes`` (which name the detector's outputs).

    Returns:
        the training set's ``metainfo.classes`` (``None`` if the config sets none).

    Raises:
        ValueError: naming the pool and the setting to change.
    """
    metainfo = pool_dataset_cfg(cfg.train_dataloader.dataset).get('metainfo') or {}
    classes = list(metainfo['classes']) if metainfo.get('classes') is not None else None
    boxes = sum(pool.num_boxes.values())
    if not al.manual:
        if boxes == 0:
            raise ValueError(
                f"the pool {pool.ann_file} has no annotations, so the loop cannot simulate an "
                f"annotator: set active_learning.annotator='manual' (you annotate each "
                f"selection; README: \"Use it on your own images\")")
        return classes
    if pool.kind != 'coco':
        raise ValueError(f"active_learning.annotator='manual' needs a COCO pool (images only); "
                         f"{pool.ann_file} is a VOC list: make one with tools/make_pool.py")
    if boxes:
        labeled = sorted(i for i, n in pool.num_boxes.items() if n)
        raise ValueError(
            f"active_learning.annotator='manual': the pool {pool.ann_file} holds {boxes} "
            f"annotations on {len(labeled)} images (e.g. image ids {labeled[:3]}); in manual "
            f"mode the pool lists unlabeled images only. Put the labeled ones in "
            f"active_learning.labeled (tools/make_pool.py IMAGES --labeled FILE --labeled-out "
            f"labeled.json does both), or use annotator='simulated'")
    if not classes:
        raise ValueError(f"active_learning.annotator='manual' needs the classes: set "
                         f"train_dataloader.dataset.metainfo=dict(classes=(...)) to the pool's "
                         f"category names "
                         f"({', '.join(str(c['name']) for c in pool.categories)})")
    return classes


def check_inputs(cfg: Config, pool: Pool, reference: str, check_images: str = 'header') -> None:
    """Check the annotation files and images the run will read besides the pool (which
    :func:`build_pool` checked): the validation set (its images at depth ``check_images``),
    the evaluator's annotation file and the reference set ``reference``. Logs the pool's notes
    (boxes mmdet skips, identical images).

    Raises:
        AnnotationError: listing every problem of a file.
        FileNotFoundError: the evaluator's annotation file does not exist.
    """
    for note in pool.notes:
        print_log(f'{pool.ann_file}: {note}', logger='current', level=logging.WARNING)
    build_pool(cfg.val_dataloader.dataset, check_images=check_images)
    if reference.endswith('.json'):
        CocoPool(reference)
    evaluator = cfg.get('val_evaluator')
    metric_file = evaluator.get('ann_file') if isinstance(evaluator, dict) else None
    if metric_file and metric_file.endswith('.json') and \
            osp.abspath(metric_file) != resolve_ann_file(cfg.val_dataloader.dataset):
        # CocoMetric reads its own file at the first evaluation, after training
        if not osp.isfile(metric_file):
            raise FileNotFoundError(f'val_evaluator.ann_file {metric_file} does not exist; '
                                    f'point it at the validation annotation file')
        CocoPool(metric_file)


def checkpoints_to_check(cfg: Config, work_dir: str, ledger_path: str
                         ) -> List[Tuple[str, str]]:
    """The checkpoints a run will load, as ``(path, what)``: the config's ``load_from``, and in
    a run directory being resumed the last step checkpoint its ledger records (if the file is
    there)."""
    checks = []
    if cfg.get('load_from'):
        checks.append((cfg.load_from, 'load_from'))
    if osp.exists(ledger_path):
        recorded = [rec['checkpoint'] for _, rec in sorted(
            PoolLedger.load(ledger_path).steps.items()) if rec.get('checkpoint')]
        if recorded and osp.isfile(osp.join(work_dir, recorded[-1])):
            checks.append((osp.join(work_dir, recorded[-1]),
                           f'the checkpoint of the run in {work_dir}'))
    return checks


def check_checkpoints(model_cfg: Any, checks: Sequence[Tuple[str, str]]) -> None:
    """Each ``(path, what)`` of ``checks`` must be a checkpoint of the model ``model_cfg``
    (``CheckpointMismatchError`` naming ``what`` otherwise); a checkpoint that fits but for some
    layers (a detector fine-tuned on other classes) is logged. Builds the model once, only if
    there is something to check."""
    if not checks:
        return
    model = MODELS.build(copy.deepcopy(model_cfg))
    for path, what in checks:
        for note in checkpoint_fit(model, path, what):
            print_log(note, logger='current', level=logging.WARNING)


def check_same_run(ledger: PoolLedger, pool: Pool, al: ActiveLearningConfig,
                   work_dir: str) -> List[str]:
    """Refuse to resume the run of ``ledger`` (in ``work_dir``) with a different pool or
    active-learning settings; :data:`RESUMABLE_CHANGES` may change.

    Returns:
        one note per setting that changed and applies from here on, for the log.

    Raises:
        ValueError: naming the setting that differs and what to do.
    """
    old = ledger.meta
    if old['pool']['ann_file'] != pool.ann_file:
        raise ValueError(f'the run in {work_dir} was started on the pool '
                         f'{old["pool"]["ann_file"]}, the config now gives '
                         f'{pool.ann_file}; use the original pool or another --work-dir')
    if set(ledger.images) != set(pool.image_ids):
        raise ValueError(f'the pool {pool.ann_file} changed since the run in '
                         f'{work_dir} started; restore it or use another --work-dir')
    new = al.to_dict()
    # a key the run's ledger does not record is one added since: it had its default, or for
    # ADDED_KEYS (which change no recorded selection) the config's value
    added = [k for k in ADDED_KEYS if k not in old['active_learning']]
    before = dict({f.name: f.default for f in dataclasses.fields(ActiveLearningConfig)
                   if f.default is not dataclasses.MISSING},
                  **{k: new[k] for k in added}, **old['active_learning'])
    notes = [f'resuming with active_learning.{k} = {new[k]!r} (was '
             f'{before.get(k)!r}); it applies from here on'
             for k in RESUMABLE_CHANGES if before.get(k) != new[k]]
    notes += [f'the run was started before active_learning.{k} existed; resuming with '
              f'{k} = {new[k]!r}' for k in added]
    changed = [k for k in new if k not in RESUMABLE_CHANGES and before.get(k) != new[k]]
    if changed:
        diffs = ', '.join(f'{k}: {before.get(k)!r} -> {new[k]!r}' for k in changed)
        raise ValueError(f'cannot resume {work_dir} with different active_learning '
                         f'settings ({diffs}); only {", ".join(RESUMABLE_CHANGES)} may '
                         f'change. Use the original config or another --work-dir')
    return notes


def check_budget_fits(ledger: PoolLedger, al: ActiveLearningConfig, pool_ann_file: str) -> None:
    """Fail before any training if the selections still to make cannot fit in the pool.

    Raises:
        ValueError: naming the budget, what it needs and what is left.
    """
    todo = sum(1 for s in range(al.steps - 1) if not ledger.stage_done(s, 'select'))
    left = [i for i, r in ledger.images.items()
            if r['labeled_step'] is None and r.get('skipped') is None]
    budget = al.budget
    if al.manual and budget.kind != 'images':
        return  # the pool's boxes are unknown before they are predicted (at each selection)
    need = todo * budget.amount
    have = budget.spent(left, {i: ledger.images[i]['num_boxes'] for i in left}, al.cost)
    if need > have:
        left_text = (f'{_amount(have)} seconds of unlabeled images' if budget.kind == 'seconds'
                     else f'{_amount(have)} unlabeled {budget.kind}')
        raise ValueError(
            f'active_learning: {todo} more selection(s) of budget={budget.to_dict()} need '
            f'{_amount(need)} {budget.kind}, but the pool {pool_ann_file} has only '
            f'{left_text} left; lower active_learning.budget or active_learning.steps')


def _amount(value) -> str:
    """A count as an integer, seconds with one decimal at most."""
    return f'{value:.1f}'.rstrip('0').rstrip('.') if isinstance(value, float) else str(value)
