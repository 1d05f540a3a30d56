"""The ``active_learning = dict(...)`` block of a config, validated.

:class:`~mmdet_isal.cost.Budget` and :class:`~mmdet_isal.cost.CostModel` live in
:mod:`mmdet_isal.cost` (the strategies and ISAL's ranking use them too); ``Budget`` is also
importable from here, as before.
"""
import copy
import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Union

from mmdet_isal.cost import Budget, CostModel
from mmdet_isal.detection import ScorerOptions
from mmdet_isal.influence.checks import (check_choice, check_int, check_keys, check_number,
                                         did_you_mean)
from mmdet_isal.registry import STRATEGIES

RETRAIN_MODES = ('scratch', 'finetune', 'step0')
#: Who labels the picks: the pool's own boxes revealed (``'simulated'``), or a person with an
#: annotation tool, the loop pausing after each selection (``'manual'``).
ANNOTATORS = ('simulated', 'manual')
#: How deeply the image files are checked before training (mmdet_isal.datasets.images).
CHECK_DEPTHS = ('header', 'decode')


@dataclass
class ActiveLearningConfig:
    """Validated ``active_learning`` block.

    Args:
        strategy: a registered strategy name (``'isal'``, ``'random'``) or a dict
            ``dict(type=name, **options)``.
        initial: size of the step-0 labeled set, drawn at random from the pool with ``seed``
            (the same for every strategy, so runs with one seed share step 0):
            ``dict(images=N)``, ``dict(boxes=N)`` or ``dict(seconds=S)``.
        budget: what each selection adds (the same forms; :func:`~mmdet_isal.cost.apply_budget`).
        steps: number of trained steps, the initial one included (``steps - 1`` selections), as
            in the paper's tables: 20 steps from 5000 images by +1000 end at 24000 images.
        target_ap: stop after the step whose ``bbox_mAP`` (mmdet's 0-1 scale) reaches it.
        seed: seeds the initial set, the strategies and training (``randomness.seed`` when the
            config sets none).
        retrain: ``'scratch'`` re-initialises the model each step (the paper);
            ``'finetune'`` starts each step from the previous step's checkpoint; ``'step0'``
            starts every later step from step 0's checkpoint (each step's model then depends
            on the step-0 model and that step's labeled set only, not on the steps between).
        finetune_cfg: with ``retrain='finetune'`` or ``'step0'``, a config fragment merged over
            the config of every step that starts from a checkpoint (mmengine's merge:
            ``_delete_=True`` replaces a dict, lists are replaced), e.g. a shorter schedule:
            ``dict(train_cfg=dict(_delete_=True, type='IterBasedTrainLoop', max_iters=500),
            ...)``. ``None``: those steps train with the config's own schedule.
        scorer: the scorer options (the config's flat dict, parsed once here into
            :class:`~mmdet_isal.detection.ScorerOptions`), handed to the strategies: ISAL reads
            them whole, the baselines their detection pass (``score_thr``, ``batch_size``).
        reference: annotation file of ISAL's reference set; ``None`` uses the validation set.
        cost: the annotation cost model, ``dict(per_image=S, per_box=S)`` in annotator seconds
            (:class:`~mmdet_isal.cost.CostModel`; defaults 1 s per class of the data set per
            image, 7 s per box). It prices the ``seconds`` budgets and the reports' annotation
            hours; ``per_image=None`` is resolved by the loop from the data set's classes
            (:meth:`resolved_cost`) and recorded in the ledger.
        annotator: ``'simulated'`` (the pool's own boxes are revealed when an image is picked)
            or ``'manual'`` (the pool has no boxes: after each selection the loop writes
            ``step_K/to_annotate/`` and pauses until the labels are imported with ``--resume
            --annotations FILE``). Required for a pool without annotations.
        labeled: manual mode: a COCO file of images already labeled (not in the pool, images
            in the pool's image directory, e.g. from ``tools/make_pool.py --labeled-out``);
            step 0 trains on it. Without it, ``initial`` draws the first images to annotate.
        prelabel_thr: detections with ``score >= prelabel_thr`` (0-1) become the pre-labels
            of ``to_annotate/`` (the pseudo boxes of the gallery use ``scorer.score_thr``).
        gallery: how many picks the gallery of each selection shows (0: none).
        check_images: ``'header'`` (headers and file ends, about 0.1 ms per image) or
            ``'decode'`` (every pixel, once; cached by path, size and modification time).
    """
    initial: Optional[Budget]
    budget: Budget
    steps: int
    strategy: Union[str, Dict[str, Any]] = 'isal'
    target_ap: Optional[float] = None
    seed: int = 0
    retrain: str = 'scratch'
    finetune_cfg: Optional[Dict[str, Any]] = None
    scorer: ScorerOptions = field(default_factory=ScorerOptions)
    reference: Optional[str] = None
    cost: CostModel = field(default_factory=CostModel)
    annotator: str = 'simulated'
    labeled: Optional[str] = None
    prelabel_thr: float = 0.3
    gallery: int = 16
    check_images: str = 'header'

    REQUIRED = ('initial', 'budget', 'steps')
    EXAMPLE = ("active_learning = dict(strategy='isal', initial=dict(images=5000), "
               "budget=dict(images=1000), steps=20)")

    @classmethod
    def from_dict(cls, block: Optional[Dict[str, Any]],
                  strategy_class: Optional[Callable[[str], Any]] = None
                  ) -> 'ActiveLearningConfig':
        """Validate a config's ``active_learning`` dict; every error names the key to fix.

        ``strategy_class(name)``: the class a strategy name builds in the run's task, whose
        arguments the strategy's options are checked against (the task's
        :meth:`~mmdet_isal.active.task.Task.strategy_class`; default the registry's class of
        that name, as detection builds)."""
        if block is None:
            raise KeyError(f'the config has no active_learning block; add one, e.g. '
                           f'{cls.EXAMPLE}')
        block = copy.deepcopy(dict(block))
        check_keys(block, cls.__dataclass_fields__, 'active_learning', error=KeyError)
        _check_annotation_keys(block)
        missing = [k for k in cls.REQUIRED if k not in block
                   and not (k == 'initial' and block.get('labeled'))]
        if missing:
            raise KeyError(f'active_learning is missing {", ".join(missing)}; e.g. '
                           f'{cls.EXAMPLE}')
        block['initial'] = Budget.from_dict(_plain(block['initial']), 'initial') \
            if block.get('initial') is not None else None
        block['budget'] = Budget.from_dict(_plain(block['budget']), 'budget')
        block['cost'] = CostModel.from_dict(_plain(block.get('cost')))
        # trained steps, the initial one included
        check_int(block['steps'], 'active_learning.steps', minimum=1)
        check_choice(block.get('retrain', 'scratch'), 'active_learning.retrain', RETRAIN_MODES)
        finetune_cfg = _plain(block.get('finetune_cfg'))
        if finetune_cfg is not None:
            if not isinstance(finetune_cfg, dict):
                raise ValueError(f'active_learning.finetune_cfg must be a dict (a config '
                                 f'fragment) or None, got {finetune_cfg!r}')
            if block.get('retrain', 'scratch') == 'scratch':
                raise ValueError("active_learning.finetune_cfg applies to the steps that start "
                                 "from a checkpoint: set retrain='finetune' or 'step0', or "
                                 "remove finetune_cfg")
            block['finetune_cfg'] = finetune_cfg
        strategy = _plain(block.get('strategy', 'isal'))
        if not (isinstance(strategy, str) or (isinstance(strategy, dict) and 'type' in strategy)):
            raise ValueError(f"active_learning.strategy must be a name or dict(type=name, ...), "
                             f"got {strategy!r}")
        # parsed once, here: everything downstream takes the parsed options
        block['scorer'] = ScorerOptions.from_dict(_plain(block.get('scorer') or {}),
                                                  where='active_learning.scorer')
        _check_strategy(strategy, block['scorer'], strategy_class or STRATEGIES.get)
        block['strategy'] = strategy
        name = strategy if isinstance(strategy, str) else strategy.get('type')
        if block.get('annotator') == 'manual' and name == 'matched_random':
            raise ValueError("active_learning.strategy='matched_random' replaces each pick with "
                             "a random image of the same true box count, which a pool without "
                             "boxes does not have: it is a control for simulated runs; with "
                             "annotator='manual' use its inner strategy (e.g. 'isal')")
        check_int(block.get('seed', 0), 'active_learning.seed', minimum=0)
        target = block.get('target_ap')
        if target is not None:
            check_number(target, "active_learning.target_ap (on mmdet's 0-1 scale, e.g. 0.25)",
                         minimum=0, maximum=1, open_min=True)
        reference = block.get('reference')
        if reference is not None and not isinstance(reference, str):
            raise ValueError(f'active_learning.reference must be the path of an annotation file '
                             f'or None, got {reference!r}')
        return cls(**block)

    @property
    def strategy_name(self) -> str:
        return self.strategy if isinstance(self.strategy, str) else self.strategy['type']

    def resolved_cost(self, num_classes: int) -> 'ActiveLearningConfig':
        """This block with the cost model's default ``per_image`` resolved from the data set's
        number of classes (:meth:`~mmdet_isal.cost.CostModel.resolved`)."""
        return dataclasses.replace(self, cost=self.cost.resolved(num_classes))

    def to_dict(self) -> Dict[str, Any]:
        """The block as plain JSON-able data (budgets back to ``dict(images=N)`` form, the
        scorer options as the flat dict of every option, the cost model as
        ``dict(per_image=..., per_box=...)``)."""
        out = {k: copy.deepcopy(getattr(self, k)) for k in self.__dataclass_fields__}
        out.update(initial=self.initial.to_dict() if self.initial is not None else None,
                   budget=self.budget.to_dict(), scorer=self.scorer.to_dict(),
                   cost=self.cost.to_dict())
        return out

    @property
    def manual(self) -> bool:
        """Whether a person annotates the picks (``annotator='manual'``)."""
        return self.annotator == 'manual'


def _check_annotation_keys(block: Dict[str, Any]) -> None:
    """The keys of who annotates: ``annotator``, ``labeled``, ``prelabel_thr``, ``gallery``,
    ``check_images``; ``labeled`` and ``initial`` in manual mode."""
    check_choice(block.get('annotator', 'simulated'), 'active_learning.annotator', ANNOTATORS)
    check_number(block.get('prelabel_thr', 0.3), 'active_learning.prelabel_thr (a detection '
                 'score, 0-1)', minimum=0, maximum=1)
    check_int(block.get('gallery', 16), 'active_learning.gallery (picks shown)', minimum=0)
    check_choice(block.get('check_images', 'header'), 'active_learning.check_images',
                 CHECK_DEPTHS)
    labeled = block.get('labeled')
    manual = block.get('annotator') == 'manual'
    if labeled is not None:
        if not isinstance(labeled, str):
            raise ValueError(f'active_learning.labeled must be the path of a COCO file of '
                             f'labeled images, got {labeled!r}')
        if not manual:
            raise ValueError("active_learning.labeled (images already labeled, outside the "
                             "pool) is for annotator='manual'; in simulation the initial set "
                             "comes from the pool: use initial=dict(images=N)")
        if block.get('initial') is not None:
            raise ValueError('active_learning: give labeled (step 0 trains on your labeled '
                             'images) or initial (a random first set from the pool for you to '
                             'annotate), not both')
    elif manual and block.get('initial') is not None and \
            next(iter(_plain(block['initial']) or {'?': 0}), None) != 'images':
        raise ValueError(f"active_learning.initial={_plain(block['initial'])!r}: in manual "
                         f"mode the first set is drawn before any model exists, so there are "
                         f"no predicted boxes to count: use initial=dict(images=N)")


def _check_strategy(strategy: Union[str, Dict[str, Any]], scorer: ScorerOptions,
                    strategy_class: Callable[[str], Any]) -> None:
    """The strategy is registered, its options are arguments of its class (the one
    ``strategy_class`` gives for its name), and its own ``scorer`` options (ISAL's) can be
    laid over the run's ``scorer``."""
    name = strategy if isinstance(strategy, str) else strategy['type']
    strategy_cls = strategy_class(name)
    if strategy_cls is None:
        raise ValueError(f'active_learning.strategy: no strategy named {name!r}'
                         f'{did_you_mean(name, STRATEGIES.module_dict)}; '
                         f'registered: {", ".join(sorted(STRATEGIES.module_dict))}')
    if isinstance(strategy, dict):
        options = {k for k in strategy if k not in ('type', '_scope_')}
        params = inspect.signature(strategy_cls).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            check_keys(options, [k for k in params if k != 'self'],
                       f'active_learning.strategy ({name})')
        if strategy.get('scorer') is not None:
            scorer.replace(strategy['scorer'], where='active_learning.strategy.scorer')


def _plain(value: Any) -> Any:
    """ConfigDict -> dict, recursively, so that values compare and serialise as plain data."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
