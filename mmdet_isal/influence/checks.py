"""Option checks: the one home of the package's integer, bool, number, choice and key checks.

Every option the package validates (the solvers' arguments, the scorer options, the
``active_learning`` block, the strategies' and the hook's arguments) goes through these
functions, so that one rule holds everywhere: a bool is never an integer or a number (``True``
is refused where an integer is expected, although Python's ``bool`` subclasses ``int``), and
every error names the option, the value and the allowed range.

It lives in ``influence/``, the lowest floor, because ``influence/`` may import nothing but
torch, numpy and the standard library, and its solvers check their arguments with it; every
other package imports it from here. It imports only the standard library.
"""
import difflib
import math
from typing import Any, Iterable, Optional, Sequence


def _fail(name: str, what: str, value: Any, owner: Optional[str]) -> None:
    prefix = f'{owner}: ' if owner else ''
    raise ValueError(f'{prefix}{name} must be {what}, got {value!r}')


def _range(noun: str, minimum: Optional[float], maximum: Optional[float],
           open_min: bool = False, open_max: bool = False) -> str:
    """``noun`` with its bounds: ``'an integer in [0, 3]'``, ``'a finite number > 0'``."""
    if minimum is not None and maximum is not None:
        return (f'{noun} in {"(" if open_min else "["}{minimum}, '
                f'{maximum}{")" if open_max else "]"}')
    if minimum is not None:
        return f'{noun} {">" if open_min else ">="} {minimum}'
    if maximum is not None:
        return f'{noun} {"<" if open_max else "<="} {maximum}'
    return noun


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python integer and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float and not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def check_int(value: Any, name: str, *, minimum: Optional[int] = None,
              maximum: Optional[int] = None, none_ok: bool = False,
              owner: Optional[str] = None) -> Any:
    """``value`` if it is an integer (never a bool) in ``[minimum, maximum]`` (either bound
    optional) or, with ``none_ok``, None; otherwise ValueError naming ``owner``, ``name``,
    the range and the value."""
    if none_ok and value is None:
        return value
    if is_int(value) and (minimum is None or value >= minimum) and \
            (maximum is None or value <= maximum):
        return value
    what = _range('an integer', minimum, maximum)
    _fail(name, f'None or {what}' if none_ok else what, value, owner)


def check_number(value: Any, name: str, *, minimum: Optional[float] = None,
                 maximum: Optional[float] = None, open_min: bool = False,
                 open_max: bool = False, owner: Optional[str] = None) -> Any:
    """``value`` if it is a finite int or float (never a bool) within the bounds (closed,
    or open with ``open_min`` / ``open_max``; either bound optional); otherwise ValueError
    naming ``owner``, ``name``, the range and the value."""
    ok = is_number(value)
    if ok and minimum is not None:
        ok = value > minimum if open_min else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if open_max else value <= maximum
    if ok:
        return value
    # a number between two bounds is finite: "a number in [0, 1)"
    bounded = minimum is not None and maximum is not None
    _fail(name, _range('a number' if bounded else 'a finite number', minimum, maximum,
                       open_min, open_max), value, owner)


def check_bool(value: Any, name: str, *, owner: Optional[str] = None) -> Any:
    """``value`` if it is True or False (not 0, 1 or another truthy value)."""
    if isinstance(value, bool):
        return value
    _fail(name, 'True or False', value, owner)


def did_you_mean(word: Any, choices: Iterable[Any]) -> str:
    """`` (did you mean X?)`` for the choice closest to ``word``, or ``''``."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f' (did you mean {close[0]!r}?)' if close else ''


def check_choice(value: Any, name: str, choices: Sequence[Any], *,
                 owner: Optional[str] = None) -> Any:
    """``value`` if it is one of ``choices``; otherwise ValueError listing them (with the
    closest one as a "did you mean")."""
    if value in tuple(choices):
        return value
    prefix = f'{owner}: ' if owner else ''
    raise ValueError(f'{prefix}{name} must be one of {tuple(choices)}, got {value!r}'
                     f'{did_you_mean(value, choices) if isinstance(value, str) else ""}')


def check_keys(given: Iterable[str], allowed: Iterable[str], where: str,
               error: type = ValueError) -> None:
    """Raise ``error`` naming the keys of ``given`` not in ``allowed``, the closest allowed
    key of each, and every allowed key (one error for all unknown keys)."""
    allowed = sorted(allowed)
    unknown = sorted(set(given) - set(allowed), key=str)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hints.append(f'{key} (did you mean {close[0]}?)' if close else str(key))
        raise error(f'unknown key(s) in {where}: {", ".join(hints)}; allowed keys: '
                    f'{", ".join(allowed) or "none"}')
