"""The ``active_learning = dict(...)`` block of a config, validated."""
import copy
import difflib
import inspect
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, Optional, Union

from mmdet_isal.detection import ScorerOptions
from mmdet_isal.registry import STRATEGIES

RETRAIN_MODES = ('scratch', 'finetune')


@dataclass(frozen=True)
class Budget:
    """How much to label at once: ``Budget('images', 1000)`` or ``Budget('boxes', 7000)``.

    Args:
        kind: ``'images'`` (exactly ``amount`` images) or ``'boxes'`` (images in order of
            preference until their ground-truth boxes reach ``amount``; the last image may
            overshoot, so the budget is exceeded by at most one image's boxes).
        amount: a positive integer.
    """
    kind: str
    amount: int

    @classmethod
    def from_dict(cls, value: Any, name: str) -> 'Budget':
        """Parse ``dict(images=N)`` or ``dict(boxes=N)``; ``name`` is the config key, for errors."""
        if not isinstance(value, dict) or len(value) != 1 or \
                next(iter(value)) not in ('images', 'boxes'):
            raise ValueError(
                f'active_learning.{name} must be dict(images=N) or dict(boxes=N), got {value!r}')
        kind, amount = next(iter(value.items()))
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise ValueError(
                f'active_learning.{name}.{kind} must be a positive integer, got {amount!r}')
        return cls(kind, amount)

    def to_dict(self) -> Dict[str, int]:
        return {self.kind: self.amount}


@dataclass
class ActiveLearningConfig:
    """Validated ``active_learning`` block.

    Args:
        strategy: a registered strategy name (``'isal'``, ``'random'``) or a dict
            ``dict(type=name, **options)``.
        initial: size of the step-0 labeled set, drawn at random from the pool with ``seed``
            (the same for every strategy, so runs with one seed share step 0).
        budget: what each selection adds.
        steps: number of trained steps, the initial one included (``steps - 1`` selections), as
            in the paper's tables: 20 steps from 5000 images by +1000 end at 24000 images.
        target_ap: stop after the step whose ``bbox_mAP`` (mmdet's 0-1 scale) reaches it.
        seed: seeds the initial set, the strategies and training (``randomness.seed`` when the
            config sets none).
        retrain: ``'scratch'`` re-initialises the model each step (the paper);
            ``'finetune'`` starts each step from the previous step's checkpoint.
        scorer: influence options handed to strategies that score by influence (ISAL).
        reference: annotation file of ISAL's reference set; ``None`` uses the validation set.
    """
    initial: Budget
    budget: Budget
    steps: int
    strategy: Union[str, Dict[str, Any]] = 'isal'
    target_ap: Optional[float] = None
    seed: int = 0
    retrain: str = 'scratch'
    scorer: Dict[str, Any] = field(default_factory=dict)
    reference: Optional[str] = None

    REQUIRED = ('initial', 'budget', 'steps')
    EXAMPLE = ("active_learning = dict(strategy='isal', initial=dict(images=5000), "
               "budget=dict(images=1000), steps=20)")

    @classmethod
    def from_dict(cls, block: Optional[Dict[str, Any]]) -> 'ActiveLearningConfig':
        """Validate a config's ``active_learning`` dict; every error names the key to fix."""
        if block is None:
            raise KeyError(f'the config has no active_learning block; add one, e.g. '
                           f'{cls.EXAMPLE}')
        block = copy.deepcopy(dict(block))
        _check_keys(block, cls.__dataclass_fields__, 'active_learning', error=KeyError)
        missing = [k for k in cls.REQUIRED if k not in block]
        if missing:
            raise KeyError(f'active_learning is missing {", ".join(missing)}; e.g. '
                           f'{cls.EXAMPLE}')
        block['initial'] = Budget.from_dict(_plain(block['initial']), 'initial')
        block['budget'] = Budget.from_dict(_plain(block['budget']), 'budget')
        steps = block['steps']
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f'active_learning.steps must be an integer >= 1 (trained steps, '
                             f'the initial one included), got {steps!r}')
        if block.get('retrain', 'scratch') not in RETRAIN_MODES:
            raise ValueError(f'active_learning.retrain must be one of {RETRAIN_MODES}, '
                             f'got {block["retrain"]!r}')
        strategy = _plain(block.get('strategy', 'isal'))
        if not (isinstance(strategy, str) or (isinstance(strategy, dict) and 'type' in strategy)):
            raise ValueError(f"active_learning.strategy must be a name or dict(type=name, ...), "
                             f"got {strategy!r}")
        _check_strategy(strategy)
        block['strategy'] = strategy
        block['scorer'] = _plain(block.get('scorer') or {})
        _check_scorer(block['scorer'])
        seed = block.get('seed', 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f'active_learning.seed must be a non-negative integer, got {seed!r}')
        target = block.get('target_ap')
        if target is not None and not (isinstance(target, (int, float)) and
                                       not isinstance(target, bool) and 0 < target <= 1):
            raise ValueError(f'active_learning.target_ap is on mmdet\'s 0-1 scale (e.g. 0.25), '
                             f'got {target!r}')
        reference = block.get('reference')
        if reference is not None and not isinstance(reference, str):
            raise ValueError(f'active_learning.reference must be the path of an annotation file '
                             f'or None, got {reference!r}')
        return cls(**block)

    @property
    def strategy_name(self) -> str:
        return self.strategy if isinstance(self.strategy, str) else self.strategy['type']

    def to_dict(self) -> Dict[str, Any]:
        """The block as plain JSON-able data (budgets back to ``dict(images=N)`` form)."""
        out = asdict(self)
        out['initial'] = self.initial.to_dict()
        out['budget'] = self.budget.to_dict()
        return out


def _check_keys(given: Iterable[str], allowed: Iterable[str], where: str,
                error: type = ValueError) -> None:
    """Raise ``error`` naming the keys of ``given`` not in ``allowed``, the closest allowed key
    of each, and every allowed key."""
    allowed = sorted(allowed)
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hints.append(f'{key} (did you mean {close[0]}?)' if close else str(key))
        raise error(f'unknown key(s) in {where}: {", ".join(hints)}; allowed keys: '
                    f'{", ".join(allowed) or "none"}')


def _check_strategy(strategy: Union[str, Dict[str, Any]]) -> None:
    """The strategy is registered and its options are arguments of its class."""
    name = strategy if isinstance(strategy, str) else strategy['type']
    strategy_cls = STRATEGIES.get(name)
    if strategy_cls is None:
        close = difflib.get_close_matches(str(name), STRATEGIES.module_dict, n=1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise ValueError(f'active_learning.strategy: no strategy named {name!r}{hint}; '
                         f'registered: {", ".join(sorted(STRATEGIES.module_dict))}')
    if isinstance(strategy, dict):
        options = {k for k in strategy if k not in ('type', '_scope_')}
        params = inspect.signature(strategy_cls).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            _check_keys(options, [k for k in params if k != 'self'],
                        f'active_learning.strategy ({name})')
        if isinstance(strategy.get('scorer'), dict):
            _check_scorer(strategy['scorer'], 'active_learning.strategy.scorer')


def _check_scorer(scorer: Dict[str, Any], where: str = 'active_learning.scorer') -> None:
    """Validate ``active_learning.scorer`` now, before training: its keys and values
    (:class:`ScorerOptions`, whose validation also builds the solver once, so that damping,
    scale and depth are range-checked)."""
    if not isinstance(scorer, dict):
        raise ValueError(f'{where} must be a dict of ISAL scorer options, got {scorer!r}')
    _check_keys(scorer, [f for f in ScorerOptions.__dataclass_fields__], where)
    try:
        ScorerOptions.from_dict(scorer)
    except (TypeError, ValueError) as e:
        raise ValueError(f'{where}: {e}') from None


def _plain(value: Any) -> Any:
    """ConfigDict -> dict, recursively, so that values compare and serialise as plain data."""
    if hasattr(value, 'to_dict'):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
