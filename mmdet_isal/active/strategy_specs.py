"""``--strategies`` entries: a registered strategy name or ``LABEL=TYPE(key=value, ...)``.

A spec names the runs of one strategy in an experiment (``DIR/<label>/seed_<k>``) and says
which strategy they use and with which options, e.g.
``isal_per_image=isal(scorer.loss_normalizer=per_image)`` gives the label ``isal_per_image``
and the strategy ``dict(type='isal', scorer=dict(loss_normalizer='per_image'))``.
"""
import ast
import copy
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from mmdet_isal.registry import STRATEGIES

SPEC_FORM = ('NAME or LABEL=TYPE(key=value, ...), e.g. random or '
             'isal_per_image=isal(scorer.loss_normalizer=per_image)')
_NAME = r'[A-Za-z_][A-Za-z0-9_-]*'
_SPEC = re.compile(rf'^\s*(?:(?P<label>{_NAME})\s*=\s*)?(?P<type>[A-Za-z_][A-Za-z0-9_.]*)\s*'
                   rf'(?:\((?P<args>.*)\))?\s*$', re.S)
_KEY = re.compile(r'^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$')


@dataclass
class StrategySpec:
    """One ``--strategies`` entry: the label of its runs and the strategy they use.

    Args:
        label: the name in reports and the run directories' ``DIR/<label>``.
        strategy: a registered name, or ``dict(type=name, **options)``.
        entry: the entry as given, for messages.
    """
    label: str
    strategy: Union[str, Dict[str, Any]]
    entry: str


def parse_strategy_spec(entry: str) -> StrategySpec:
    """Parse ``NAME`` or ``LABEL=TYPE(key=value, ...)``.

    Dotted keys nest (``scorer.loss_normalizer=per_image`` gives
    ``scorer=dict(loss_normalizer='per_image')``); values are Python literals
    (``ast.literal_eval``), anything else a string. The type is not checked against the
    registry here (:func:`parse_strategy_specs` does).

    Raises:
        ValueError: naming the entry and the expected form.
    """
    def bad(what):
        return ValueError(f'--strategies entry {entry!r}: {what}; expected {SPEC_FORM}')

    match = _SPEC.match(entry)
    if match is None:
        raise bad('not understood')
    label, name, args = match.group('label'), match.group('type'), match.group('args')
    if args is None:
        return StrategySpec(label or name, name, entry)
    if label is None:
        raise bad('a strategy with options needs a label (LABEL=TYPE(...)) to tell its runs '
                  'apart')
    strategy: Dict[str, Any] = dict(type=name)
    for item in _split_args(args, bad):
        key, eq, text = (s.strip() for s in item.partition('='))
        if not eq or not text:
            raise bad(f'option {item!r} is not key=value')
        if not _KEY.match(key) or key == 'type':
            raise bad(f'option name {key!r} must be a (dotted) identifier other than type')
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        *parents, last = key.split('.')
        node = strategy
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise bad(f'option {key!r} nests into {part!r}, which is set to a value')
        if last in node:
            raise bad(f'option {key!r} is given twice')
        node[last] = value
    return StrategySpec(label, strategy, entry)


def _split_args(text: str, bad: Callable[[str], Exception]) -> List[str]:
    """Split ``text`` at the commas outside brackets and quotes."""
    items, depth, quote, start = [], 0, None, 0
    for k, ch in enumerate(text):
        if quote:
            quote = None if ch == quote and text[k - 1] != '\\' else quote
        elif ch in '\'"':
            quote = ch
        elif ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        elif ch == ',' and depth == 0:
            items.append(text[start:k])
            start = k + 1
        if depth < 0:
            break
    if quote or depth:
        raise bad('unbalanced brackets or quotes in the options')
    items.append(text[start:])
    return [item for item in items if item.strip()]


def parse_strategy_specs(entries: Sequence[str],
                         build_strategy: Optional[Callable[[Dict[str, Any]], Any]] = None
                         ) -> List[StrategySpec]:
    """Parse ``--strategies`` entries; check that labels are unique and every strategy builds
    (a registered type, options its constructor takes), before anything runs.

    ``build_strategy(dict(type=name, ...))`` builds a strategy as the run's task does (the
    task's :meth:`~mmdet_isal.active.task.Task.build_strategy`, e.g. a classifier's ISAL for
    ``'isal'``); default the registry's class of that name, as detection builds.

    Raises:
        ValueError: naming the offending entry.
    """
    if not entries:
        raise ValueError(f'--strategies: give at least one strategy ({SPEC_FORM})')
    specs, seen = [], {}
    for entry in entries:
        spec = parse_strategy_spec(entry)
        if spec.label in seen:
            raise ValueError(f'--strategies entries {seen[spec.label]!r} and {entry!r} both have '
                             f'the label {spec.label!r}; labels name the run directories and '
                             f'must be unique: give one of them another label (LABEL=TYPE)')
        seen[spec.label] = entry
        cfg = dict(type=spec.strategy) if isinstance(spec.strategy, str) else spec.strategy
        name = cfg['type']
        if STRATEGIES.get(name) is None:
            raise ValueError(f'--strategies entry {entry!r}: no strategy {name!r} is registered; '
                             f'registered: {", ".join(sorted(STRATEGIES.module_dict))}')
        try:
            if build_strategy is None:
                STRATEGIES.build(dict(copy.deepcopy(cfg), _scope_=STRATEGIES.scope))
            else:
                build_strategy(copy.deepcopy(cfg))
        except Exception as e:  # the strategy's own message names what is wrong
            raise ValueError(f'--strategies entry {entry!r}: {name} cannot be built with '
                             f'{cfg}: {e}') from e
        specs.append(spec)
    return specs
