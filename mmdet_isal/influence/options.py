"""Frozen option dataclasses, validated when built, and the solver options.

An options class is a frozen dataclass of :class:`Options` whose fields are declared with
:func:`option`: each field carries its help text beside its default (as kronfluence's argument
dataclasses do) and the check its value must pass. Building one (directly, with
:meth:`Options.from_dict` or with :meth:`Options.replace`) checks every value and raises one
ValueError naming the option, the value and the allowed range.

:class:`SolverOptions` are the inverse-HVP solver's (model-agnostic): which registered solver
(:data:`~.solvers.SOLVERS`) and its numbers. Imports torch and numpy only (through
:mod:`.solvers`).
"""
import dataclasses
from functools import partial
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Type, TypeVar, Union

from .checks import check_int, check_keys, check_number, did_you_mean
from .solvers import SOLVERS, InverseHVP, check_scale

__all__ = ['Options', 'option', 'as_dict', 'SolverOptions', 'build_solver']

T = TypeVar('T', bound='Options')


def option(default: Any, help: str, check: Callable[[Any, str], Any]) -> Any:
    """A field of an :class:`Options` dataclass: its ``default``, its ``help`` text and its
    ``check(value, name)``, which raises ValueError for a bad value."""
    return dataclasses.field(default=default, metadata=dict(help=help, check=check))


class Options:
    """Base of the frozen option dataclasses (subclasses are ``@dataclass(frozen=True)`` with
    :func:`option` fields). Every field is checked when an instance is built."""

    def __post_init__(self):
        self._check_values(self.to_dict(), type(self).__name__)

    @classmethod
    def keys(cls) -> Tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def help(cls) -> Dict[str, str]:
        """``{option name: help text}``."""
        return {f.name: f.metadata['help'] for f in dataclasses.fields(cls)}

    @classmethod
    def _check_values(cls, values: Mapping[str, Any], where: str) -> None:
        """Check each value of ``values`` (option names of ``cls``), naming ``where``."""
        checks = {f.name: f.metadata['check'] for f in dataclasses.fields(cls)}
        for name, value in values.items():
            try:
                checks[name](value, name)
            except ValueError as e:
                raise ValueError(f'{where}: {e}') from None

    @classmethod
    def from_dict(cls: Type[T], values: Optional[Mapping[str, Any]] = None,
                  where: Optional[str] = None) -> T:
        """Build from a dict of option names; unknown keys (each with a "did you mean") and
        bad values are one ValueError naming ``where`` (default: the class name)."""
        where = where or cls.__name__
        values = as_dict(values, where)
        check_keys(values, cls.keys(), where)
        cls._check_values(values, where)
        return cls(**values)

    def replace(self: T, changes: Optional[Mapping[str, Any]] = None,
                where: Optional[str] = None) -> T:
        """A copy with ``changes`` (option names) laid over. The changed values are checked,
        naming ``where``; the others passed when ``self`` was built (the copy's
        ``__post_init__`` checks them again, which cannot fail)."""
        where = where or type(self).__name__
        changes = as_dict(changes, where)
        if not changes:
            return self
        check_keys(changes, self.keys(), where)
        self._check_values(changes, where)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        """``{option name: value}``, in declaration order (sequences as lists)."""
        return {name: _plain(getattr(self, name)) for name in self.keys()}


def as_dict(values: Any, where: str) -> Dict[str, Any]:
    """``values`` (a dict of options, or None: none) as a new dict; anything else is a
    ValueError naming ``where``."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ValueError(f'{where} must be a dict of options, got {values!r}')
    return dict(values)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _check_solver(value: Any, name: str) -> Any:
    """A registered solver name (:data:`~.solvers.SOLVERS`), looked up when checked, so that
    solvers registered after this module was imported count."""
    if isinstance(value, str) and value in SOLVERS:
        return value
    raise ValueError(f'{name} must be one of the registered solvers {tuple(SOLVERS)}, got '
                     f'{value!r}{did_you_mean(value, SOLVERS) if isinstance(value, str) else ""}')


_positive_int = partial(check_int, minimum=1)


@dataclasses.dataclass(frozen=True)
class SolverOptions(Options):
    """Options of the inverse-HVP solver: ``s = (H + λI)⁻¹ v``.

    Every field holds its help text (:meth:`Options.help`); which fields a solver reads is its
    class's ``OPTIONS``. :func:`build_solver` builds the registered solver they name.
    """
    solver: str = option(
        'lissa', check=_check_solver,
        help="the inverse-HVP solver, a name of the solver registry: 'lissa' (the paper's; "
             'stochastic, its repeats are spread over the processes of a distributed run), '
             "'cg' (conjugate gradient on the mean Hessian of all Hessian images, at most "
             "'depth' iterations, default 100; deterministic) or 'exact' (the Hessian built "
             'column by column and solved; only for a few thousand parameters, e.g. tests and '
             'small heads)')
    damping: float = option(
        0.01, check=partial(check_number, minimum=0),
        help="a finite number >= 0. LiSSA: the solve estimates (H + damping·scale·I)⁻¹ v; "
             "'cg' and 'exact': λ itself, (H + damping·I)⁻¹ v")
    scale: Union[float, str] = option(
        'auto', check=check_scale,
        help="LiSSA's scale, a number > 0 or 'auto' (power iteration on H)")
    depth: Optional[int] = option(
        None, check=partial(check_int, minimum=1, none_ok=True),
        help="LiSSA: iterations per repeat, None = one pass over the Hessian batches (the "
             "paper's k sampled images); 'cg': the most iterations (None = 100)")
    repeats: int = option(
        4, check=_positive_int, help='LiSSA: repeats averaged (paper: 4)')
    power_iters: int = option(
        10, check=_positive_int, help="LiSSA: power iterations for scale='auto'")
    power_batches: int = option(
        20, check=_positive_int,
        help="LiSSA: Hessian batches the power iteration of scale='auto' runs on")


def build_solver(opts: SolverOptions, *, seed: int, num_batches: int, rank: int = 0,
                 world_size: int = 1, all_reduce=None) -> InverseHVP:
    """The registered solver ``opts.solver`` built from ``opts`` for ``num_batches`` Hessian
    batches (:meth:`~.solvers.InverseHVP.from_options`; ``all_reduce`` sums a tensor in place
    over ``world_size`` processes, None on one process)."""
    return SOLVERS[opts.solver].from_options(opts, seed=seed, num_batches=num_batches,
                                             rank=rank, world_size=world_size,
                                             all_reduce=all_reduce)
