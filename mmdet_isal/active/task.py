"""What differs between the tasks the loop runs (detection, image classification), in one object
looked up once per run.

A :class:`Task` says how the loop builds the pool of a config and checks the other inputs
(:meth:`~Task.build_pool`, :meth:`~Task.check_inputs`), which trainer trains and evaluates a
step by default (:meth:`~Task.trainer`; its ``primary_metric`` is the curve's y axis) and how a
strategy named in ``active_learning.strategy`` is built for the task's model
(:meth:`~Task.build_strategy`: a strategy ranks with the model's per-image outputs, which differ
between a detector and a classifier). The loop knows this interface only.

:func:`task_of` finds the task of a config by the type of its training data set
(``train_dataloader.dataset``, through wrappers): a task registered with
:func:`register_task` for that type, else :class:`DetectionTask` (mmdet's COCO and VOC data
sets). The image classification task registers itself when :mod:`mmdet_isal` is imported
(:mod:`mmdet_isal.classification.task`).
"""
import copy
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from mmengine.config import Config

from mmdet_isal.active import preflight
from mmdet_isal.active.subsets import Pool, build_pool, pool_dataset_cfg
from mmdet_isal.active.trainer import MMEngineTrainer, Trainer
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import BaseStrategy

__all__ = ['Task', 'DetectionTask', 'register_task', 'task_of', 'task_named', 'TASKS']


class Task:
    """The loop's view of a task (the default: mmdet detection, as the loop always ran).

    Attributes:
        name: the task's name, recorded in the ledger's meta (``task``).
        labels_are_boxes: whether an image's labels are boxes whose count varies (detection)
            rather than one label per image (classification); the loop's log counts them.
    """
    name = 'detection'
    labels_are_boxes = True

    def build_pool(self, dataset_cfg: Mapping, check_images: Union[bool, str]) -> Pool:
        """The pool of ``train_dataloader.dataset``, read and checked
        (:func:`~mmdet_isal.active.subsets.build_pool`)."""
        return build_pool(dataset_cfg, check_images=check_images)

    def check_inputs(self, cfg: Config, pool: Pool, reference: str,
                     check_images: str) -> None:
        """The files the run reads besides the pool (:func:`~.preflight.check_inputs`)."""
        preflight.check_inputs(cfg, pool, reference, check_images)

    def check_active_learning(self, al: Any) -> None:
        """Refuse ``active_learning`` settings the task cannot run (ValueError naming the key);
        detection runs them all."""

    def trainer(self, cfg: Config, seed: int, launcher: str,
                finetune_cfg: Optional[Dict[str, Any]]) -> Trainer:
        """The default trainer of a run (:class:`~.trainer.MMEngineTrainer`)."""
        return MMEngineTrainer(cfg, seed=seed, launcher=launcher, finetune_cfg=finetune_cfg)

    def strategy_class(self, name: str) -> Optional[type]:
        """The class :meth:`build_strategy` builds for the strategy ``name`` (None: no such
        strategy), whose arguments a config's strategy options must be."""
        return STRATEGIES.get(name)

    def build_strategy(self, strategy: Union[str, Dict[str, Any]]) -> BaseStrategy:
        """The strategy of ``active_learning.strategy`` (a name or ``dict(type=name, ...)``),
        from :data:`~mmdet_isal.registry.STRATEGIES`."""
        spec = dict(type=strategy) if isinstance(strategy, str) else copy.deepcopy(strategy)
        # The registry's own scope, whatever scope (mmdet's) an earlier Runner made current.
        spec.setdefault('_scope_', STRATEGIES.scope)
        return STRATEGIES.build(spec)


class DetectionTask(Task):
    """mmdet detection: COCO or VOC pools, :class:`~.trainer.MMEngineTrainer`, the strategies
    registered under their names."""


#: ``{data set type: task}``: the tasks registered for the data set types they read.
TASKS: Dict[str, Task] = {}
_DEFAULT = DetectionTask()


def register_task(task: Task, dataset_types: Tuple[str, ...]) -> Task:
    """Make ``task`` the task of configs whose training data set has one of
    ``dataset_types``; returns it."""
    for name in dataset_types:
        TASKS[name] = task
    return task


def task_named(name: Optional[str]) -> Task:
    """The registered task whose :attr:`~Task.name` is ``name`` (a ledger's ``meta['task']``),
    else detection (ledgers from before tasks have none)."""
    return next((t for t in TASKS.values() if t.name == name), _DEFAULT)


def task_of(cfg: Config) -> Task:
    """The task of ``cfg``, by the type of its training data set (through wrappers):
    registered with :func:`register_task`, else detection."""
    dataset = cfg.get('train_dataloader', {}).get('dataset') if cfg.get('train_dataloader') \
        else None
    if not dataset:
        return _DEFAULT  # preflight.check_config names the missing key
    try:
        kind = pool_dataset_cfg(dataset).get('type')
    except (KeyError, ValueError):
        return _DEFAULT  # build_pool names what is wrong with the data set
    if not isinstance(kind, str):
        return _DEFAULT
    return TASKS.get(kind.split('.')[-1], _DEFAULT)  # 'mmdet.X' names X in mmdet's scope
