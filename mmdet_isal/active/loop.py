"""The active-learning loop: train, evaluate, score, select; step after step, resumable.

A run directory ``DIR`` (``--work-dir``) holds ``ledger.json`` (the run's state, written after
every stage), the report (``summary.csv``, ``summary.json``, ``ap_vs_boxes.png``),
``al_loop.log`` and per step ``DIR/step_K/``: ``labeled.json`` and ``unlabeled.json`` (VOC:
``.txt``) from the ledger, the trainer's files, ``console.log``, ``strategy/`` (with the
gallery) and in manual mode ``to_annotate/`` (the README's table of outputs lists every file).
Step K trains on ``step_K/labeled.*``; its selection gets ``labeled_step = K + 1``.

Manual mode (``annotator='manual'``, :mod:`.manual`): the pool has no boxes; the loop stops
before training a step whose images have no labels (:attr:`ActiveLearningLoop.pending` says
what to annotate); :meth:`ActiveLearningLoop.import_annotations` merges an export.

The loop owns the protocol and the ledger; the trainer (:mod:`.trainer`, by default
:class:`~.trainer.MMEngineTrainer`) trains, evaluates and hands a step's model to the
strategy; :mod:`.preflight` checks everything before any training.

Distributed (``launcher='pytorch'`` or ``'slurm'``, ``tools/dist_al_loop.sh``): every process
runs the loop; training is DDP, evaluation and ISAL scoring are spread over the processes, the
main process writes every file, and the ranking is the main process's, broadcast, so that
every process labels the same images.
"""
import copy
import itertools
import logging
import os
import os.path as osp
import time
from typing import Any, Dict, Optional, Tuple

from mmengine.config import Config
from mmengine.dist import barrier, broadcast_object_list, is_main_process
from mmengine.logging import MMLogger, print_log

from mmdet_isal.active import preflight
from mmdet_isal.active.config import ActiveLearningConfig
from mmdet_isal.active.diagnostics import selection_diagnostics, selection_message
from mmdet_isal.active.ledger import STAGES, PoolLedger
from mmdet_isal.active.manual import AnnotationRequest, ManualAnnotation, ManualPool
from mmdet_isal.active.picks import PickFiles
from mmdet_isal.active.report import (format_report, model_description, report_data,
                                      run_results, write_summary)
from mmdet_isal.active.step0 import SharedStep0Trainer
from mmdet_isal.active.subsets import apply_budget
from mmdet_isal.active.task import task_of
from mmdet_isal.active.trainer import StepJob, Trainer
from mmdet_isal.datasets.images import explain_image_failures, ids_by_path
from mmdet_isal.strategies.base import SelectionContext
from mmdet_isal.strategies.random import random_order
from mmdet_isal.utils.console import quiet
from mmdet_isal.utils.dist import LAUNCHERS, init_distributed
from mmdet_isal.utils.rng import Stream

_logger_ids = itertools.count()


class ActiveLearningLoop:
    """Runs the active-learning protocol of a config with an ``active_learning`` block.

    Each step K trains a model on the labeled subset and evaluates it (the trainer's job), ranks
    the still unlabeled images with the strategy, and labels the budget's worth of the
    best-ranked ones for step K + 1. The stages are methods (:meth:`train`, :meth:`evaluate`,
    :meth:`score`, :meth:`select`); each returns what goes in the ledger, and the ledger is
    saved after each, so a killed run resumes at the stage that was interrupted (training
    itself resumes from its last checkpoint).

    Args:
        cfg: an mmdet config (``Config``) with an ``active_learning`` block
            (:class:`ActiveLearningConfig`). Never modified.
        work_dir: the run directory; defaults to ``cfg.work_dir``.
        launcher: ``'none'``, or ``'pytorch'`` / ``'slurm'`` for a distributed run (every
            process builds the loop; the process group is initialised here if it is not yet).
        trainer: how each step's model is trained, evaluated and handed to the strategy
            (:class:`~mmdet_isal.active.trainer.Trainer`); default an
            :class:`~mmdet_isal.active.trainer.MMEngineTrainer` of ``cfg`` with the run's seed.
        shared_step0: a run directory whose step 0 (same seed and protocol) this run takes as
            its own instead of training it (:class:`~mmdet_isal.active.step0.
            SharedStep0Trainer`; the experiment runner trains one per seed).
    """

    LEDGER = 'ledger.json'

    def __init__(self, cfg: Config, work_dir: Optional[str] = None, launcher: str = 'none',
                 trainer: Optional[Trainer] = None, shared_step0: Optional[str] = None):
        if launcher not in LAUNCHERS:
            raise ValueError(f'launcher must be one of {LAUNCHERS}, got {launcher!r}')
        self.launcher = launcher
        init_distributed(launcher)
        self.cfg = copy.deepcopy(cfg)
        #: what differs between detection and classification (:mod:`mmdet_isal.active.task`)
        self.task = task_of(cfg)
        self.al = ActiveLearningConfig.from_dict(cfg.get('active_learning'),
                                                 self.task.strategy_class)
        self.work_dir = preflight.run_dir(cfg, work_dir)
        preflight.check_config(cfg)
        self.task.check_active_learning(self.al)
        self.pool = self.task.build_pool(cfg.train_dataloader.dataset,
                                         check_images=self.al.check_images)
        self.classes = preflight.check_annotator(self.pool, self.al, cfg)
        #: manual mode's part of the loop (None in simulation)
        self.manual = ManualAnnotation(self) if self.al.manual else None
        if self.manual is not None:
            self.pool = ManualPool(self.pool, self.al.labeled, self.classes,
                                   self.al.check_images)
        #: what a person must annotate before the run can go on (manual mode), after run()
        self.pending: Optional[AnnotationRequest] = None
        if not self.al.cost.is_resolved:
            # the default per_image (1 s per class) is fixed here, once, and recorded in the
            # ledger's meta with the rest of the block
            self.al = self.al.resolved_cost(preflight.num_classes(cfg))
        self.reference_ann_file = preflight.reference_ann_file(self.cfg, self.al)
        self.task.check_inputs(self.cfg, self.pool, self.reference_ann_file,
                               self.al.check_images)
        self.trainer = trainer if trainer is not None else self.task.trainer(
            self.cfg, seed=self.al.seed, launcher=launcher, finetune_cfg=self.al.finetune_cfg)
        if shared_step0 is not None:
            self.trainer = SharedStep0Trainer(self.trainer, shared_step0)
        self.trainer.check_checkpoints(
            preflight.checkpoints_to_check(self.cfg, self.work_dir, self.ledger_path))
        self.strategy = self.task.build_strategy(self.al.strategy)
        self.ledger: Optional[PoolLedger] = None
        self.logger: Optional[MMLogger] = None
        #: the gallery and to_annotate/ files of each selection
        self.picks = PickFiles(self)
        self._ids_by_path: Optional[Dict[str, Any]] = None

    @classmethod
    def from_cfg(cls, cfg: Config, launcher: str = 'none',
                 shared_step0: Optional[str] = None) -> 'ActiveLearningLoop':
        """Build the loop of ``cfg`` (its ``work_dir`` is the run directory)."""
        return cls(cfg, launcher=launcher, shared_step0=shared_step0)

    # --- paths --------------------------------------------------------------------------------
    @property
    def ledger_path(self) -> str:
        return osp.join(self.work_dir, self.LEDGER)

    def step_dir(self, step: int) -> str:
        """Directory of step ``step``: its subsets and its trainer's files."""
        return osp.join(self.work_dir, f'step_{step}')

    def subset_files(self, step: int) -> Tuple[str, str]:
        """(labeled, unlabeled) annotation files of ``step``."""
        return self.pool.subset_paths(self.step_dir(step))

    # --- the run ------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> PoolLedger:
        """Run (or with ``resume``, continue) every step; returns the final ledger.

        Calls :meth:`prepare` first unless it was called already.
        """
        if self.ledger is None:
            self.prepare(resume)
        steps = self.al.steps
        self.pending = None
        try:
            for step in range(steps):
                if self.ledger.finished(steps) or self._awaits_labels(step):
                    break
                if not self.ledger.step_record(step)['finished']:
                    self._run_step(step)
        finally:
            self.trainer.release()
        # the plot is redrawn after each evaluation; here only if there is none yet
        rows = self._save(report=True, plot=not osp.isfile(osp.join(self.work_dir,
                                                                     'ap_vs_boxes.png')))
        if rows:
            self._log('The learning curve:\n' + format_report(report_data(run_results(rows),
                                                                         baseline=None)))
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
            f'mmdet_isal.al_loop.{next(_logger_ids)}.{os.getpid()}',
            log_file=osp.join(self.work_dir, 'al_loop.log') if is_main_process() else None,
            file_mode='a')
        self.trainer.log = self._log
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
            for note in preflight.check_same_run(self.ledger, self.pool, self.al,
                                                 self.work_dir):
                self._log(note)
            if self.manual is not None:
                self.manual.restore()
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
                          task=self.task.name, active_learning=self.al.to_dict()))
            self._label_initial_set()
        self.ledger.meta['active_learning'] = self.al.to_dict()
        self.ledger.meta['model'] = model_description(self.cfg.get('model'))  # plot titles
        preflight.check_budget_fits(self.ledger, self.al, self.pool.ann_file)
        if isinstance(self.trainer, SharedStep0Trainer) and \
                not self.ledger.stage_done(0, 'evaluate'):
            self.trainer.check_ready(self.ledger.labeled_ids(0))
        self._save()

    def _label_initial_set(self) -> None:
        """Step 0's labeled set: a manual run's labeled images, else a random draw from the
        pool (in manual mode written to ``DIR/initial/to_annotate/`` for a person to label)."""
        if self.manual is not None and self.pool.labeled_file:
            self.ledger.label(self.pool.labeled_ids, 0)
            self.manual.start()
            return
        # The initial set depends on the seed only, so that strategies compared with one
        # seed start from the same labeled images.
        order = random_order(self.pool.image_ids, self.al.seed, Stream.INITIAL_SET)
        chosen = apply_budget(order, self.al.initial, self.pool.num_boxes,
                              what='active_learning.initial', cost=self.al.cost)
        self.ledger.label(chosen, 0)
        if self.manual is not None:
            self.picks.write_initial(chosen)

    def import_annotations(self, path: str, skipped: Optional[str] = None) -> str:
        """Merge a tool's export (COCO file or VOC folder) into the selection awaiting labels
        (manual mode), save the ledger, return what was done. Raises ValueError (e.g.
        :class:`~mmdet_isal.annotation.ImportRefused`) naming what is wrong; then nothing
        changed."""
        if self.manual is None:
            raise ValueError("--annotations merges labels into a run with "
                             "active_learning.annotator='manual'; this run is simulated (the "
                             "pool's own boxes are its labels)")
        if self.ledger is None:
            self.prepare(resume=True)
        message = self.manual.merge(path, skipped)
        self._save(report=True)
        self._log(message)
        return message

    def _awaits_labels(self, step: int) -> bool:
        """Manual mode: whether step ``step``'s images await labels; if so, :attr:`pending`
        says which and where."""
        if self.manual is None or self.manual.pending_round() != step:
            return False
        self.pending = self.manual.request(step)
        self._log(f'step_{step} waits for the labels of {self.pending.num_images} images '
                  f'({self.pending.directory})')
        return True

    def _run_step(self, step: int) -> None:
        rec = self.ledger.step_record(step)
        labeled = self.ledger.labeled_ids(step)
        boxes = f'{self.ledger.num_boxes(labeled)} boxes, ' if self.task.labels_are_boxes \
            else ''
        self._log(f'step {step + 1}/{self.al.steps} (step_{step}): {len(labeled)} labeled '
                  f'images, {boxes}{len(self.ledger.unlabeled_ids(step))} unlabeled')
        if is_main_process():
            self.pool.write_split(labeled, self.step_dir(step))
        barrier()  # every process trains on the subsets the main process wrote
        for stage in STAGES:
            if self.ledger.stage_done(step, stage) or stage not in self.ledger.planned_stages(
                    step, self.al.steps, stopped=bool(rec.get('stopped'))):
                continue  # done before, or nothing to select (the last step, a stopped run)
            start = time.perf_counter()
            # mmengine's logs, config dumps and warnings go to the step's console.log; the
            # terminal keeps one line per stage and the progress lines
            with quiet(self._console_log(step)), \
                    explain_image_failures(f'step_{step} {stage}', self._image_ids()):
                results = getattr(self, stage)(step) or {}
            seconds = time.perf_counter() - start
            self.ledger.finish_stage(step, stage, seconds, **results)
            self._log(f'step_{step}: {stage} finished in {seconds:.1f} s' +
                      ''.join(f', {k}={v:.4f}' for k, v in results.items()
                              if k in self.trainer.metric_names))
            if stage == 'evaluate':
                target, metric = self.al.target_ap, self.trainer.primary_metric
                if target is not None and rec[metric] >= target:
                    self.ledger.stop(step, f'{metric} {rec[metric]:.4f} >= target_ap {target}')
                    self._log(f'step_{step}: {rec["stopped"]}: stopping')
            # a selection changes the summary (its diagnostics) but not the AP curves
            self._save(report=stage in ('evaluate', 'select'), plot=stage == 'evaluate')
        self.ledger.finish_step(step)
        self._save()

    # --- stages -------------------------------------------------------------------------------
    def job(self, step: int, init_checkpoint: Optional[str] = None) -> StepJob:
        """What the trainer is told about ``step``: its directory, its training set, the
        checkpoint to start from, and its own checkpoint once the ledger records one."""
        recorded = self.ledger.steps.get(step, {}).get('checkpoint')
        return StepJob(step, self.step_dir(step), self.subset_files(step)[0], init_checkpoint,
                       None if recorded is None else osp.join(self.work_dir, recorded))

    def train(self, step: int) -> Dict[str, Any]:
        """Train the model of ``step`` on its labeled subset (:meth:`Trainer.train`), from the
        previous step's checkpoint with ``retrain='finetune'``, from step 0's with
        ``retrain='step0'``; returns its checkpoint, relative to the run directory."""
        init = None
        if step > 0 and self.al.retrain in ('finetune', 'step0'):
            source = step - 1 if self.al.retrain == 'finetune' else 0
            init = self.job(source).checkpoint
            if init is None:
                raise RuntimeError(f'step_{source} has no checkpoint in the ledger')
        checkpoint = self.trainer.train(self.job(step, init_checkpoint=init))
        return dict(checkpoint=osp.relpath(checkpoint, self.work_dir))

    def evaluate(self, step: int) -> Dict[str, Any]:
        """Evaluate the model of ``step`` (:meth:`Trainer.evaluate`): its metrics."""
        return self.trainer.evaluate(self.job(step))

    def score(self, step: int) -> Dict[str, Any]:
        """Rank the images unlabeled at ``step`` with the strategy; the ranking goes in the
        ledger."""
        trained = self.trainer.model_of(self.job(step))
        labeled_file, unlabeled_file = self.subset_files(step)
        context = SelectionContext(
            model=trained.model, cfg=trained.cfg, unlabeled_ann_file=unlabeled_file,
            labeled_ann_file=labeled_file, reference_ann_file=self.reference_ann_file,
            work_dir=osp.join(self.step_dir(step), 'strategy'), step=step, seed=self.al.seed,
            unlabeled_ids=self.ledger.unlabeled_ids(step), scorer=copy.deepcopy(self.al.scorer),
            budget=self.al.budget, cost=self.al.cost, pool_boxes=self._pool_boxes(step),
            pool_classes=self._pool_classes(step))
        ranking = self.strategy.rank(context)
        # every process labels the same images: the main process's ranking
        box = [ranking]
        broadcast_object_list(box)
        ranking = box[0]
        self._report_nonfinite(step, ranking.details)
        self.ledger.record_ranking(step, ranking.order, ranking.scores, ranking.details)
        unscored = sum(ranking.scores[i] is None for i in ranking.order)
        if unscored:
            self._log(f'step_{step}: {unscored} of {len(ranking.order)} images got no score '
                      f'from the strategy; they rank last')
        return dict(num_scored=len(ranking.order) - unscored, num_unscored=unscored,
                    strategy_info=ranking.info)

    def _report_nonfinite(self, step: int, details: Dict[Any, Dict[str, Any]]) -> None:
        """Name the images whose score the strategy found not finite (NaN/Inf loss or gradient
        while scoring); they rank last and are never silently given a number."""
        bad = [i for i, d in details.items() if d.get('status') == 'nonfinite']
        if bad:
            print_log(f'step_{step} score: {len(bad)} image(s) had a NaN or infinite loss or '
                      f'gradient and got no score (they rank last): image ids {bad[:10]}',
                      logger=self.logger, level=logging.WARNING)

    def select(self, step: int) -> Dict[str, Any]:
        """Label the budget's worth of the best-ranked images of ``step`` for ``step + 1``;
        draw their gallery, and in manual mode write ``step_K/to_annotate/``."""
        ranked = self.ledger.ranking(step)
        counts = self.budget_counts(step, ranked)
        chosen = apply_budget(ranked, self.al.budget,
                              counts if counts is not None else dict.fromkeys(ranked, 0),
                              what='active_learning.budget', cost=self.al.cost)
        self.ledger.label(chosen, step + 1)
        images = self.ledger.images
        pseudo = {i: images[i]['details'][step]['num_pseudo_boxes'] for i in ranked
                  if 'num_pseudo_boxes' in images[i]['details'].get(step, {})}
        # a classifier's ISAL scores each image as its predicted class (a class index)
        pseudo_labels = {i: self.pool.classes[images[i]['details'][step]['pseudo_label']]
                         for i in ranked if 'pseudo_label' in images[i]['details'].get(step, {})}
        # manual mode: the true counts are unknown until the picks are annotated
        diag = selection_diagnostics(
            chosen, ranked, {i: images[i]['scores'].get(step) for i in ranked}, pseudo,
            {} if self.manual is not None else self.pool.num_boxes, self.pool.box_classes,
            score_thr=(self.ledger.steps[step].get('strategy_info') or {}).get('score_thr'),
            pseudo_labels=pseudo_labels)
        self.picks.write(step, chosen)
        if self.manual is not None:
            boxes = seconds = None
            if counts is not None:
                boxes, seconds = sum(counts[i] for i in chosen), self.al.cost.seconds(chosen,
                                                                                     counts)
            why = ('the budget counts them: the pool has no boxes yet'
                   if self.al.budget.kind != 'images' else 'until they are annotated')
            self._log(f'step_{step}: picked {len(chosen)} images to annotate'
                      + (f', {boxes} predicted boxes, {seconds / 3600:.2f} predicted annotator '
                         f'hours ({why})' if counts is not None else ''))
            return dict(num_selected=len(chosen), num_selected_boxes=boxes,
                        num_selected_seconds=seconds, selection=diag)
        self._log(selection_message(step, diag, boxes=self.task.labels_are_boxes))
        return dict(num_selected=len(chosen), num_selected_boxes=self.ledger.num_boxes(chosen),
                    num_selected_seconds=self.al.cost.seconds(chosen, self.pool.num_boxes),
                    selection=diag)

    def _pool_boxes(self, step: int) -> Optional[Dict[Any, int]]:
        """The true box counts of the images unlabeled at ``step`` (the oracle's, as the
        budgets read them), for the strategies that match costs (``SelectionContext.
        pool_boxes``); ``None`` in manual mode, where the pool has no boxes."""
        if self.manual is not None:
            return None
        return {i: self.pool.num_boxes[i] for i in self.ledger.unlabeled_ids(step)}

    def _pool_classes(self, step: int) -> Optional[Dict[Any, int]]:
        """The true class of each image unlabeled at ``step``, where the pool has one label
        per image (a classification list; ``SelectionContext.pool_classes``); ``None`` in
        manual mode and for a detection pool."""
        if self.manual is not None or self.pool.labels is None:
            return None
        return {i: self.pool.labels[i] for i in self.ledger.unlabeled_ids(step)}

    def budget_counts(self, step: int, ranked) -> Optional[Dict[Any, int]]:
        """The box counts the budget rule spends, from this one place: the pool's true counts in
        simulation; in manual mode the predicted ones (:meth:`~mmdet_isal.active.manual.
        ManualAnnotation.predicted_counts`) when the budget counts boxes or the strategy
        counted them anyway, else ``None`` (unknown; an image budget needs none)."""
        if self.manual is None:
            return self.pool.num_boxes
        details = self.ledger.images
        if self.al.budget.kind == 'images' and not all(
                'num_pseudo_boxes' in details[i]['details'].get(step, {}) for i in ranked):
            return None
        return self.manual.predicted_counts(step, ranked)

    # --- helpers ------------------------------------------------------------------------------
    def _image_ids(self) -> Dict[str, Any]:
        """Pool image ids by file path, to name an image that fails to load."""
        if self._ids_by_path is None:
            self._ids_by_path = ids_by_path(self.pool.image_files(self.pool.img_dir))
        return self._ids_by_path

    def _console_log(self, step: int) -> Optional[str]:
        """Where everything printed during a stage of ``step`` goes (main process only)."""
        if not is_main_process():
            return None
        os.makedirs(self.step_dir(step), exist_ok=True)
        return osp.join(self.step_dir(step), 'console.log')

    def _save(self, report: bool = False, plot: bool = False):
        """Save the ledger (with ``report`` the summaries, with ``plot`` also their plot); only
        the main process writes."""
        if not is_main_process():
            return None
        self.ledger.save(self.ledger_path)
        if report:
            return write_summary(self.ledger, self.work_dir, plot=plot)
        return None

    def _log(self, msg: str) -> None:
        print_log(msg, logger=self.logger)

