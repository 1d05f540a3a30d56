"""The active-learning loop: train, evaluate, score, select; step after step, resumable.

Layout of a run directory ``DIR`` (``--work-dir``)::

    DIR/ledger.json          the run's state (PoolLedger): written after every stage
    DIR/summary.csv          one row per evaluated step (report.SUMMARY_COLUMNS)
    DIR/summary.json         the same rows, with every metric and stage duration
    DIR/ap_vs_boxes.png      bbox mAP against annotated boxes
    DIR/al_loop.log          the loop's log (each step's training log is in its own dir)
    DIR/step_K/labeled.json  training set of step K (VOC: labeled.txt), rebuilt from the ledger
    DIR/step_K/unlabeled.json  the rest of the pool during step K: what step K scores
    DIR/step_K/...           mmengine's work_dir of step K: <timestamp>/ logs, epoch_N.pth,
                             last_checkpoint
    DIR/step_K/strategy/     scratch space of the strategy at step K
    DIR/step_K/console.log   everything mmengine and mmdet printed during step K (config
                             dumps, per-iteration logs, warnings); the terminal shows one line
                             per stage and a progress line for training and scoring

Step K trains on ``DIR/step_K/labeled.*``; its selection is written to the ledger (images get
``labeled_step = K + 1``) and appears in ``DIR/step_{K+1}/labeled.*``.

Distributed (``launcher='pytorch'`` or ``'slurm'``, ``tools/dist_al_loop.sh``): every process
runs the loop; training is DDP, evaluation and ISAL scoring are spread over the processes, the
main process writes every file, and the ranking is the main process's, broadcast, so that
every process labels the same images.
"""
import copy
import gc
import itertools
import logging
import math
import os
import os.path as osp
import time
from typing import Any, Dict, Optional, Tuple

from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.dist import barrier, broadcast_object_list, is_main_process
from mmengine.logging import MMLogger, print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import find_latest_checkpoint

from mmdet_isal.active.config import ActiveLearningConfig
from mmdet_isal.active.diagnostics import selection_diagnostics
from mmdet_isal.active.ledger import STAGES, PoolLedger
from mmdet_isal.active.report import comparison_table, group_runs, write_summary
from mmdet_isal.active.subsets import (CocoPool, apply_budget, build_pool, pool_dataset_cfg,
                                      resolve_ann_file)
from mmdet_isal.engine.hooks import FiniteLossHook, ProgressHook, StopOnSignalHook
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import SelectionContext
from mmdet_isal.strategies.random import random_order
from mmdet_isal.utils.checkpoint_fit import checkpoint_fit
from mmdet_isal.utils.console import quiet
from mmdet_isal.utils.dist import LAUNCHERS, init_distributed, prepare_runner_cfg

#: Where the summary's ``bbox_mAP`` / ``bbox_mAP_50`` come from, first match wins: mmdet's
#: CocoMetric, then VOCMetric (whose mAP is at IoU 0.5 by default, VOC's own measure).
AP_KEYS = {
    'bbox_mAP': ('coco/bbox_mAP', 'pascal_voc/mAP'),
    'bbox_mAP_50': ('coco/bbox_mAP_50', 'pascal_voc/AP50'),
}
#: Train loops whose in-training validation the loop switches off (it evaluates on its own).
_LOOPS_WITH_VAL_BEGIN = ('EpochBasedTrainLoop', 'IterBasedTrainLoop')
#: ``active_learning`` keys that may change when a run is resumed: they only affect steps (or
#: scores) still to come, never what the ledger already holds.
_RESUMABLE_CHANGES = ('steps', 'target_ap', 'scorer')
_runner_ids = itertools.count()


class ActiveLearningLoop:
    """Runs the active-learning protocol of a config with an ``active_learning`` block.

    Each step K trains a detector with mmengine's Runner on the labeled subset, evaluates it on
    the config's validation set, ranks the still unlabeled images with the strategy, and labels
    the budget's worth of the best-ranked ones for step K + 1. The stages are methods
    (:meth:`train`, :meth:`evaluate`, :meth:`score`, :meth:`select`); each returns what goes in
    the ledger, and the ledger is saved after each, so a killed run resumes at the stage that
    was interrupted (training itself resumes from its last checkpoint).

    Args:
        cfg: an mmdet config (``Config``) with an ``active_learning`` block
            (:class:`ActiveLearningConfig`). Never modified.
        work_dir: the run directory; defaults to ``cfg.work_dir``.
        launcher: ``'none'``, or ``'pytorch'`` / ``'slurm'`` for a distributed run (every
            process builds the loop; the process group is initialised here if it is not yet).
    """

    LEDGER = 'ledger.json'

    def __init__(self, cfg: Config, work_dir: Optional[str] = None, launcher: str = 'none'):
        if launcher not in LAUNCHERS:
            raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
        self.launcher = launcher
        init_distributed(launcher)
        self.cfg = copy.deepcopy(cfg)
        self.al = ActiveLearningConfig.from_dict(cfg.get('active_learning'))
        work_dir = work_dir or cfg.get('work_dir')
        if not work_dir:
            raise ValueError('no run directory: pass --work-dir DIR (or set work_dir in the '
                             'config)')
        self.work_dir = osp.abspath(work_dir)
        for key in ('train_dataloader', 'val_dataloader', 'val_evaluator', 'train_cfg'):
            if not cfg.get(key):
                raise KeyError(f'the config has no {key}; the loop trains with '
                               f'train_dataloader/train_cfg and evaluates with '
                               f'val_dataloader/val_evaluator, as mmdet configs do')
        self.pool = build_pool(cfg.train_dataloader.dataset)
        self.reference_ann_file = self._reference_ann_file()
        self._check_inputs()
        strategy = self.al.strategy
        strategy = dict(type=strategy) if isinstance(strategy, str) else copy.deepcopy(strategy)
        # The registry's own scope, whatever scope (mmdet's) an earlier Runner made current.
        strategy.setdefault('_scope_', STRATEGIES.scope)
        self.strategy = STRATEGIES.build(strategy)
        self.ledger: Optional[PoolLedger] = None
        self._runner = None
        self._runner_step = None
        self.logger: Optional[MMLogger] = None

    @classmethod
    def from_cfg(cls, cfg: Config, launcher: str = 'none') -> 'ActiveLearningLoop':
        """Build the loop of ``cfg`` (its ``work_dir`` is the run directory)."""
        return cls(cfg, launcher=launcher)

    # --- paths --------------------------------------------------------------------------------
    @property
    def ledger_path(self) -> str:
        return osp.join(self.work_dir, self.LEDGER)

    def step_dir(self, step: int) -> str:
        """Directory of step ``step``: its subsets and mmengine's work_dir of its training."""
        return osp.join(self.work_dir, f'step_{step}')

    def subset_files(self, step: int) -> Tuple[str, str]:
        """(labeled, unlabeled) annotation files of ``step``."""
        return self.pool.subset_paths(self.step_dir(step))

    def _reference_ann_file(self) -> str:
        if self.al.reference is not None:
            path, what = osp.abspath(self.al.reference), 'active_learning.reference'
        else:
            path = resolve_ann_file(self.cfg.val_dataloader.dataset)
            what = 'val_dataloader.dataset.ann_file (the default reference set)'
        if not osp.isfile(path):
            raise FileNotFoundError(f'{what} {path} does not exist; generate the data or point '
                                    f'it at an existing annotation file')
        return path

    def _check_inputs(self) -> None:
        """Check, before any training, the annotation files and images the run will read
        besides the pool (which :func:`build_pool` checked): the validation set, the
        evaluator's annotation file, the reference set and the checkpoints. Raises
        ``AnnotationError`` listing every problem of a file."""
        for note in self.pool.notes:
            print_log(f'{self.pool.ann_file}: {note}', logger='current', level=logging.WARNING)
        build_pool(self.cfg.val_dataloader.dataset)
        if self.reference_ann_file.endswith('.json'):
            CocoPool(self.reference_ann_file)
        evaluator = self.cfg.get('val_evaluator')
        metric_file = evaluator.get('ann_file') if isinstance(evaluator, dict) else None
        if metric_file and metric_file.endswith('.json') and \
                osp.abspath(metric_file) != resolve_ann_file(self.cfg.val_dataloader.dataset):
            # CocoMetric reads its own file at the first evaluation, after training
            if not osp.isfile(metric_file):
                raise FileNotFoundError(f'val_evaluator.ann_file {metric_file} does not exist; '
                                        f'point it at the validation annotation file')
            CocoPool(metric_file)
        self._check_checkpoints()

    def _check_checkpoints(self) -> None:
        """The config's ``load_from`` and, in a run directory being resumed, the last recorded
        step checkpoint must be checkpoints of the config's model (``CheckpointMismatchError``
        otherwise); a checkpoint that fits but for some layers (a detector fine-tuned on other
        classes) is logged."""
        checks = []
        if self.cfg.get('load_from'):
            checks.append((self.cfg.load_from, 'load_from'))
        if osp.exists(self.ledger_path):
            recorded = [rec['checkpoint'] for _, rec in sorted(
                PoolLedger.load(self.ledger_path).steps.items()) if rec.get('checkpoint')]
            if recorded and osp.isfile(osp.join(self.work_dir, recorded[-1])):
                checks.append((osp.join(self.work_dir, recorded[-1]),
                               f'the checkpoint of the run in {self.work_dir}'))
        if not checks:
            return
        model = MODELS.build(copy.deepcopy(self.cfg.model))
        for path, what in checks:
            for note in checkpoint_fit(model, path, what):
                print_log(note, logger='current', level=logging.WARNING)

    # --- the run ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> PoolLedger:
        """Run (or with ``resume``, continue) every step; returns the final ledger.

        Calls :meth:`prepare` first unless it was called already.
        """
        if self.ledger is None:
            self.prepare(resume)
        try:
            for step in range(self.al.steps):
                rec = self.ledger.step_record(step)
                if not rec['finished']:
                    self._run_step(step)
                if rec.get('stopped'):
                    break
        finally:
            self._release_runner()
        rows = self._save(report=True)
        if rows:
            table, _ = comparison_table(group_runs([rows]))
            self._log(f'AP versus boxes:\n{table}')
        return self.ledger

    def prepare(self, resume: bool = False) -> None:
        """Create or load the ledger and check the run can go through, before any training.

        Raises:
            FileExistsError: ``work_dir`` already holds a run and ``resume`` is False, or it
                holds step directories but no ledger.
            ValueError: the budgets do not fit in the pool, or ``resume`` finds a run started
                with other settings.
        """
        if is_main_process():
            os.makedirs(self.work_dir, exist_ok=True)
        self.logger = MMLogger.get_instance(
            f'mmdet_isal.al_loop.{next(_runner_ids)}.{os.getpid()}',
            log_file=osp.join(self.work_dir, 'al_loop.log') if is_main_process() else None,
            file_mode='a')
        # Every process acts on the main process's one look at the run directory: the main
        # process writes the new ledger at the end of this method, and a process looking after
        # that (or on a file system that shows it late) would take the new run for an old one.
        seen = [None]
        if is_main_process():
            seen = [(osp.exists(self.ledger_path),
                     sorted(d for d in os.listdir(self.work_dir) if d.startswith('step_')))]
        broadcast_object_list(seen)
        has_ledger, stale = seen[0]
        if has_ledger:
            if not resume:
                raise FileExistsError(
                    f'{self.work_dir} already holds an active-learning run '
                    f'({self.ledger_path}); pass --resume to continue it, or choose another '
                    f'--work-dir')
            self._log(f'resuming the run in {self.work_dir}')
            self.ledger = PoolLedger.load(self.ledger_path)
            self._check_same_run()
        else:
            if resume:
                self._log(f'nothing to resume in {self.work_dir}: starting a new run')
            if stale:
                # Their checkpoints would be taken for interrupted trainings of this run.
                raise FileExistsError(
                    f'{self.work_dir} holds {", ".join(stale[:3])}... but no {self.LEDGER}: '
                    f'it is not a run this loop can continue; choose an empty --work-dir')
            self.ledger = PoolLedger(
                self.pool.image_ids, self.pool.num_boxes, strategy=self.al.strategy,
                seed=self.al.seed,
                meta=dict(pool=dict(kind=self.pool.kind, ann_file=self.pool.ann_file),
                          active_learning=self.al.to_dict()))
            # The initial set depends on the seed only, so that strategies compared with one
            # seed start from the same labeled images.
            order = random_order(self.pool.image_ids, self.al.seed, 0)
            self.ledger.label(apply_budget(order, self.al.initial, self.pool.num_boxes,
                                           what='active_learning.initial'), 0)
        self.ledger.meta['active_learning'] = self.al.to_dict()
        self._check_budget_fits()
        self._save()

    def _check_same_run(self) -> None:
        """Refuse to resume a run with a different pool or active-learning settings."""
        old = self.ledger.meta
        if old['pool']['ann_file'] != self.pool.ann_file:
            raise ValueError(f'the run in {self.work_dir} was started on the pool '
                             f'{old["pool"]["ann_file"]}, the config now gives '
                             f'{self.pool.ann_file}; use the original pool or another --work-dir')
        if set(self.ledger.images) != set(self.pool.image_ids):
            raise ValueError(f'the pool {self.pool.ann_file} changed since the run in '
                             f'{self.work_dir} started; restore it or use another --work-dir')
        new = self.al.to_dict()
        for k in _RESUMABLE_CHANGES:
            if old['active_learning'].get(k) != new[k]:
                self._log(f'resuming with active_learning.{k} = {new[k]!r} (was '
                          f'{old["active_learning"].get(k)!r}); it applies from here on')
        changed = [k for k in new if k not in _RESUMABLE_CHANGES
                   and old['active_learning'].get(k) != new[k]]
        if changed:
            diffs = ', '.join(f'{k}: {old["active_learning"].get(k)!r} -> {new[k]!r}'
                              for k in changed)
            raise ValueError(f'cannot resume {self.work_dir} with different active_learning '
                             f'settings ({diffs}); only {", ".join(_RESUMABLE_CHANGES)} may '
                             f'change. Use the original config or another --work-dir')

    def _check_budget_fits(self) -> None:
        """Fail before any training if the remaining selections cannot fit in the pool."""
        todo = sum(1 for s in range(self.al.steps - 1)
                   if not self.ledger.stage_done(s, 'select'))
        left = [i for i, r in self.ledger.images.items() if r['labeled_step'] is None]
        budget = self.al.budget
        need = todo * budget.amount
        have = len(left) if budget.kind == 'images' else self.ledger.num_boxes(left)
        if need > have:
            raise ValueError(
                f'active_learning: {todo} more selection(s) of budget={budget.to_dict()} need '
                f'{need} {budget.kind}, but the pool {self.pool.ann_file} has only {have} '
                f'unlabeled {budget.kind} left; lower active_learning.budget or '
                f'active_learning.steps')

    def _run_step(self, step: int) -> None:
        rec = self.ledger.step_record(step)
        labeled = self.ledger.labeled_ids(step)
        self._log(f'step {step + 1}/{self.al.steps} (step_{step}): {len(labeled)} labeled '
                  f'images, {self.ledger.num_boxes(labeled)} boxes, '
                  f'{len(self.pool) - len(labeled)} unlabeled')
        if is_main_process():
            self.pool.write_split(labeled, self.step_dir(step))
        barrier()  # every process trains on the subsets the main process wrote
        last = step == self.al.steps - 1
        for stage in STAGES:
            if self.ledger.stage_done(step, stage):
                continue
            if stage in ('score', 'select') and (last or rec.get('stopped')):
                continue
            start = time.perf_counter()
            # mmengine's logs, config dumps and warnings go to the step's console.log; the
            # terminal keeps one line per stage and the progress lines
            with quiet(self._console_log(step)):
                results = getattr(self, stage)(step) or {}
            seconds = time.perf_counter() - start
            self.ledger.finish_stage(step, stage, seconds, **results)
            self._log(f'step_{step}: {stage} finished in {seconds:.1f} s' +
                      ''.join(f', {k}={v:.4f}' for k, v in results.items()
                              if k in AP_KEYS))
            if stage == 'evaluate':
                target = self.al.target_ap
                if target is not None and rec['bbox_mAP'] >= target:
                    rec['stopped'] = f'bbox_mAP {rec["bbox_mAP"]:.4f} >= target_ap {target}'
                    self._log(f'step_{step}: {rec["stopped"]}: stopping')
            self._save(report=stage in ('evaluate', 'select'))
        rec['finished'] = True
        self._save()

    # --- stages -------------------------------------------------------------------------------
    def train(self, step: int) -> Dict[str, Any]:
        """Train the detector of ``step`` on its labeled subset; returns its checkpoint.

        A previous, interrupted attempt of this step (a checkpoint in its dir) is resumed with
        mmengine's ``resume``; otherwise ``retrain='finetune'`` starts from the previous step's
        checkpoint and ``'scratch'`` from the config's own initialisation.
        """
        from mmengine.runner import Runner

        cfg = self.step_cfg(step)
        if find_latest_checkpoint(cfg.work_dir) is not None:
            cfg.resume, cfg.load_from = True, None
        elif self.al.retrain == 'finetune' and step > 0:
            cfg.load_from = self._checkpoint(step - 1)
        self._release_runner()
        runner = Runner.from_cfg(cfg)
        runner.register_hook(ProgressHook(f'step_{step} train'))
        self._register_guard_hooks(runner, step)
        runner.train()
        barrier()  # the main process has saved the last checkpoint
        self._runner, self._runner_step = runner, step
        ckpt = find_latest_checkpoint(cfg.work_dir)
        if ckpt is None:
            raise RuntimeError(f'training step_{step} saved no checkpoint in {cfg.work_dir}; '
                               f'keep default_hooks.checkpoint enabled (the loop scores and '
                               f'resumes from checkpoints)')
        return dict(checkpoint=osp.relpath(ckpt, self.work_dir))

    @staticmethod
    def _register_guard_hooks(runner, step: int) -> None:
        """Training stops at the first non-finite loss (naming the batch's images), and on
        SIGINT/SIGTERM between iterations, never while a checkpoint is written."""
        runner.register_hook(FiniteLossHook(f'step_{step} train'))
        runner.register_hook(StopOnSignalHook())

    def evaluate(self, step: int) -> Dict[str, Any]:
        """Evaluate the detector of ``step`` with ``val_dataloader`` / ``val_evaluator``."""
        metrics = self._runner_of(step).val() or {}
        found = {}
        if not metrics:
            # CocoMetric returns nothing when the detector predicted no box at all, which a
            # weak detector on a small initial set does: its AP is 0, and the run goes on.
            self._log(f'step_{step}: the detector predicted nothing on the evaluation set; '
                      f'its bbox_mAP is recorded as 0')
            return dict(metrics={}, **{name: 0.0 for name in AP_KEYS})
        for name, keys in AP_KEYS.items():
            key = next((k for k in keys if k in metrics), None)
            if key is None:
                raise KeyError(f'the evaluator gave none of {keys} (it gave '
                               f'{sorted(metrics)}); use CocoMetric(metric="bbox") or VOCMetric '
                               f'as val_evaluator')
            found[name] = float(metrics[key])
        plain = {k: float(v) if isinstance(v, (int, float)) else str(v)
                 for k, v in metrics.items()}
        return dict(metrics=plain, **found)

    def score(self, step: int) -> Dict[str, Any]:
        """Rank the images unlabeled at ``step`` with the strategy; the ranking goes in the
        ledger."""
        runner = self._runner_of(step)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        model.eval()
        labeled_file, unlabeled_file = self.subset_files(step)
        context = SelectionContext(
            model=model, cfg=runner.cfg, unlabeled_ann_file=unlabeled_file,
            labeled_ann_file=labeled_file, reference_ann_file=self.reference_ann_file,
            work_dir=osp.join(self.step_dir(step), 'strategy'), step=step, seed=self.al.seed,
            unlabeled_ids=self.ledger.unlabeled_ids(step), scorer=copy.deepcopy(self.al.scorer))
        ranking = self.strategy.rank(context)
        # every process labels the same images: the main process's ranking
        box = [ranking]
        broadcast_object_list(box)
        ranking = box[0]
        self._report_nonfinite(step, ranking.details)
        self.ledger.record_ranking(step, ranking.order, ranking.scores,
                                   _jsonable(ranking.details, f'step_{step} score: details'))
        unscored = sum(ranking.scores[i] is None for i in ranking.order)
        if unscored:
            self._log(f'step_{step}: {unscored} of {len(ranking.order)} images got no score '
                      f'from the strategy; they rank last')
        return dict(num_scored=len(ranking.order) - unscored, num_unscored=unscored,
                    strategy_info=_jsonable(ranking.info, f'step_{step} score: info'))

    def _report_nonfinite(self, step: int, details: Dict[Any, Dict[str, Any]]) -> None:
        """Name the images whose score the strategy found not finite (NaN/Inf loss or gradient
        while scoring); they rank last and are never silently given a number."""
        bad = [i for i, d in details.items() if d.get('status') == 'nonfinite']
        if bad:
            print_log(f'step_{step} score: {len(bad)} image(s) had a NaN or infinite loss or '
                      f'gradient and got no score (they rank last): image ids {bad[:10]}',
                      logger=self.logger, level=logging.WARNING)

    def select(self, step: int) -> Dict[str, Any]:
        """Label the budget's worth of the best-ranked images of ``step`` for ``step + 1``."""
        ranked = self.ledger.ranking(step)
        chosen = apply_budget(ranked, self.al.budget, self.pool.num_boxes,
                              what='active_learning.budget')
        self.ledger.label(chosen, step + 1)
        images = self.ledger.images
        pseudo = {i: images[i]['details'][step]['num_pseudo_boxes'] for i in ranked
                  if 'num_pseudo_boxes' in images[i]['details'].get(step, {})}
        diag = selection_diagnostics(
            chosen, ranked, {i: images[i]['scores'].get(step) for i in ranked}, pseudo,
            self.pool.num_boxes, self.pool.box_classes)
        self._log(f'step_{step}: picked {len(chosen)} images, '
                  f'{_fmt(diag["picked_true_boxes"])} true boxes each (pool '
                  f'{_fmt(diag["pool_true_boxes"])}), {_fmt(diag["picked_pseudo_boxes"])} pseudo '
                  f'boxes each (pool {_fmt(diag["pool_pseudo_boxes"])}), '
                  f'{_fmt(diag["picked_no_true_box"], "%")} without a true box; Spearman(score, '
                  f'pseudo boxes) {_fmt(diag["spearman_score_pseudo_boxes"])}')
        return dict(num_selected=len(chosen), num_selected_boxes=self.ledger.num_boxes(chosen),
                    selection=diag)

    # --- helpers ------------------------------------------------------------------------------
    def step_cfg(self, step: int) -> Config:
        """The config of ``step``'s Runner: the user's config trained on the step's subset."""
        cfg = copy.deepcopy(self.cfg)
        cfg.pop('active_learning', None)
        cfg.work_dir = self.step_dir(step)
        pool_dataset_cfg(cfg.train_dataloader.dataset)['ann_file'] = self.subset_files(step)[0]
        # Unique per Runner: mmengine keys its logger, visualizer and message hub by this name.
        cfg.experiment_name = f'step_{step}_{next(_runner_ids)}'
        cfg.resume = False
        randomness = dict(cfg.get('randomness') or {})
        if randomness.get('seed') is None:
            randomness['seed'] = self.al.seed
        cfg.randomness = randomness
        prepare_runner_cfg(cfg, self.launcher)
        train_cfg = cfg.train_cfg
        if train_cfg.get('type', 'EpochBasedTrainLoop') in _LOOPS_WITH_VAL_BEGIN:
            # The evaluate stage validates once after training; validating inside training too
            # would only cost time.
            train_cfg.val_begin = 2 ** 62
        return cfg

    def _console_log(self, step: int) -> Optional[str]:
        """Where everything printed during a stage of ``step`` goes (main process only)."""
        if not is_main_process():
            return None
        os.makedirs(self.step_dir(step), exist_ok=True)
        return osp.join(self.step_dir(step), 'console.log')

    def _checkpoint(self, step: int) -> str:
        rel = self.ledger.steps.get(step, {}).get('checkpoint')
        if rel is None:
            raise RuntimeError(f'step_{step} has no checkpoint in the ledger')
        path = osp.join(self.work_dir, rel)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{path} (the checkpoint of step_{step}) is missing; it is '
                                    f'needed to continue the run')
        return path

    def _runner_of(self, step: int):
        """The Runner holding ``step``'s trained model: the training one, or (after a restart)
        a new one loading the step's checkpoint."""
        if self._runner is not None and self._runner_step == step:
            return self._runner
        from mmengine.runner import Runner

        cfg = self.step_cfg(step)
        cfg.load_from = self._checkpoint(step)
        self._release_runner()
        runner = Runner.from_cfg(cfg)
        runner.load_or_resume()
        self._runner, self._runner_step = runner, step
        return runner

    def _release_runner(self) -> None:
        if self._runner is not None:
            _shutdown_dataloader_workers(self._runner)
        self._runner = self._runner_step = None
        gc.collect()

    def _save(self, report: bool = False):
        """Save the ledger (and with ``report``, the summaries); only the main process writes."""
        if not is_main_process():
            return None
        self.ledger.save(self.ledger_path)
        if report:
            return write_summary(self.ledger, self.work_dir)
        return None

    def _log(self, msg: str) -> None:
        print_log(msg, logger=self.logger)


def _shutdown_dataloader_workers(runner) -> None:
    """Stop the persistent worker processes of a Runner's built data loaders now.

    Left to the garbage collector, each worker's shutdown waits out a join timeout (about 20 s
    per Runner with mmdet's 2 + 2 persistent workers), because the loaders' queues are
    finalised before the workers are told to stop.
    """
    from mmengine.runner import BaseLoop
    for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
        iterator = getattr(getattr(loop, 'dataloader', None), '_iterator', None) \
            if isinstance(loop, BaseLoop) else None
        if iterator is not None and hasattr(iterator, '_shutdown_workers'):
            iterator._shutdown_workers()


def _fmt(value: Optional[float], kind: str = '') -> str:
    if value is None:
        return 'n/a'
    return f'{100 * value:.0f}%' if kind == '%' else f'{value:.2f}'


def _jsonable(obj: Any, where: str = 'value') -> Any:
    """``obj`` as plain JSON data for the ledger: arrays and tensors to lists. A non-finite
    float or an object JSON has no form for is an error naming where it is: nothing written to
    the ledger is silently repaired."""
    if isinstance(obj, dict):
        return {k if isinstance(k, (str, int)) else str(k): _jsonable(v, f'{where}[{k!r}]')
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f'{where}[{n}]') for n, v in enumerate(obj)]
    if hasattr(obj, 'tolist'):  # numpy arrays and scalars, torch tensors
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f'{where} is {obj}: the ledger does not store NaN or infinite '
                         f'numbers; the strategy must give None for what it could not compute')
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f'{where} is a {type(obj).__name__} ({obj!r:.80}), which the ledger cannot '
                    f'store: strategies give plain numbers, strings, lists and dicts')
