"""The trainer seam: how the loop trains, evaluates and gets the model of a step.

The loop (:class:`~mmdet_isal.active.loop.ActiveLearningLoop`) owns the protocol: which step and
stage runs, the ledger, budgets, selections, the stop at a target, resume. A :class:`Trainer`
owns how a step's model comes to be and what it scores: :meth:`~Trainer.train` it on the step's
labeled subset, :meth:`~Trainer.evaluate` it, hand it to the strategy
(:meth:`~Trainer.model_of`), and free what it holds (:meth:`~Trainer.release`). The loop tells
it about a step with a :class:`StepJob` (paths only) and records what it returns.

:class:`MMEngineTrainer` trains an mmdet detector with mmengine's Runner, from the config's
``train_dataloader``/``train_cfg``, and evaluates it with ``val_dataloader``/``val_evaluator``.
Other trainers fit the same seam, e.g. one wrapping it that trains step 0 once per seed and
hands that checkpoint and its evaluation to every strategy run of the seed, or one training an
mmengine ``BaseModel`` classifier whose :attr:`~Trainer.primary_metric` is an accuracy.
"""
import copy
import gc
import itertools
import os.path as osp
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Dict, NamedTuple, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.dist import barrier
from mmengine.logging import print_log
from mmengine.runner import BaseLoop, Runner
from mmengine.runner.checkpoint import find_latest_checkpoint

from mmdet_isal.active.preflight import check_checkpoints
from mmdet_isal.active.subsets import pool_dataset_cfg
from mmdet_isal.detection.features import detect_pool
from mmdet_isal.engine.hooks import FiniteLossHook, ProgressHook, StopOnSignalHook
from mmdet_isal.utils.dist import prepare_runner_cfg
from mmdet_isal.utils.model import unwrap_model

#: Where the summary's ``bbox_mAP`` / ``bbox_mAP_50`` come from, first match wins: mmdet's
#: CocoMetric, then VOCMetric (whose mAP is at IoU 0.5 by default, VOC's own measure).
AP_KEYS = {
    'bbox_mAP': ('coco/bbox_mAP', 'pascal_voc/mAP'),
    'bbox_mAP_50': ('coco/bbox_mAP_50', 'pascal_voc/AP50'),
}
#: Train loops whose in-training validation the trainer switches off (the loop evaluates once
#: after training).
_LOOPS_WITH_VAL_BEGIN = ('EpochBasedTrainLoop', 'IterBasedTrainLoop')
_runner_ids = itertools.count()


@dataclass(frozen=True)
class StepJob:
    """What the loop tells a trainer about step ``step``.

    Args:
        step: the active-learning step (0: the initial random set).
        work_dir: the step's directory (``DIR/step_K``); the trainer's logs and checkpoints go
            here, and a checkpoint found here is an interrupted training of this step.
        labeled_ann_file: the annotation file of the step's training set.
        init_checkpoint: start training from this checkpoint (``retrain='finetune'``: the
            previous step's; ``'step0'``: step 0's); ``None``: from the config's own
            initialisation.
        checkpoint: the step's trained checkpoint as recorded in the ledger (absolute path),
            to load the model from after a restart; ``None`` before training.
    """
    step: int
    work_dir: str
    labeled_ann_file: str
    init_checkpoint: Optional[str] = None
    checkpoint: Optional[str] = None

    @property
    def name(self) -> str:
        return f'step_{self.step}'


class TrainedModel(NamedTuple):
    """A step's trained model for the strategy: ``model`` unwrapped (no DDP wrapper) and in
    eval mode; ``cfg`` the step's config (its ``train_dataloader`` on the labeled subset, its
    ``val_dataloader`` on the evaluation set)."""
    model: Any
    cfg: Config


class Trainer(metaclass=ABCMeta):
    """How a step's model is trained, evaluated and handed to the strategy.

    Every process of a distributed run calls every method; a trainer makes the processes agree
    (e.g. a barrier after the main process saved a checkpoint). The loop runs each call inside
    the step's quiet console (everything printed goes to ``DIR/step_K/console.log``).

    Attributes:
        primary_metric: the metric of :meth:`evaluate` (0-1 scale) that
            ``active_learning.target_ap`` is compared with.
        metric_names: the metrics :meth:`evaluate` gives besides ``metrics``; the loop logs
            them.
        log: where the trainer's notes go; the loop sets its own (the terminal and
            ``DIR/al_loop.log``).
    """

    primary_metric: str = 'bbox_mAP'
    metric_names: Tuple[str, ...] = tuple(AP_KEYS)

    def __init__(self):
        self.log: Callable[[str], None] = lambda msg: print_log(msg, logger='current')

    def check_checkpoints(self, checks: Sequence[Tuple[str, str]]) -> None:
        """Before any training: fail if a checkpoint the run will load is not one of this
        trainer's model. ``checks`` are ``(path, what)`` pairs (``what`` names the path in
        messages, e.g. ``'load_from'``). By default nothing is checked."""

    @abstractmethod
    def train(self, job: StepJob) -> str:
        """Train the model of ``job.step`` on ``job.labeled_ann_file``, or finish an
        interrupted training of it (a checkpoint in ``job.work_dir``); returns the absolute
        path of the trained checkpoint, which the loop records."""

    @abstractmethod
    def evaluate(self, job: StepJob) -> Dict[str, Any]:
        """Evaluate the trained model of ``job.step``; returns ``metrics`` (every metric of
        the evaluation, plain numbers and strings) and each of :attr:`metric_names` as a float
        on the 0-1 scale. The loop records all of it in the step's ledger record."""

    @abstractmethod
    def model_of(self, job: StepJob) -> TrainedModel:
        """The trained model of ``job.step``: the one just trained or evaluated, or after a
        restart the one in ``job.checkpoint``."""

    def predict(self, job: StepJob, ann_file: str) -> Optional[Dict[Any, Dict[str, Any]]]:
        """The boxes the model of ``job.step`` detects in the images of ``ann_file`` (an
        annotation file in the pool's format; its boxes are not read), for the gallery of a
        selection and the pre-labels of manual mode: per image id, ``bboxes`` [K, 4] (x1 y1 x2
        y2, pixels of the image as loaded), ``scores`` [K] and ``labels`` [K] (class indices),
        numpy arrays. Every process calls it. By default ``None``: this trainer predicts no
        boxes (galleries then show none, and there are no pre-labels)."""
        return None

    def release(self) -> None:
        """Free what the trainer holds (models, data loader workers); called after each run."""


class MMEngineTrainer(Trainer):
    """Trains and evaluates an mmdet detector with mmengine's Runner.

    Step K's Runner is the user's config trained on ``DIR/step_K/labeled.*`` with its work_dir
    at ``DIR/step_K`` (:meth:`step_cfg`); training stops at the first non-finite loss and on
    SIGINT/SIGTERM between iterations, and shows a progress line. The Runner of the last step
    trained or loaded is kept for :meth:`evaluate` and :meth:`model_of` until :meth:`release`.

    Args:
        cfg: an mmdet config (``Config``); never modified. Its ``active_learning`` block, if
            any, is left out of the steps' configs.
        seed: ``randomness.seed`` of training where the config sets none (the run's seed).
        launcher: ``'none'``, ``'pytorch'`` or ``'slurm'`` (:func:`prepare_runner_cfg`).
        finetune_cfg: a config fragment merged over the config of every step that starts from
            a checkpoint (``active_learning.finetune_cfg``), e.g. a shorter schedule.
    """

    def __init__(self, cfg: Config, seed: int = 0, launcher: str = 'none',
                 finetune_cfg: Optional[Dict[str, Any]] = None):
        super().__init__()
        self.cfg = copy.deepcopy(cfg)
        self.finetune_cfg = copy.deepcopy(finetune_cfg)
        self.seed = seed
        self.launcher = launcher
        self._runner = None
        self._runner_step: Optional[int] = None

    def check_checkpoints(self, checks: Sequence[Tuple[str, str]]) -> None:
        """Each checkpoint must be one of the config's model (:func:`check_checkpoints`)."""
        check_checkpoints(self.cfg.get('model'), checks)

    def step_cfg(self, job: StepJob) -> Config:
        """The config of ``job``'s Runner: the user's config trained on the step's subset, with
        ``finetune_cfg`` merged over it when the job starts from a checkpoint."""
        cfg = copy.deepcopy(self.cfg)
        cfg.pop('active_learning', None)
        if job.init_checkpoint is not None and self.finetune_cfg:
            cfg.merge_from_dict(copy.deepcopy(self.finetune_cfg))
        cfg.work_dir = job.work_dir
        pool_dataset_cfg(cfg.train_dataloader.dataset)['ann_file'] = job.labeled_ann_file
        # Unique per Runner: mmengine keys its logger, visualizer and message hub by this name.
        cfg.experiment_name = f'{job.name}_{next(_runner_ids)}'
        cfg.resume = False
        randomness = dict(cfg.get('randomness') or {})
        if randomness.get('seed') is None:
            randomness['seed'] = self.seed
        cfg.randomness = randomness
        prepare_runner_cfg(cfg, self.launcher)
        train_cfg = cfg.train_cfg
        if train_cfg.get('type', 'EpochBasedTrainLoop') in _LOOPS_WITH_VAL_BEGIN:
            # The evaluate stage validates once after training; validating inside training too
            # would only cost time.
            train_cfg.val_begin = 2 ** 62
        return cfg

    def train(self, job: StepJob) -> str:
        """Train with ``runner.train()``. A previous, interrupted attempt (a checkpoint in
        ``job.work_dir``) is resumed with mmengine's ``resume``; otherwise training starts
        from ``job.init_checkpoint`` if given, else from the config's initialisation."""
        cfg = self.step_cfg(job)
        if find_latest_checkpoint(cfg.work_dir) is not None:
            cfg.resume, cfg.load_from = True, None
        elif job.init_checkpoint is not None:
            cfg.load_from = _existing(job.init_checkpoint, f'step_{job.step - 1}')
        self.release()
        runner = Runner.from_cfg(cfg)
        runner.register_hook(ProgressHook(f'{job.name} train'))
        self._register_guard_hooks(runner, job.name)
        runner.train()
        barrier()  # the main process has saved the last checkpoint
        self._runner, self._runner_step = runner, job.step
        ckpt = find_latest_checkpoint(cfg.work_dir)
        if ckpt is None:
            raise RuntimeError(f'training {job.name} saved no checkpoint in {cfg.work_dir}; '
                               f'keep default_hooks.checkpoint enabled (the loop scores and '
                               f'resumes from checkpoints)')
        return ckpt

    @staticmethod
    def _register_guard_hooks(runner, name: str) -> None:
        """Training stops at the first non-finite loss (naming the batch's images), and on
        SIGINT/SIGTERM between iterations, never while a checkpoint is written."""
        runner.register_hook(FiniteLossHook(f'{name} train'))
        runner.register_hook(StopOnSignalHook())

    def evaluate(self, job: StepJob) -> Dict[str, Any]:
        """``runner.val()`` with ``val_dataloader`` / ``val_evaluator``; ``bbox_mAP`` and
        ``bbox_mAP_50`` from :data:`AP_KEYS`. A detector that predicted no box at all gets 0
        (CocoMetric then returns no metric)."""
        metrics = self._runner_of(job).val() or {}
        found = {}
        if not metrics:
            # CocoMetric returns nothing when the detector predicted no box at all, which a
            # weak detector on a small initial set does: its AP is 0, and the run goes on.
            self.log(f'{job.name}: the detector predicted nothing on the evaluation set; '
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

    def predict(self, job: StepJob, ann_file: str) -> Dict[Any, Dict[str, Any]]:
        """The detections of the step's model: the test-time pass the strategies' detections
        come from (:func:`~mmdet_isal.detection.detect_pool`)."""
        trained = self.model_of(job)
        outputs = detect_pool(trained.model, trained.cfg, ann_file, batch_size=4,
                              title=f'{job.name}: detecting the picks')
        return {i: dict(bboxes=o.detections.bboxes.numpy(), scores=o.detections.scores.numpy(),
                        labels=o.detections.labels.numpy()) for i, o in outputs.items()}

    def model_of(self, job: StepJob) -> TrainedModel:
        """The Runner's model, unwrapped and in eval mode, and the Runner's config."""
        runner = self._runner_of(job)
        model = unwrap_model(runner.model)
        model.eval()
        return TrainedModel(model, runner.cfg)

    def _runner_of(self, job: StepJob):
        """The Runner holding ``job``'s trained model: the training one, or (after a restart)
        a new one loading ``job.checkpoint``."""
        if self._runner is not None and self._runner_step == job.step:
            return self._runner
        cfg = self.step_cfg(job)
        cfg.load_from = _existing(job.checkpoint, job.name)
        self.release()
        runner = Runner.from_cfg(cfg)
        runner.load_or_resume()
        self._runner, self._runner_step = runner, job.step
        return runner

    def release(self) -> None:
        """Drop the kept Runner, stopping its data loader workers now."""
        if self._runner is not None:
            _shutdown_dataloader_workers(self._runner)
        self._runner = self._runner_step = None
        gc.collect()


def _existing(path: Optional[str], step_name: str) -> str:
    """``path``, the checkpoint of ``step_name`` recorded in the ledger, if it exists."""
    if path is None:
        raise RuntimeError(f'{step_name} has no checkpoint in the ledger')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} (the checkpoint of {step_name}) is missing; it is '
                                f'needed to continue the run')
    return path


def _shutdown_dataloader_workers(runner) -> None:
    """Stop the persistent worker processes of a Runner's built data loaders now.

    Left to the garbage collector, each worker's shutdown waits out a join timeout (about 20 s
    per Runner with mmdet's 2 + 2 persistent workers), because the loaders' queues are
    finalised before the workers are told to stop.
    """
    for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
        iterator = getattr(getattr(loop, 'dataloader', None), '_iterator', None) \
            if isinstance(loop, BaseLoop) else None
        if iterator is not None and hasattr(iterator, '_shutdown_workers'):
            iterator._shutdown_workers()
