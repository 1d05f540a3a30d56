"""The one interface every selection strategy implements."""
import json
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Optional, Tuple

from mmdet_isal.cost import Budget, CostModel
from mmdet_isal.detection.calibration import calibrate_on_labeled
from mmdet_isal.detection.options import AUTO, DetectionOptions, ScoringOptions

ImageId = Hashable  # int for COCO files, str (the file stem) for VOC lists


@dataclass
class SelectionContext:
    """What a strategy may look at when it ranks the unlabeled pool.

    Args:
        model: the detector trained on the labeled subset of this step, already in eval mode.
        cfg: the mmengine ``Config`` of this step; its ``train_dataloader.dataset`` points at the
            labeled subset and its ``val_dataloader`` at the evaluation set.
        unlabeled_ann_file: annotation file (COCO json or VOC ImageSets list) of the pool images
            not labeled yet; strategies must not read its boxes (they are the oracle's).
        labeled_ann_file: annotation file of the labeled subset.
        reference_ann_file: annotation file of the reference set (ISAL's R).
        work_dir: a directory the strategy may write scratch files to.
        step: the active-learning step (0 is the initial random set).
        seed: the run's seed; strategies derive every random choice from it.
        unlabeled_ids: the image ids of ``unlabeled_ann_file`` in file order, when the caller
            has them (the loop always does); ``None`` means read them from the file.
        scorer: the run's parsed scorer options (``active_learning.scorer``, a
            :class:`~mmdet_isal.detection.ScorerOptions`; None: the defaults). ISAL reads them
            whole; the baselines only their detection pass, :meth:`detection_options`.
        extra: anything else a caller wants to hand to a particular strategy.
        budget: what the loop's selection will spend (:class:`~mmdet_isal.cost.Budget`), for
            strategies that apply the loop's budget rule themselves (``matched_random``).
        cost: the run's resolved annotation cost model (:class:`~mmdet_isal.cost.CostModel`,
            ``active_learning.cost``): ISAL's ``rank_by='influence_per_cost'``, seconds
            budgets.
        pool_boxes: ``{image_id: true boxes}`` of the unlabeled images, the oracle's counts
            as the box and seconds budgets read them; known in simulation only (``None``
            otherwise). Only cost-matched controls may read them: a strategy that ranks by
            them would see labels it must not.
        pool_classes: ``{image_id: true class index}`` of the unlabeled images, for a task
            with one label per image (image classification: the pool's list file) in
            simulation; ``None`` otherwise. Only class-matched controls may read them
            (``matched_random(match='class')``).
    """
    model: Any
    cfg: Any
    unlabeled_ann_file: str
    labeled_ann_file: str
    reference_ann_file: str
    work_dir: str
    step: int = 0
    seed: int = 0
    unlabeled_ids: Optional[List[ImageId]] = None
    scorer: Any = None
    extra: Dict[str, Any] = field(default_factory=dict)
    budget: Optional[Budget] = None
    cost: Optional[CostModel] = None
    pool_boxes: Optional[Dict[ImageId, int]] = None
    pool_classes: Optional[Dict[ImageId, int]] = None

    def __post_init__(self):
        if self.scorer is not None and not isinstance(getattr(self.scorer, 'detection', None),
                                                      DetectionOptions):
            raise TypeError(f'SelectionContext: scorer must be the parsed options '
                            f'(mmdet_isal.detection.ScorerOptions.from_dict(...)) or None, got '
                            f'{self.scorer!r}')

    def detection_options(self, overrides: Optional[Dict[str, Any]] = None
                          ) -> DetectionOptions:
        """The run's detection-pass options (``score_thr``, ``batch_size`` of
        ``active_learning.scorer``) with a strategy's own ``overrides`` (from
        :func:`detection_overrides`) laid over them."""
        base = self.scorer.detection if self.scorer is not None else DetectionOptions()
        return base.replace(overrides)

    def score_threshold(self, opts: DetectionOptions) -> Tuple[float, Optional[Dict[str, Any]]]:
        """The detection threshold of ``opts`` as a number, and with ``score_thr='auto'`` its
        calibration (:mod:`mmdet_isal.detection.calibration`; ``None`` otherwise): on the
        labeled images ISAL's Hessian would use at this step (at most the scorer's
        ``hessian_images``, drawn with the seed), so that ISAL and a baseline calibrate alike.
        Costs one inference pass over those images."""
        if opts.score_thr != AUTO:
            return opts.score_thr, None
        scoring = self.scorer.scoring if self.scorer is not None else ScoringOptions()
        calibration = calibrate_on_labeled(self.model, self.cfg, self.labeled_ann_file,
                                           scoring.hessian_images, self.seed, opts.batch_size)
        return calibration.threshold, calibration.to_dict()


def threshold_info(score_thr: float, calibration: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A ranking's ``info`` about its detection threshold: ``score_thr`` (the number used) and,
    with ``'auto'``, its calibration ``score_thr_auto``
    (:meth:`SelectionContext.score_threshold`)."""
    info: Dict[str, Any] = dict(score_thr=score_thr)
    if calibration is not None:
        info['score_thr_auto'] = calibration
    return info


def detection_overrides(where: str, **options: Any) -> Dict[str, Any]:
    """A strategy's own detection-pass options (:class:`DetectionOptions` names), those
    given (not None), checked now, when the strategy is built, before any training (errors
    name ``where``, e.g. the strategy); :meth:`SelectionContext.detection_options` lays them
    over the run's."""
    given = {k: v for k, v in options.items() if v is not None}
    DetectionOptions().replace(given, where)
    return given


@dataclass
class Ranking:
    """A strategy's answer: pool image ids, preferred first, and the score behind each.

    ``details`` holds per-image extras worth keeping in the ledger (for ISAL the number of pseudo
    boxes), keyed like ``scores``. A score may be ``None`` for an image the strategy could not
    score (it must still appear in ``order``, conventionally last). ``info`` holds facts about
    the ranking as a whole (for ISAL score_pool's diagnostics), kept in the ledger's step record.
    """
    order: List[ImageId]
    scores: Dict[ImageId, Optional[float]]
    details: Dict[ImageId, Dict[str, Any]] = field(default_factory=dict)
    info: Dict[str, Any] = field(default_factory=dict)


class BaseStrategy(metaclass=ABCMeta):
    """Ranks unlabeled images by how much labeling them is expected to help.

    Subclasses are registered in :data:`mmdet_isal.registry.STRATEGIES` and built from
    ``active_learning.strategy`` (a name) plus options. Budgets are applied by the loop, not here:
    a strategy only orders the pool.
    """

    @abstractmethod
    def rank(self, context: SelectionContext) -> Ranking:
        """Return every image of ``context.unlabeled_ann_file``, preferred first."""


def read_image_ids(ann_file: str) -> List[ImageId]:
    """Image ids of a COCO json file (``images[*].id``), a VOC ImageSets list or a
    classification list of "file label" lines (the first field of each line), in file order."""
    with open(ann_file) as f:
        if ann_file.endswith('.json'):
            return [img['id'] for img in json.load(f)['images']]
        return [line.split()[0] for line in f if line.strip()]
