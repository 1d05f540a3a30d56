"""The scorer options: one flat dict for the user, frozen option groups inside.

A config writes ``active_learning.scorer=dict(score_thr=0.1, hessian_images=500, repeats=4,
damping=0.01, scale='auto', ...)`` (or the ISALHook's ``scorer=dict(...)``): one flat dict.
:meth:`ScorerOptions.from_dict` parses it once, at the boundary (the config, the hook,
``tools/score.py``), into three groups, each a frozen dataclass validated when built:

- :class:`DetectionOptions`: the detection pass (``score_thr``, ``batch_size``), the only
  options the baseline strategies use;
- :class:`ScoringOptions`: ISAL's scoring (parameters, Hessian images, normaliser, ranking);
- :class:`~mmdet_isal.influence.SolverOptions`: the inverse-HVP solver (model-agnostic).

:meth:`ScorerOptions.to_dict` gives the flat dict back (the ``options`` of the diagnostics).
"""
import dataclasses
from functools import partial
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ..influence.checks import check_bool, check_choice, check_int, check_keys, check_number
from ..influence.options import Options, SolverOptions, as_dict, option

__all__ = ['DetectionOptions', 'ScoringOptions', 'ScorerOptions']

_positive_int = partial(check_int, minimum=1)
#: The value of ``score_thr`` that asks for a calibrated threshold (:mod:`.calibration`).
AUTO = 'auto'


def _check_score_thr(value: Any, name: str) -> Any:
    """A number in [0, 1) or ``'auto'`` (:mod:`.calibration`)."""
    if isinstance(value, str) and value == AUTO:
        return value
    try:
        return check_number(value, name, minimum=0, maximum=1, open_max=True)
    except ValueError:
        raise ValueError(f"{name} must be a number in [0, 1) or 'auto', got {value!r}") \
            from None


@dataclasses.dataclass(frozen=True)
class DetectionOptions(Options):
    """Options of a pass of the detector over the pool (ISAL's pseudo-labels, the baselines'
    detections)."""
    score_thr: Union[float, str] = option(
        0.1, check=_check_score_thr,
        help="detection score threshold in [0, 1): ISAL's pseudo labels, the baselines' "
             "detections (paper: 0.1); or 'auto': at each step the threshold at which the "
             "detector's mean detections per image on the labeled (Hessian) images equals "
             'their mean true boxes')
    batch_size: int = option(
        4, check=_positive_int,
        help='images per batch of the detection, reference and pool passes (scores do not '
             'depend on it)')


def _check_params(value: Any, name: str) -> Any:
    if value is None or (isinstance(value, (list, tuple)) and value and
                         all(isinstance(p, str) for p in value)):
        return value
    raise ValueError(f'{name} must be None or a non-empty list of parameter names or '
                     f'patterns, got {value!r}')


@dataclasses.dataclass(frozen=True)
class ScoringOptions(Options):
    """ISAL's options besides the detection pass and the solver: which parameters, which
    labeled images form H, how each image's loss is normalised, how images are ranked."""
    NO_PSEUDO_BOXES = ('last', 'score')
    LOSS_NORMALIZERS = ('labeled_mean', 'per_image')
    RANK_BY = ('influence', 'influence_per_box', 'influence_per_cost')

    params: Optional[Tuple[str, ...]] = option(
        None, check=_check_params,
        help='parameter names or regular expressions taking part; None uses the preset '
             '(parameter_preset: the final classification/regression layers)')
    include_bias: bool = option(
        False, check=check_bool, help="with the preset, also take the layers' biases")
    hessian_images: int = option(
        500, check=_positive_int,
        help='at most this many labeled images, drawn with the seed, form H (paper: 500)')
    hessian_batch_size: int = option(
        8, check=_positive_int,
        help='images per Hessian batch (per LiSSA iteration, each H_j is the Hessian of one '
             'such batch). The paper uses single images; their Hessians vary so much that the '
             'automatic scale made LiSSA diverge on the demo, so the default is 8')
    loss_normalizer: str = option(
        'per_image', check=partial(check_choice, choices=LOSS_NORMALIZERS),
        help="how each image's loss is normalised (mmdet's avg_factor). 'per_image': each "
             'image by its own, as mmdet would for a batch of one. \'labeled_mean\': one '
             "normaliser for every image, the labeled set's mean per image (dense heads: mean "
             'positives; RPN and RoI heads: mean sampled anchors and RoIs), measured on the '
             "Hessian images. On the synthetic set 'per_image' reached random's AP with 16 % "
             "fewer boxes, 'labeled_mean' picked box-dense images")
    no_pseudo_boxes: str = option(
        'last', check=partial(check_choice, choices=NO_PSEUDO_BOXES),
        help="a pool image without any detection above score_thr: 'last' (the paper's code) "
             'leaves it unranked, after every scored image in an order drawn from the seed; '
             "'score' scores it by its background loss like any other image")
    rank_by: str = option(
        'influence', check=partial(check_choice, choices=RANK_BY),
        help="'influence' (the paper): most negative influence first; 'influence_per_box': "
             'most negative influence per pseudo box first (a value-for-cost order for box '
             "budgets); 'influence_per_cost': most negative influence per predicted "
             'annotation second, per_image + per_box x pseudo boxes (active_learning.cost; '
             'the greedy knapsack under a seconds budget)')
    feature_cache_mb: int = option(
        1024, check=partial(check_int, minimum=0),
        help='keep the outputs of the layers before the selected ones of up to this many MiB '
             "of Hessian images across the solver's iterations (FeatureCache; scores do not "
             'change; 0 recomputes them at every iteration)')

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.params, list):  # frozen: the parameter list cannot change either
            object.__setattr__(self, 'params', tuple(self.params))


@dataclasses.dataclass(frozen=True)
class ScorerOptions:
    """ISAL's options (``active_learning.scorer`` / the hook's ``scorer``), parsed: three
    frozen, validated groups. Build with :meth:`from_dict`; change with :meth:`replace`.

    Attributes:
        detection: the detection pass (:class:`DetectionOptions`).
        scoring: ISAL's scoring (:class:`ScoringOptions`).
        inverse_hvp: the solver (:class:`~mmdet_isal.influence.SolverOptions`).
    """
    detection: DetectionOptions = dataclasses.field(default_factory=DetectionOptions)
    scoring: ScoringOptions = dataclasses.field(default_factory=ScoringOptions)
    inverse_hvp: SolverOptions = dataclasses.field(default_factory=SolverOptions)

    #: the flat keys, in the order of :meth:`to_dict` (the order the options had as one class)
    KEYS = ('params', 'score_thr', 'hessian_images', 'solver', 'damping', 'scale',
            'hessian_batch_size', 'depth', 'repeats', 'power_iters', 'power_batches',
            'batch_size', 'include_bias', 'no_pseudo_boxes', 'loss_normalizer', 'rank_by',
            'feature_cache_mb')
    #: group attribute -> its options class
    GROUPS = dict(detection=DetectionOptions, scoring=ScoringOptions,
                  inverse_hvp=SolverOptions)

    def __post_init__(self):
        for name, cls in self.GROUPS.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f'ScorerOptions.{name} must be a {cls.__name__}, got '
                                f'{getattr(self, name)!r}')

    @classmethod
    def group_of(cls, key: str) -> str:
        """The group attribute holding the flat key ``key``."""
        for name, group in cls.GROUPS.items():
            if key in group.keys():
                return name
        raise KeyError(key)

    @classmethod
    def help(cls) -> Dict[str, str]:
        """``{flat key: help text}``."""
        texts = {}
        for group in cls.GROUPS.values():
            texts.update(group.help())
        return {k: texts[k] for k in cls.KEYS}

    @classmethod
    def _split(cls, flat: Mapping[str, Any], where: str) -> Dict[str, Dict[str, Any]]:
        """The flat dict per group; unknown keys are one ValueError naming each (with a
        "did you mean") and ``where``."""
        check_keys(flat, cls.KEYS, where)
        parts: Dict[str, Dict[str, Any]] = {name: {} for name in cls.GROUPS}
        for key, value in flat.items():
            parts[cls.group_of(key)][key] = value
        return parts

    @classmethod
    def from_dict(cls, flat: Optional[Mapping[str, Any]] = None,
                  where: str = 'scorer') -> 'ScorerOptions':
        """Parse the flat dict of the config (None: the defaults). Unknown keys and bad values
        are one ValueError naming ``where``, the option, the value and the allowed range.
        A ``ScorerOptions`` is returned as it is (it was parsed already)."""
        if isinstance(flat, ScorerOptions):
            return flat
        parts = cls._split(as_dict(flat, where), where)
        return cls(**{name: group.from_dict(parts[name], where)
                      for name, group in cls.GROUPS.items()})

    def replace(self, changes: Optional[Mapping[str, Any]] = None,
                where: str = 'scorer') -> 'ScorerOptions':
        """These options with ``changes`` (a flat dict, e.g. a strategy's own
        ``scorer=dict(...)``) laid over them. The changed values are checked, naming
        ``where``, and only their groups are rebuilt: a baseline's ``score_thr`` never
        touches the solver options."""
        parts = self._split(as_dict(changes, where), where)
        groups = {name: getattr(self, name).replace(parts[name], where)
                  for name in self.GROUPS if parts[name]}
        return dataclasses.replace(self, **groups) if groups else self

    def to_dict(self) -> Dict[str, Any]:
        """The flat dict (every key, :attr:`KEYS` order), as the config would write it."""
        values = {}
        for name in self.GROUPS:
            values.update(getattr(self, name).to_dict())
        return {k: values[k] for k in self.KEYS}
