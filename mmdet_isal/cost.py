"""Annotation cost: what labeling an image costs an annotator, in seconds, and the budget rule.

An image with ``b`` boxes costs ``per_image + per_box * b`` seconds (:class:`CostModel`). The
defaults come from published timings:

* ``per_box = 7.0`` s: drawing one box by extreme clicking (Papadopoulos et al., "Extreme
  clicking for efficient object annotation", ICCV 2017). Drawing a box the traditional way
  takes about 35 s (Su et al., 2012, as quoted there).
* ``per_image = 1`` s per class of the data set: image-level labels take about 1 s per class
  (Bearman et al., "What's the point: semantic segmentation with point supervision", ECCV
  2016), the time to look an image over and confirm which classes are absent. Left ``None`` in
  a config, it is resolved to ``1.0 x len(classes)`` when the config is read
  (:meth:`CostModel.resolved`) and recorded in the run's ledger.

A :class:`Budget` says how much one selection (or the initial set) may spend: a number of
images, of ground-truth boxes, or of annotator seconds; :func:`apply_budget` is the one rule
that spends it, in the loop and in the strategies that need it (``matched_random``).

This module sits on the lowest floor (it imports only :mod:`mmdet_isal.influence.checks`), so
that the loop, the strategies and ISAL's ranking (``rank_by='influence_per_cost'``) share it.
"""
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from mmdet_isal.influence.checks import check_int, check_keys, check_number

ImageId = Any
#: Seconds of an image-level label per class of the data set (Bearman et al., ECCV 2016).
SECONDS_PER_CLASS = 1.0
#: Seconds per box drawn by extreme clicking (Papadopoulos et al., ICCV 2017).
SECONDS_PER_BOX = 7.0
BUDGET_KINDS = ('images', 'boxes', 'seconds')


@dataclass(frozen=True)
class CostModel:
    """Annotator seconds per image and per box: an image with ``b`` boxes costs
    ``per_image + per_box * b`` seconds.

    Args:
        per_image: seconds to look an image over (> 0: every image takes time, also one
            without objects); ``None``: :data:`SECONDS_PER_CLASS` per class of the data set,
            set by :meth:`resolved` when the config is read.
        per_box: seconds per ground-truth box (>= 0); default :data:`SECONDS_PER_BOX`.
    """
    per_image: Optional[float] = None
    per_box: float = SECONDS_PER_BOX

    KEYS = ('per_image', 'per_box')

    def __post_init__(self):
        if self.per_image is not None:
            check_number(self.per_image, 'active_learning.cost.per_image (seconds; looking an '
                         'image over takes time: for a cost in boxes only, use '
                         'budget=dict(boxes=N))', minimum=0, open_min=True)
        check_number(self.per_box, 'active_learning.cost.per_box (seconds)', minimum=0)

    @classmethod
    def from_dict(cls, value: Optional[Mapping[str, Any]]) -> 'CostModel':
        """Parse ``active_learning.cost`` (``None``: the defaults); errors name the key."""
        if value is None:
            return cls()
        if isinstance(value, CostModel):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f'active_learning.cost must be dict(per_image=S, per_box=S) '
                             f'(seconds), got {value!r}')
        check_keys(value, cls.KEYS, 'active_learning.cost')
        return cls(**value)

    @property
    def is_resolved(self) -> bool:
        return self.per_image is not None

    def resolved(self, num_classes: int) -> 'CostModel':
        """These costs with ``per_image`` set (when ``None``) to :data:`SECONDS_PER_CLASS` x
        ``num_classes``."""
        if self.is_resolved:
            return self
        check_int(num_classes, 'number of classes (for the default '
                  'active_learning.cost.per_image)', minimum=1)
        return CostModel(SECONDS_PER_CLASS * num_classes, self.per_box)

    def image_seconds(self, boxes: int) -> float:
        """Seconds to annotate one image with ``boxes`` boxes."""
        if not self.is_resolved:
            raise ValueError('the cost model is not resolved: active_learning.cost.per_image '
                             'is None (call CostModel.resolved(num_classes) first)')
        return self.per_image + self.per_box * boxes

    def seconds(self, ids: Iterable[ImageId], num_boxes: Mapping[ImageId, int]) -> float:
        """Seconds to annotate the images ``ids`` (``num_boxes``: boxes per image id)."""
        ids = list(ids)
        return self.total_seconds(len(ids), sum(num_boxes[i] for i in ids))

    def total_seconds(self, images: int, boxes: int) -> float:
        """Seconds to annotate ``images`` images holding ``boxes`` boxes in all:
        ``per_image * images + per_box * boxes``."""
        if not self.is_resolved:
            self.image_seconds(0)  # raises, naming the missing per_image
        return self.per_image * images + self.per_box * boxes

    def to_dict(self) -> Dict[str, Optional[float]]:
        return dict(per_image=self.per_image, per_box=self.per_box)


@dataclass(frozen=True)
class Budget:
    """How much to label at once: ``Budget('images', 1000)``, ``Budget('boxes', 7000)`` or
    ``Budget('seconds', 36000)``.

    Args:
        kind: ``'images'`` (exactly ``amount`` images), ``'boxes'`` (images in order of
            preference until their ground-truth boxes reach ``amount``; the last image may
            overshoot, so the budget is exceeded by at most one image's boxes) or
            ``'seconds'`` (annotator seconds of the :class:`CostModel`: images in order of
            preference, each one that still fits, never more than ``amount``).
        amount: a positive integer (images, boxes) or a positive number (seconds).
    """
    kind: str
    amount: Union[int, float]

    @classmethod
    def from_dict(cls, value: Any, name: str) -> 'Budget':
        """Parse ``dict(images=N)``, ``dict(boxes=N)`` or ``dict(seconds=S)``; ``name`` is the
        config key, for errors."""
        if not isinstance(value, dict) or len(value) != 1 or \
                next(iter(value)) not in BUDGET_KINDS:
            raise ValueError(
                f'active_learning.{name} must be dict(images=N), dict(boxes=N) or '
                f'dict(seconds=S), got {value!r}')
        kind, amount = next(iter(value.items()))
        if kind == 'seconds':
            check_number(amount, f'active_learning.{name}.seconds', minimum=0, open_min=True)
        else:
            check_int(amount, f'active_learning.{name}.{kind}', minimum=1)
        return cls(kind, amount)

    def to_dict(self) -> Dict[str, Union[int, float]]:
        return {self.kind: self.amount}

    def spent(self, ids: Iterable[ImageId], num_boxes: Mapping[ImageId, int],
              cost: Optional[CostModel] = None) -> Union[int, float]:
        """What ``ids`` spend of this budget, in its unit."""
        ids = list(ids)
        if self.kind == 'images':
            return len(ids)
        if self.kind == 'boxes':
            return sum(num_boxes[i] for i in ids)
        return _need_cost(cost).seconds(ids, num_boxes)


def _need_cost(cost: Optional[CostModel]) -> CostModel:
    if cost is None or not cost.is_resolved:
        raise ValueError('a seconds budget needs the resolved cost model '
                         '(active_learning.cost, per_image set)')
    return cost


def apply_budget(order: Iterable[ImageId], budget: Budget, num_boxes: Mapping[ImageId, int],
                 what: str = 'budget', cost: Optional[CostModel] = None) -> List[ImageId]:
    """Take images from ``order`` (preferred first) until ``budget`` is spent.

    An image budget takes exactly ``budget.amount`` images. A box budget takes images until
    their ground-truth boxes reach ``budget.amount``: the total is at least the budget and
    exceeds it by less than the last image's boxes (images without boxes cost nothing and are
    taken as they come). A seconds budget goes through the whole order and takes each image
    whose cost (``cost.image_seconds``) still fits in what is left, skipping those that no
    longer fit: it never spends more than ``budget.amount`` (the greedy knapsack in order of
    preference).

    Args:
        order: candidate image ids, preferred first.
        budget: what to spend.
        num_boxes: boxes per image id: the ground truth in simulation, or predicted counts
            where the truth is not known yet.
        what: the budget's name in error messages (e.g. ``'active_learning.budget'``).
        cost: the resolved cost model; needed by a seconds budget only.

    Raises:
        ValueError: ``order`` runs out before the budget is met (a seconds budget: the whole of
            ``order`` costs less than the budget).
    """
    if budget.kind == 'seconds':
        return _apply_seconds(list(order), budget, num_boxes, what, _need_cost(cost))
    chosen, boxes = [], 0
    for img_id in order:
        if budget.kind == 'images' and len(chosen) >= budget.amount:
            break
        if budget.kind == 'boxes' and boxes >= budget.amount:
            break
        chosen.append(img_id)
        boxes += num_boxes[img_id]
    spent = len(chosen) if budget.kind == 'images' else boxes
    if spent < budget.amount:
        raise ValueError(
            f'{what}={budget.to_dict()} is larger than what is left in the pool '
            f'({len(chosen)} images, {boxes} boxes); lower {what}')
    return chosen


def _apply_seconds(order: List[ImageId], budget: Budget, num_boxes: Mapping[ImageId, int],
                   what: str, cost: CostModel) -> List[ImageId]:
    costs = [cost.image_seconds(num_boxes[i]) for i in order]
    if sum(costs) < budget.amount:
        raise ValueError(
            f'{what}={budget.to_dict()} is larger than what is left in the pool '
            f'({len(order)} images, {sum(num_boxes[i] for i in order)} boxes, '
            f'{sum(costs):.0f} s at {cost.per_image:g} s per image and {cost.per_box:g} s per '
            f'box); lower {what}')
    chosen, spent = [], 0.0
    for img_id, seconds in zip(order, costs):
        if spent + seconds <= budget.amount:
            chosen.append(img_id)
            spent += seconds
            if spent == budget.amount:
                break  # every image costs at least per_image > 0: nothing fits any more
    return chosen
