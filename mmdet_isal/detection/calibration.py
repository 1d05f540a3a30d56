"""Calibrated pseudo-labels, ``score_thr='auto'``: a detection threshold at which the detector
finds, on labeled images, as many boxes per image as there truly are.

With a fixed threshold (the paper's 0.1) a weak detector can give several times more pseudo
boxes than there are objects, and ISAL's influence is computed on them. ``'auto'`` picks, at
every step, the threshold at which the detector's mean detections per image on the labeled
(Hessian) images equals their mean true boxes: the k-th largest detection score over those
images, k = their total true boxes (:func:`kth_largest_threshold`). Ties at that score keep all
tied detections, so the mean is hit exactly up to ties. When the model's own ``test_cfg``
(its ``score_thr`` or ``max_per_img``) leaves fewer than k detections, every detection is kept
and the calibration says so (``capped``).

The labeled images are the ones ISAL's Hessian uses (:func:`hessian_subset`: at most
``hessian_images`` drawn with the seed), so that ISAL and the baselines that accept ``'auto'``
calibrate on the same images at a step.
"""
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_gather_object
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ..utils.dist import shard
from ..utils.rng import hessian_subset_rng
from .data import BatchSequence, build_scoring_dataset


def hessian_subset(num_labeled: int, hessian_images: int, seed: int) -> List[int]:
    """Indices of the labeled images that form ISAL's Hessian (and calibrate ``'auto'``): at
    most ``hessian_images`` of ``num_labeled``, drawn without replacement with ``seed``,
    sorted."""
    rng = hessian_subset_rng(seed)
    return sorted(rng.choice(num_labeled, min(hessian_images, num_labeled),
                             replace=False).tolist())


def kth_largest_threshold(scores: Sequence[float], k: int) -> Tuple[float, bool]:
    """The threshold keeping the ``k`` highest of ``scores`` (``score >= threshold``).

    Args:
        scores: detection scores (any order).
        k: how many to keep, an integer >= 1.

    Returns:
        ``(threshold, capped)``: the k-th largest score and False; or, with fewer than ``k``
        scores, the lowest score (0.0 without any) and True: every detection is kept and still
        fewer than ``k``. Scores tied with the k-th are kept too.
    """
    if k < 1:
        raise ValueError(f'k must be >= 1, got {k}')
    ordered = sorted((float(s) for s in scores), reverse=True)
    if len(ordered) < k:
        return (ordered[-1] if ordered else 0.0), True
    return ordered[k - 1], False


@dataclass
class ScoreCalibration:
    """What ``score_thr='auto'`` chose at one step.

    Attributes:
        threshold: the detection score threshold used (pseudo boxes: ``score >= threshold``).
        images: labeled images it was calibrated on.
        true_boxes: their ground-truth boxes (the mmdet data set's, ignored ones included).
        detections: the detector's detections on them (after its own ``test_cfg``).
        kept: detections with ``score >= threshold`` (``true_boxes`` up to ties).
        capped: the model's ``test_cfg`` left fewer detections than true boxes: all are kept.
        test_cfg: the model's test-time limits (``score_thr``, ``max_per_img``, by dotted key)
            when ``capped``.
        note: a sentence for the log when ``capped``.
    """
    threshold: float
    images: int
    true_boxes: int
    detections: int
    kept: int
    capped: bool
    test_cfg: Dict[str, Any] = field(default_factory=dict)
    note: Optional[str] = None

    @property
    def mean_true_boxes(self) -> float:
        return self.true_boxes / self.images

    @property
    def mean_kept(self) -> float:
        return self.kept / self.images

    def to_dict(self) -> Dict[str, Any]:
        return dict(asdict(self), mean_true_boxes=self.mean_true_boxes,
                    mean_detections_kept=self.mean_kept)


def calibrate(scores: Sequence[float], true_boxes: int, images: int,
              test_cfg: Optional[Dict[str, Any]] = None) -> ScoreCalibration:
    """The calibration of detections ``scores`` on ``images`` labeled images holding
    ``true_boxes`` boxes (:func:`kth_largest_threshold` with k = ``true_boxes``).

    Raises:
        ValueError: the labeled images hold no box (no threshold gives zero detections per
            image in ``[0, 1)``): set a number for ``score_thr``.
    """
    if true_boxes < 1:
        raise ValueError(f"score_thr='auto' needs ground-truth boxes on the labeled images it "
                         f"calibrates on: the {images} labeled image(s) hold none; set "
                         f"score_thr to a number in [0, 1)")
    threshold, capped = kth_largest_threshold(scores, true_boxes)
    kept = int(sum(float(s) >= threshold for s in scores))
    note = None
    limits = dict(test_cfg or {})
    if capped:
        note = (f"score_thr='auto': the detector gives only {len(scores)} detections on the "
                f"{images} labeled images, which hold {true_boxes} boxes: its own test_cfg "
                f"({', '.join(f'{k}={v}' for k, v in limits.items()) or 'limits unknown'}) "
                f"cuts below the calibrated threshold, so every detection is kept "
                f"({len(scores) / images:.2f} per image against {true_boxes / images:.2f} true "
                f"boxes)")
    return ScoreCalibration(float(threshold), images, int(true_boxes), len(scores), kept,
                            capped, limits if capped else {}, note)


def detection_limits(model) -> Dict[str, Any]:
    """The model's ``test_cfg`` entries that cut detections (``score_thr``, ``max_per_img``),
    by dotted key (e.g. ``rcnn.score_thr`` for a two-stage detector)."""
    found: Dict[str, Any] = {}

    def walk(node, prefix):
        if not hasattr(node, 'items'):
            return
        for key, value in node.items():
            if key in ('score_thr', 'max_per_img'):
                found[prefix + key] = value
            walk(value, f'{prefix}{key}.')
    walk(getattr(model, 'test_cfg', None) or {}, '')
    return found


def calibrate_on(model, dataset, indices: Sequence[int], batch_size: int) -> ScoreCalibration:
    """Calibrate on the images ``indices`` of ``dataset`` (a scoring data set with boxes,
    :func:`~.data.build_scoring_dataset`): one inference pass; collective in a distributed
    run (each process detects its share, the counts are gathered)."""
    model = model.module if is_model_wrapper(model) else model
    batches = BatchSequence(dataset, batch_size, shard(list(indices)),
                            title="score_thr='auto': detecting on labeled images")
    was_training = model.training
    model.eval()
    scores: List[float] = []
    boxes = 0
    try:
        with torch.no_grad():
            for batch in batches:
                for sample in model.test_step(batch):
                    scores += sample.pred_instances.scores.detach().cpu().tolist()
                    boxes += len(sample.gt_instances)
                    ignored = sample.get('ignored_instances')
                    boxes += len(ignored) if ignored is not None else 0
    finally:
        model.train(was_training)
    parts = all_gather_object((scores, boxes))
    result = calibrate([s for part, _ in parts for s in part], sum(n for _, n in parts),
                       len(indices), detection_limits(model))
    if result.note:
        print_log(result.note, logger='current', level=logging.WARNING)
    return result


def calibrate_on_labeled(model, cfg, labeled_ann_file: str, hessian_images: int, seed: int,
                         batch_size: int) -> ScoreCalibration:
    """Calibrate on the labeled images of ``labeled_ann_file`` that ISAL's Hessian would use
    (:func:`hessian_subset` with ``hessian_images`` and ``seed``); for the baselines that
    accept ``score_thr='auto'``."""
    dataset = build_scoring_dataset(cfg, labeled_ann_file, True)
    if len(dataset) == 0:
        raise ValueError(f"score_thr='auto' calibrates on labeled images: {labeled_ann_file} "
                         f"has none")
    return calibrate_on(model, dataset, hessian_subset(len(dataset), hessian_images, seed),
                        batch_size)
