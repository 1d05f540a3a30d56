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
#: pseudo-box counts. None where unknown (the last step selects nothing; random counts no
#: pseudo boxes).
SELECTION_COLUMNS = ('picked_true_boxes', 'picked_no_true_box', 'picked_pseudo_boxes',
                     'pool_true_boxes', 'pool_pseudo_boxes', 'pool_no_pseudo_box',
                     'spearman_score_pseudo_boxes')
#: The columns of a run's ``summary.csv`` (its ``summary.json`` rows also hold ``metrics`` and
#: ``picked_class_histogram``).
SUMMARY_COLUMNS = ('step', 'strategy', 'seed', 'num_images', 'num_boxes', 'bbox_mAP',
                   'bbox_mAP_50', 'ap_per_10k_boxes') + tuple(f'{s}_seconds' for s in STAGES) \
    + SELECTION_COLUMNS
#: Summary-row fields averaged over seeds, and their names in the experiment's columns.
MEASURES = (('images', 'num_images'), ('boxes', 'num_boxes'), ('bbox_mAP', 'bbox_mAP'),
            ('bbox_mAP_50', 'bbox_mAP_50'))
EXPERIMENT_COLUMNS = ('strategy', 'step', 'seeds') + tuple(
    f'{name}_{stat}' for name, _ in MEASURES for stat in ('mean', 'std'))
BASELINE = 'random'
STD = 'sample standard deviation over seeds (ddof=1); null with fewer than 2'
COMPARISON_DEFINITIONS = dict(
    boxes_needed=(
        "per seed, at each step of random: the boxes at which the strategy's own AP-versus-"
        "boxes curve of that seed (its steps joined by straight lines) first reaches random's "
        "bbox_mAP at that step. None if the curve never reaches it, or if the strategy's first "
        "step is already above it (the curve does not say how few boxes would have done)."),
    saving=("1 - boxes_needed / random's boxes at that step: the fraction of random's boxes "
            "the strategy saves at equal AP; > 0 means fewer boxes. None when boxes_needed is."),
    ap_difference=(
        "per seed, at each step of random: the strategy's bbox_mAP at random's number of "
        "images (linear between its steps; None outside its range of images) minus random's "
        "bbox_mAP; > 0 means a better detector from as many images."),
    summary=("over the seeds both runs have: mean and std (ddof=1) over the seeds where the "
             "value is defined ('defined'); 'holds' = seeds where it is > 0, out of 'seeds'."))


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
    """Boxes at which a run's AP-versus-boxes curve first reaches ``target_ap`` (:func:`reach`:
    ``None`` if it never does, or if its first step is already above it)."""
    return reach([(r['bbox_mAP'], r['num_boxes']) for r in sorted(rows, key=_step)], target_ap)


def ap_at_images(rows: Sequence[Row], images: float) -> Optional[float]:
    """A run's bbox_mAP at ``images`` labeled images, linear between its steps (:func:`reach`);
    ``None`` outside the images its steps cover."""
    return reach([(r['num_images'], r['bbox_mAP']) for r in sorted(rows, key=_step)], images)


def aggregate(results: Results) -> List[Row]:
    """Per strategy label and step: how many seeds reached it, and mean and std over those
    seeds of images, boxes, bbox_mAP and bbox_mAP_50 (columns :data:`EXPERIMENT_COLUMNS`)."""
    out = []
    for label, by_seed in results.items():
        by_step: Dict[int, List[Row]] = {}
        for rows in by_seed.values():
            for r in rows:
                by_step.setdefault(r['step'], []).append(r)
        for step in sorted(by_step):
            at = by_step[step]
            row = dict(strategy=label, step=step, seeds=len(at))
            for name, key in MEASURES:
                row[f'{name}_mean'], row[f'{name}_std'] = mean_std([r[key] for r in at])
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


def compare_with_baseline(results: Results, baseline: str = BASELINE) -> Dict[str, Any]:
    """Every other strategy against ``baseline``, seed by seed, at each of the baseline's steps
    (definitions in :data:`COMPARISON_DEFINITIONS`).

    Returns:
        ``per_seed``: rows ``strategy, seed, step, random_images, random_boxes,
        random_bbox_mAP, boxes_needed, saving, bbox_mAP_at_images, ap_difference``;
        ``savings`` and ``matched_images``: :func:`summarise_per_seed` of those rows.
    """
    if baseline not in results:
        raise KeyError(f'no {baseline!r} strategy among {list(results)}')
    per_seed = []
    for label, by_seed in results.items():
        if label == baseline:
            continue
        for seed in sorted(set(by_seed) & set(results[baseline])):
            for b in sorted(results[baseline][seed], key=_step):
                needed = boxes_needed(by_seed[seed], b['bbox_mAP'])
                ap = ap_at_images(by_seed[seed], b['num_images'])
                per_seed.append(dict(
                    strategy=label, seed=seed, step=b['step'], random_images=b['num_images'],
                    random_boxes=b['num_boxes'], random_bbox_mAP=b['bbox_mAP'],
                    boxes_needed=needed,
                    saving=None if needed is None or not b['num_boxes']
                    else 1.0 - needed / b['num_boxes'],
                    bbox_mAP_at_images=ap,
                    ap_difference=None if ap is None else ap - b['bbox_mAP']))
    return dict(per_seed=per_seed, **summarise_per_seed(per_seed))


def summarise_per_seed(per_seed: Sequence[Row]) -> Dict[str, List[Row]]:
    """Per strategy and step, over the seeds of the ``per_seed`` rows of
    :func:`compare_with_baseline`.

    Returns:
        ``savings``: rows ``strategy, step, seeds, defined, random_boxes_mean,
        random_bbox_mAP_mean, boxes_needed_mean, saving_mean, saving_std, holds``;
        ``matched_images``: rows ``strategy, step, seeds, defined, images_mean,
        random_bbox_mAP_mean, bbox_mAP_mean, ap_difference_mean, ap_difference_std, holds``.
    """
    groups: Dict[Tuple[str, int], List[Row]] = {}
    for r in per_seed:
        groups.setdefault((r['strategy'], r['step']), []).append(r)
    savings, matched = [], []
    for (label, step), rows in groups.items():
        common = dict(strategy=label, step=step, seeds=len(rows))
        base_boxes, _ = mean_std([r['random_boxes'] for r in rows])
        base_ap, _ = mean_std([r['random_bbox_mAP'] for r in rows])
        defined = [r for r in rows if r['saving'] is not None]
        mean, std = mean_std([r['saving'] for r in defined])
        savings.append(dict(
            common, defined=len(defined), random_boxes_mean=base_boxes,
            random_bbox_mAP_mean=base_ap,
            boxes_needed_mean=mean_std([r['boxes_needed'] for r in defined])[0],
            saving_mean=mean, saving_std=std, holds=sum(r['saving'] > 0 for r in defined)))
        defined = [r for r in rows if r['ap_difference'] is not None]
        mean, std = mean_std([r['ap_difference'] for r in defined])
        matched.append(dict(
            common, defined=len(defined),
            images_mean=mean_std([r['random_images'] for r in rows])[0],
            random_bbox_mAP_mean=base_ap,
            bbox_mAP_mean=mean_std([r['bbox_mAP_at_images'] for r in defined])[0],
            ap_difference_mean=mean, ap_difference_std=std,
            holds=sum(r['ap_difference'] > 0 for r in defined)))
    return dict(savings=savings, matched_images=matched)


def common_ap(rows: Sequence[Row]) -> Optional[float]:
    """The highest mean bbox_mAP that every strategy's mean curve reaches (rows of
    :func:`aggregate`); ``None`` without rows."""
    best: Dict[str, float] = {}
    for r in rows:
        best[r['strategy']] = max(best.get(r['strategy'], r['bbox_mAP_mean']), r['bbox_mAP_mean'])
    return min(best.values()) if best else None


def boxes_at_ap(rows: Sequence[Row], target_ap: float) -> Dict[str, Optional[float]]:
    """Per strategy, the mean boxes at which its mean curve (rows of :func:`aggregate`: mean
    boxes and mean bbox_mAP per step) first reaches ``target_ap`` (:func:`reach`)."""
    curves: Dict[str, List[Tuple[float, float]]] = {}
    for r in sorted(rows, key=_step):
        curves.setdefault(r['strategy'], []).append((r['bbox_mAP_mean'], r['boxes_mean']))
    return {label: reach(points, target_ap) for label, points in curves.items()}


def report_data(results: Results, header: Optional[Mapping] = None,
                baseline: Optional[str] = BASELINE) -> Dict[str, Any]:
    """The content of an experiment's ``experiment.json`` (and of its text report).

    Args:
        results: ``{label: {seed: summary rows}}``.
        header: extra facts for the top (config, seeds, runs, ...).
        baseline: the label the others are compared with; ``None``: no comparisons (one run's
            report).

    Returns:
        ``header``'s keys, ``std`` (the convention), ``rows`` (:func:`aggregate`),
        ``selections`` (:func:`aggregate_selections`), ``baseline`` and ``comparisons``
        (:func:`compare_with_baseline` plus ``definitions``; ``None``, with a ``note`` when the
        baseline was asked for but is missing).
    """
    data = dict(header or {})
    data.update(std=STD, rows=aggregate(results), selections=aggregate_selections(results))
    if baseline is not None and baseline in results and results[baseline]:
        data.update(baseline=baseline, comparisons=dict(
            definitions=COMPARISON_DEFINITIONS, **compare_with_baseline(results, baseline)))
    elif baseline is not None:
        data.update(baseline=None, comparisons=None,
                    note=f'no {baseline!r} strategy (or no run of it) in the experiment: '
                         f'savings against random are not computed')
    else:
        data.update(baseline=None, comparisons=None)
    return data
