"""The numbers of a report, from runs' summary rows: pure functions, no files.

Results are ``{label: {seed: rows}}``: per strategy label and seed, the summary rows of that run
(:func:`mmdet_isal.active.report.files.summary_rows`; as in a run's ``summary.json``). Standard
deviations are over seeds with ``ddof=1`` and ``None`` with fewer than two (:func:`mean_std`).
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mmdet_isal.active.ledger import STAGES

Row = Dict[str, Any]
#: ``{label: {seed: summary rows of that run}}`` (rows as in a run's ``summary.json``).
Results = Mapping[str, Mapping[int, Sequence[Row]]]

#: Diagnostics of the selection made after a step (active.diagnostics), in the summary row of
#: that step: what the strategy picked for the next step and how its scores relate to the
#: pseudo-box counts; with one label per image, how often the pseudo-labels a strategy scored
#: the picks and the pool with are right. None where unknown (the last step selects nothing;
#: random counts no pseudo boxes and gives no pseudo-labels).
SELECTION_COLUMNS = ('picked_true_boxes', 'picked_no_true_box', 'picked_pseudo_boxes',
                     'pool_true_boxes', 'pool_pseudo_boxes', 'pool_no_pseudo_box',
                     'spearman_score_pseudo_boxes', 'score_thr', 'pool_pseudo_true_ratio',
                     'picked_pseudo_label_accuracy', 'pool_pseudo_label_accuracy')
#: The curve metrics of each task, ``(primary, secondary)``, both on a 0-1 scale: mmdet's
#: bbox mAP and mAP at IoU 0.5 (detection), top-1 and mean per-class accuracy (classification).
#: A run's summary rows hold the pair of its task (the trainer's ``metric_names``); every
#: report reads the curve from the pair its rows hold (:func:`curve_metrics`).
CURVE_METRICS = (('bbox_mAP', 'bbox_mAP_50'), ('accuracy', 'mean_class_accuracy'))
#: How the primary metric of each pair is named in plots and text.
METRIC_LABELS = dict(bbox_mAP='bbox mAP', accuracy='accuracy')
#: How the primary metric is called in running text ("random's AP", "random's accuracy").
METRIC_SHORT = dict(bbox_mAP='AP', accuracy='accuracy')


def one_label_per_image(rows: Sequence[Row]) -> bool:
    """Whether every row (of :func:`aggregate`) counts exactly one label per labeled image,
    as image classification does: boxes then say nothing that images do not, and a saving is
    the same in every unit and at every cost ratio, so reports show images (and hours) only."""
    return bool(rows) and all(r.get('boxes_mean') is not None and
                              r['boxes_mean'] == r.get('images_mean') for r in rows)


def curve_metrics(rows: Sequence[Row]) -> Tuple[str, str]:
    """The ``(primary, secondary)`` metric pair of :data:`CURVE_METRICS` that ``rows``
    (summary rows, or rows of :func:`aggregate` with ``_mean`` keys) hold; detection's when
    they hold none."""
    for pair in CURVE_METRICS:
        if any(pair[0] in r or f'{pair[0]}_mean' in r for r in rows):
            return pair
    return CURVE_METRICS[0]


def summary_columns(metrics: Tuple[str, str] = CURVE_METRICS[0]) -> Tuple[str, ...]:
    """The columns of a run's ``summary.csv`` for the metric pair ``metrics`` (its
    ``summary.json`` rows also hold ``metrics``, ``picked_class_histogram`` and
    ``pool_class_histogram``)."""
    primary, secondary = metrics
    per_10k = ('ap_per_10k_boxes', ) if primary == 'bbox_mAP' else ()
    return (('step', 'strategy', 'seed', 'num_images', 'num_boxes', 'annotation_hours',
             primary, secondary) + per_10k + tuple(f'{s}_seconds' for s in STAGES)
            + SELECTION_COLUMNS)


def measures(metrics: Tuple[str, str] = CURVE_METRICS[0]) -> Tuple[Tuple[str, str], ...]:
    """Summary-row fields averaged over seeds, and their names in the experiment's columns."""
    return (('images', 'num_images'), ('boxes', 'num_boxes'), ('hours', 'annotation_hours'),
            (metrics[0], metrics[0]), (metrics[1], metrics[1]))


def experiment_columns(metrics: Tuple[str, str] = CURVE_METRICS[0]) -> Tuple[str, ...]:
    """The columns of ``experiment.csv`` for the metric pair ``metrics``."""
    return ('strategy', 'step', 'seeds') + tuple(
        f'{name}_{stat}' for name, _ in measures(metrics) for stat in ('mean', 'std'))


#: The columns of a detection run's ``summary.csv`` (:func:`summary_columns`).
SUMMARY_COLUMNS = summary_columns()
#: Summary-row fields averaged over seeds, and their names in the experiment's columns
#: (detection; :func:`measures`).
MEASURES = measures()
EXPERIMENT_COLUMNS = experiment_columns()
#: The strategy every other one is compared with.
BASELINE = 'random'
STD = 'sample standard deviation over seeds (ddof=1); null with fewer than 2'


def mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample std (ddof=1) of ``values``; ``None`` where undefined (std with < 2)."""
    if not values:
        return None, None
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None


def reach(points: Sequence[Tuple[float, float]], level: float) -> Optional[float]:
    """The one interpolation of the reports: where a curve first reaches ``level``.

    Args:
        points: ``(key, value)`` pairs in step order, joined by straight lines; e.g.
            ``(bbox_mAP, boxes)`` for the boxes at which an AP is reached, or
            ``(images, bbox_mAP)`` for the AP at a number of images.
        level: the key to reach, in the keys' unit.

    Returns:
        the value at the first point whose key is ``>= level``, linear between it and the
        point before (that point's value where both keys are equal); ``None`` if no key reaches
        ``level``, or if ``level`` is below the first key (the curve does not say what happens
        before its first point).
    """
    if not points or level < points[0][0]:
        return None
    prev_key, prev_value = points[0]
    for key, value in points:
        if key >= level:
            if key == prev_key:
                return float(value)
            t = (level - prev_key) / (key - prev_key)
            return float(prev_value + t * (value - prev_value))
        prev_key, prev_value = key, value
    return None


def _step(row: Row) -> int:
    return row['step']


def boxes_needed(rows: Sequence[Row], target_ap: float) -> Optional[float]:
    """Boxes at which a run's AP-versus-boxes curve (its primary metric, :func:`curve_metrics`)
    first reaches ``target_ap`` (:func:`reach`: ``None`` if it never does, or if its first step
    is already above it)."""
    y = curve_metrics(rows)[0]
    return reach([(r[y], r['num_boxes']) for r in sorted(rows, key=_step)], target_ap)


def ap_at_images(rows: Sequence[Row], images: float) -> Optional[float]:
    """A run's bbox_mAP (its primary metric) at ``images`` labeled images, linear between its
    steps (:func:`reach`); ``None`` outside the images its steps cover."""
    y = curve_metrics(rows)[0]
    return reach([(r['num_images'], r[y]) for r in sorted(rows, key=_step)], images)


def aggregate(results: Results) -> List[Row]:
    """Per strategy label and step: how many seeds reached it, and mean and std over those
    seeds of images, boxes, annotation hours and the curve metrics (bbox_mAP and bbox_mAP_50,
    or accuracy and mean_class_accuracy: :func:`curve_metrics`; columns
    :func:`experiment_columns`; hours ``None`` where a run has none)."""
    out = []
    fields = measures(curve_metrics([r for by_seed in results.values()
                                     for rows in by_seed.values() for r in rows]))
    for label, by_seed in results.items():
        by_step: Dict[int, List[Row]] = {}
        for rows in by_seed.values():
            for r in rows:
                by_step.setdefault(r['step'], []).append(r)
        for step in sorted(by_step):
            at = by_step[step]
            row = dict(strategy=label, step=step, seeds=len(at))
            for name, key in fields:
                values = [r.get(key) for r in at]
                # runs recorded before the cost model have no annotation hours
                row[f'{name}_mean'], row[f'{name}_std'] = (
                    mean_std(values) if None not in values else (None, None))
            out.append(row)
    return out


def aggregate_selections(results: Results) -> List[Row]:
    """Per strategy label and step: the selection diagnostics of the runs (the columns
    :data:`SELECTION_COLUMNS` of their summaries), mean over the seeds where each is defined;
    steps that selected nothing (the last) are left out."""
    out = []
    for label, by_seed in results.items():
        by_step: Dict[int, List[Row]] = {}
        for rows in by_seed.values():
            for r in rows:
                if r.get('picked_true_boxes') is not None:
                    by_step.setdefault(r['step'], []).append(r)
        for step in sorted(by_step):
            row = dict(strategy=label, step=step, seeds=len(by_step[step]))
            for key in SELECTION_COLUMNS:
                row[key] = mean_std([r[key] for r in by_step[step]
                                     if r.get(key) is not None])[0]
            out.append(row)
    return out


def class_shares(histogram: Mapping[str, float]) -> Dict[str, float]:
    """Each class's share of the labels (boxes) in ``histogram`` (class -> count); empty when it
    counts none."""
    total = float(sum(histogram.values()))
    return {c: n / total for c, n in sorted(histogram.items())} if total else {}


def total_variation(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """The total variation distance of two class distributions (class -> share): half the sum
    of the absolute differences, 0 for equal mixes, 1 for disjoint ones."""
    return 0.5 * sum(abs(p.get(c, 0.0) - q.get(c, 0.0)) for c in set(p) | set(q))


def aggregate_class_mix(results: Results) -> List[Row]:
    """Per strategy label and step: the class mix of the picks against their pool's, from the
    summary rows' ``picked_class_histogram`` and ``pool_class_histogram`` (runs recorded before
    the pool's histogram have none and are left out).

    Returns rows ``strategy``, ``step``, ``seeds``, ``classes`` (every class of the pools),
    ``picked_share`` and ``pool_share`` (class -> share, mean over the seeds) and
    ``tv_mean``/``tv_std``: the total variation distance between a run's picks and its pool
    (:func:`total_variation`), over the seeds. A strategy that picks the classes in their pool's
    proportions (random) stays near 0, up to sampling noise (about ``0.5 * sum_c sqrt(2 p_c (1 -
    p_c) / (pi n))`` for ``n`` picks of pool shares ``p_c``).
    """
    out = []
    for label, by_seed in results.items():
        by_step: Dict[int, List[Tuple[Dict[str, float], Dict[str, float]]]] = {}
        for rows in by_seed.values():
            for r in rows:
                picked = class_shares(r.get('picked_class_histogram') or {})
                pool = class_shares(r.get('pool_class_histogram') or {})
                if picked and pool:
                    by_step.setdefault(r['step'], []).append((picked, pool))
        for step in sorted(by_step):
            pairs = by_step[step]
            classes = sorted(set().union(*(set(p) | set(q) for p, q in pairs)))
            tv_mean, tv_std = mean_std([total_variation(p, q) for p, q in pairs])
            out.append(dict(
                strategy=label, step=step, seeds=len(pairs), classes=classes,
                picked_share={c: float(np.mean([p.get(c, 0.0) for p, _ in pairs]))
                              for c in classes},
                pool_share={c: float(np.mean([q.get(c, 0.0) for _, q in pairs]))
                            for c in classes},
                tv_mean=tv_mean, tv_std=tv_std))
    return out


def common_ap(rows: Sequence[Row]) -> Optional[float]:
    """The highest mean bbox_mAP that every strategy's mean curve reaches (rows of
    :func:`aggregate`); ``None`` without rows."""
    best: Dict[str, float] = {}
    y = f'{curve_metrics(rows)[0]}_mean'
    for r in rows:
        best[r['strategy']] = max(best.get(r['strategy'], r[y]), r[y])
    return min(best.values()) if best else None


def boxes_at_ap(rows: Sequence[Row], target_ap: float) -> Dict[str, Optional[float]]:
    """Per strategy, the mean boxes at which its mean curve (rows of :func:`aggregate`: mean
    boxes and mean bbox_mAP per step) first reaches ``target_ap`` (:func:`reach`)."""
    curves: Dict[str, List[Tuple[float, float]]] = {}
    y = f'{curve_metrics(rows)[0]}_mean'
    for r in sorted(rows, key=_step):
        curves.setdefault(r['strategy'], []).append((r[y], r['boxes_mean']))
    return {label: reach(points, target_ap) for label, points in curves.items()}
