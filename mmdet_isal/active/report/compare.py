"""Every strategy against random, seed by seed: savings at random's AP (in annotation hours,
boxes and images), AP at random's images, a sensitivity table, and their summaries over seeds.
:func:`report_data` puts them together with :mod:`.aggregate`'s tables (``experiment.json``).

At each step of random, a strategy's own AP curve of the same seed (its steps joined by straight
lines, :func:`~.aggregate.reach`) says how much it needed to reach random's AP: in annotation
hours (the run's cost model), in boxes and in images. The saving is
``1 - needed / random's amount`` (> 0: the strategy needed less).

**The rule for "not reached"** (one rule for every table and plot). A seed whose curve never
reaches random's AP at that step is *not reached*: a failure of the strategy, never left out.
The saving printed for a step is the **median over all seeds** of the comparison, a not-reached
seed counting below every saving (as -inf); when that median falls on a not-reached seed the
step's saving is "not reached". Beside it, every table prints how many seeds reach random's AP
out of how many (e.g. ``2/3 reach, 1 not reached``), and the mean ± std over the seeds that
reach it only together with that count. A seed whose curve is above random's AP from its first
step (its curve does not say how little would have done) counts as reaching it, with the
saving at its first step as a lower bound (``above_from_start``).

**Sensitivity.** The same runs priced at other per-image/per-box cost ratios r, without
retraining: cost = boxes + r x images, in box units, at r = :data:`SENSITIVITY_RATIOS`
(r = 0 counts boxes only; the default cost model, 1 s per class per image and 7 s per box, is
r = classes / 7, about 1.1 for 8 classes).
"""
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mmdet_isal.active.report.aggregate import (BASELINE, STD, Results, Row, aggregate,
                                                aggregate_class_mix, aggregate_selections,
                                                ap_at_images, boxes_needed, curve_metrics,
                                                mean_std, reach)

#: (unit, the summary-row field it is read from)
UNITS = (('hours', 'annotation_hours'), ('boxes', 'num_boxes'), ('images', 'num_images'))
#: per-image/per-box cost ratios of the sensitivity table
SENSITIVITY_RATIOS = (0.0, 0.1, 0.3, 1.0)
REACHED, NOT_REACHED, ABOVE_FROM_START = 'reached', 'not_reached', 'above_from_start'
#: What each field of ``experiment.json``'s ``comparisons`` means.
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
             "value is defined ('defined'); 'holds' = seeds where it is > 0, out of 'seeds'."),
    reach=("per seed, at each step of random: 'reached' if the strategy's own AP curve of that "
           "seed (its steps joined by straight lines) reaches random's bbox_mAP there; "
           "'not_reached' if it never does (a failure, counted in every summary); "
           "'above_from_start' if its first step is already above it"),
    unit_saving=("needed_{unit}: the {unit} at which the curve first reaches random's AP "
                 "(linear between steps; above_from_start: its first step's, an upper bound); "
                 "saving_{unit} = 1 - needed_{unit} / random's {unit} (> 0: less needed; "
                 "above_from_start: a lower bound); None when not reached, or without "
                 "annotation hours in the summaries (runs recorded before the cost model)"),
    unit_summary=("over all seeds of the comparison: saving_{unit}_median, the median with a "
                  "not-reached seed counted below every saving (None, printed 'not reached', "
                  "when the median falls on one); saving_{unit}_mean_reached and "
                  "_std_reached over the seeds that reach it (reached + above_from_start), "
                  "printed only with that count"),
    sensitivity=("the saving at random's AP with cost = boxes + r x images (box units), for "
                 "each per-image/per-box cost ratio r, summarised with the same rule"))


def reach_status(points: Sequence[float], level: float) -> str:
    """Whether an AP curve (its APs in step order) reaches ``level``: :data:`REACHED`,
    :data:`NOT_REACHED` or :data:`ABOVE_FROM_START` (its first AP is already above)."""
    if not points:
        return NOT_REACHED
    if level < points[0]:
        return ABOVE_FROM_START
    return REACHED if max(points) >= level else NOT_REACHED


def needed_at(rows: Sequence[Row], level: float,
              amount: Callable[[Row], Optional[float]]) -> Optional[float]:
    """The ``amount`` (e.g. boxes of a row) at which the AP curve of ``rows`` (in step order)
    first reaches ``level``: :func:`~.aggregate.reach` along ``(bbox_mAP, amount)``; for a
    curve above ``level`` from its first step, the first step's amount; ``None`` if it never
    reaches it or an amount is unknown."""
    y = curve_metrics(rows)[0]
    points = [(r[y], amount(r)) for r in rows]
    if not points or any(a is None for _, a in points):
        return None
    if level < points[0][0]:
        return float(points[0][1])
    return reach(points, level)


def saving(needed: Optional[float], base: Optional[float]) -> Optional[float]:
    """``1 - needed / base``; ``None`` when either is unknown or ``base`` is 0."""
    if needed is None or not base:
        return None
    return 1.0 - needed / base


def ratio_cost(ratio: float) -> Callable[[Row], float]:
    """The cost of a summary row at per-image/per-box ratio ``ratio``: boxes + ratio x images
    (box units)."""
    return lambda r: r['num_boxes'] + ratio * r['num_images']


def seed_savings(rows: Sequence[Row], base: Row) -> Row:
    """One seed's comparison at one step ``base`` of random: ``reach``, per unit of
    :data:`UNITS` ``needed_{unit}`` and ``saving_{unit}``, and per ratio of
    :data:`SENSITIVITY_RATIOS` the saving in that cost (``ratio_savings``, a list)."""
    rows = sorted(rows, key=lambda r: r['step'])
    y = curve_metrics(rows)[0]
    level = base[y]
    out: Row = dict(reach=reach_status([r[y] for r in rows], level))
    for unit, key in UNITS:
        needed = (needed_at(rows, level, lambda r, k=key: r.get(k))
                  if out['reach'] != NOT_REACHED else None)
        out[f'needed_{unit}'] = needed
        out[f'saving_{unit}'] = saving(needed, base.get(key))
    out['ratio_savings'] = [
        saving(needed_at(rows, level, ratio_cost(r)), ratio_cost(r)(base))
        if out['reach'] != NOT_REACHED else None for r in SENSITIVITY_RATIOS]
    return out


def summarise(values: Sequence[Optional[float]], reaches: Sequence[str]) -> Row:
    """Savings of the seeds of one comparison (``None`` where not reached or unknown) and
    their :func:`reach_status`, summarised by the module's rule.

    Returns:
        ``median`` (None when it falls on a not-reached seed, or no saving is known),
        ``mean_reached`` and ``std_reached`` (ddof=1; over the seeds that reach it and have a
        value), ``seeds``, ``reached`` (reached + above from start), ``not_reached``,
        ``above_from_start``.
    """
    not_reached = sum(r == NOT_REACHED for r in reaches)
    known = [v for v, r in zip(values, reaches) if r != NOT_REACHED and v is not None]
    out = dict(seeds=len(reaches), reached=len(reaches) - not_reached,
               not_reached=not_reached,
               above_from_start=sum(r == ABOVE_FROM_START for r in reaches),
               median=None, mean_reached=None, std_reached=None)
    if known:
        arr = np.asarray(known, dtype=float)
        out['mean_reached'] = float(arr.mean())
        out['std_reached'] = float(arr.std(ddof=1)) if len(arr) > 1 else None
        if len(known) + not_reached == len(reaches):  # every seed has a value or failed
            median = float(np.median(np.concatenate([arr, np.full(not_reached, -np.inf)])))
            out['median'] = median if np.isfinite(median) else None
    return out


def summarise_units(rows: Sequence[Row]) -> Row:
    """Per unit of :data:`UNITS` the :func:`summarise` of per-seed comparison rows (one
    strategy, one step), flattened as ``saving_{unit}_median`` etc., with the counts
    (``reached``, ``not_reached``, ``above_from_start``)."""
    reaches = [r['reach'] for r in rows]
    out: Row = {}
    for unit, _ in UNITS:
        summary = summarise([r[f'saving_{unit}'] for r in rows], reaches)
        out.update(reached=summary['reached'], not_reached=summary['not_reached'],
                   above_from_start=summary['above_from_start'])
        for stat in ('median', 'mean_reached', 'std_reached'):
            out[f'saving_{unit}_{stat}'] = summary[stat]
    return out


def sensitivity(per_seed: Sequence[Row]) -> Dict[str, Any]:
    """The sensitivity table from per-seed comparison rows (with ``ratio_savings``): per
    strategy, step and ratio, the :func:`summarise` of the savings at that ratio."""
    groups: Dict[tuple, List[Row]] = {}
    for r in per_seed:
        groups.setdefault((r['strategy'], r['step']), []).append(r)
    out = []
    for (label, step), rows in groups.items():
        reaches = [r['reach'] for r in rows]
        for k, ratio in enumerate(SENSITIVITY_RATIOS):
            summary = summarise([r['ratio_savings'][k] for r in rows], reaches)
            out.append(dict(strategy=label, step=step, ratio=ratio,
                            saving_median=summary.pop('median'),
                            saving_mean_reached=summary.pop('mean_reached'),
                            saving_std_reached=summary.pop('std_reached'), **summary))
    return dict(ratios=list(SENSITIVITY_RATIOS), cost='boxes + ratio x images (box units)',
                rows=out)


def saving_text(summary: Mapping[str, Any], unit: str = '', scale: float = 100.0) -> str:
    """A step's saving as printed: the median (``'not reached'`` when the median falls on a
    not-reached seed, ``'n/a'`` when unknown), e.g. ``'12.0 %'``."""
    key = f'saving_{unit}_median' if unit else 'saving_median'
    value = summary.get(key)
    if value is not None:
        return f'{scale * value:+.1f} %'
    return 'not reached' if summary.get('not_reached') else 'n/a'


def reach_text(summary: Mapping[str, Any]) -> str:
    """``'2/3 reach, 1 not reached'`` (``'3/3 reach'`` when all do); for a summary written
    before the rule (no counts), the seeds where the saving was defined."""
    if 'reached' not in summary:
        return f'{summary.get("defined", "?")}/{summary["seeds"]} defined'
    text = f'{summary["reached"]}/{summary["seeds"]} reach'
    if summary['not_reached']:
        text += f', {summary["not_reached"]} not reached'
    return text


def compare_with_baseline(results: Results, baseline: str = BASELINE) -> Dict[str, Any]:
    """Every other strategy against ``baseline``, seed by seed, at each of the baseline's steps
    (definitions in :data:`COMPARISON_DEFINITIONS`).

    Returns:
        ``per_seed``: rows ``strategy, seed, step, random_images, random_boxes,
        random_bbox_mAP, boxes_needed, saving, bbox_mAP_at_images, ap_difference`` (for a
        classification experiment ``random_accuracy`` and ``accuracy_at_images``), and
        ``random_hours`` with :func:`seed_savings`'s ``reach``, ``needed_{unit}``,
        ``saving_{unit}`` (hours, boxes, images) and ``ratio_savings``;
        ``savings`` and ``matched_images``: :func:`summarise_per_seed` of those rows;
        ``sensitivity``: :func:`sensitivity` of those rows.
    """
    if baseline not in results:
        raise KeyError(f'no {baseline!r} strategy among {list(results)}')
    per_seed = []
    y = curve_metrics(list(results[baseline].values())[0] if results[baseline] else [])[0]
    for label, by_seed in results.items():
        if label == baseline:
            continue
        for seed in sorted(set(by_seed) & set(results[baseline])):
            for b in sorted(results[baseline][seed], key=lambda r: r['step']):
                needed = boxes_needed(by_seed[seed], b[y])
                ap = ap_at_images(by_seed[seed], b['num_images'])
                per_seed.append({
                    'strategy': label, 'seed': seed, 'step': b['step'],
                    'random_images': b['num_images'], 'random_boxes': b['num_boxes'],
                    f'random_{y}': b[y], 'boxes_needed': needed,
                    'saving': None if needed is None or not b['num_boxes']
                    else 1.0 - needed / b['num_boxes'],
                    f'{y}_at_images': ap,
                    'ap_difference': None if ap is None else ap - b[y],
                    'random_hours': b.get('annotation_hours'),
                    **seed_savings(by_seed[seed], b)})
    return dict(per_seed=per_seed, **summarise_per_seed(per_seed, y),
                sensitivity=sensitivity(per_seed))


def summarise_per_seed(per_seed: Sequence[Row], metric: str = 'bbox_mAP'
                       ) -> Dict[str, List[Row]]:
    """Per strategy and step, over the seeds of the ``per_seed`` rows of
    :func:`compare_with_baseline`, whose curve metric is ``metric`` (the keys below are those
    of ``'bbox_mAP'``; with ``'accuracy'`` they name it instead).

    Returns:
        ``savings``: rows ``strategy, step, seeds, defined, random_boxes_mean,
        random_bbox_mAP_mean, boxes_needed_mean, saving_mean, saving_std, holds`` (boxes,
        over the seeds where defined, as before the cost model), and by the rule of this
        module, :func:`summarise_units`: ``random_hours_mean``, ``random_images_mean``,
        ``reached``, ``not_reached``, ``above_from_start`` and per unit
        ``saving_{unit}_median``, ``saving_{unit}_mean_reached``,
        ``saving_{unit}_std_reached``;
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
        base_ap, _ = mean_std([r[f'random_{metric}'] for r in rows])
        defined = [r for r in rows if r['saving'] is not None]
        mean, std = mean_std([r['saving'] for r in defined])
        savings.append(dict(
            common, defined=len(defined), random_boxes_mean=base_boxes,
            **{f'random_{metric}_mean': base_ap},
            boxes_needed_mean=mean_std([r['boxes_needed'] for r in defined])[0],
            saving_mean=mean, saving_std=std, holds=sum(r['saving'] > 0 for r in defined),
            **(_unit_summaries(rows) if all('reach' in r for r in rows) else {})))
        defined = [r for r in rows if r['ap_difference'] is not None]
        mean, std = mean_std([r['ap_difference'] for r in defined])
        matched.append(dict(
            common, defined=len(defined),
            images_mean=mean_std([r['random_images'] for r in rows])[0],
            **{f'random_{metric}_mean': base_ap,
               f'{metric}_mean': mean_std([r[f'{metric}_at_images'] for r in defined])[0]},
            ap_difference_mean=mean, ap_difference_std=std,
            holds=sum(r['ap_difference'] > 0 for r in defined)))
    return dict(savings=savings, matched_images=matched)


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
        ``selections`` (:func:`aggregate_selections`), ``class_mix``
        (:func:`aggregate_class_mix`), ``baseline`` and ``comparisons``
        (:func:`compare_with_baseline`, its sensitivity table included, plus ``definitions``;
        ``None``, with a ``note`` when the baseline was asked for but is missing).
    """
    data = dict(header or {})
    data.update(std=STD, rows=aggregate(results), selections=aggregate_selections(results),
                class_mix=aggregate_class_mix(results))
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


def _unit_summaries(rows: Sequence[Row]) -> Row:
    """The savings in hours, boxes and images of one strategy and step (per-seed rows written
    before the cost model have none)."""
    return dict(random_hours_mean=_mean_known([r.get('random_hours') for r in rows]),
                random_images_mean=mean_std([r['random_images'] for r in rows])[0],
                **summarise_units(rows))


def _mean_known(values: Sequence[Optional[float]]) -> Optional[float]:
    """The mean of ``values``, ``None`` if any is unknown."""
    return None if not values or None in values else mean_std(values)[0]


def step_differences(results: Results, pairs: Sequence[Tuple[str, str]],
                     metric: Optional[str] = None) -> List[Row]:
    """Strategy ``a`` against strategy ``b`` at the same step, seed by seed: with a budget in
    annotator seconds every step of every strategy spends the same time, so this is the
    comparison at equal cost (the seconds a step leaves unspent, at most one image's, show in
    the hours columns).

    Args:
        results: ``{label: {seed: summary rows}}``.
        pairs: ``(a, b)`` labels to compare.
        metric: what to compare: a column of the summary rows (e.g. ``mean_class_accuracy``)
            or a key of their ``metrics`` (everything the evaluator gave, e.g.
            ``classification/prior_corrected_accuracy``); default the curve's primary metric.

    Returns:
        per pair and step that both have on at least one common seed: rows ``a, b, step,
        seeds, metric`` (the metric's name), ``a_hours_mean, b_hours_mean,
        a_{metric}_mean, b_{metric}_mean,
        difference_mean, difference_std`` (``a - b``, std with ddof=1) and ``above`` (seeds
        where a > b); hours ``None`` for runs recorded without a cost model.

    Raises:
        KeyError: a label that is not in ``results``; a ``metric`` that a compared row does not
            hold (naming what it holds).
    """
    for label in {x for pair in pairs for x in pair}:
        if label not in results:
            raise KeyError(f'no runs of {label!r} among {list(results)}')
    y = metric or curve_metrics([r for by_seed in results.values()
                                 for rows in by_seed.values() for r in rows])[0]
    out = []
    for a, b in pairs:
        seeds = sorted(set(results[a]) & set(results[b]))
        by_step: Dict[int, List[Tuple[Row, Row]]] = {}
        for seed in seeds:
            rows_b = {r['step']: r for r in results[b][seed]}
            for ra in results[a][seed]:
                if ra['step'] in rows_b:
                    by_step.setdefault(ra['step'], []).append((ra, rows_b[ra['step']]))
        for step in sorted(by_step):
            both = by_step[step]
            both = [tuple(_with_metric(r, y) for r in pair) for pair in both]
            diffs = [ra[y] - rb[y] for ra, rb in both]
            mean, std = mean_std(diffs)
            out.append({'a': a, 'b': b, 'step': step, 'seeds': len(both), 'metric': y,
                        'a_hours_mean': _mean_known([ra.get('annotation_hours') for ra, _ in both]),
                        'b_hours_mean': _mean_known([rb.get('annotation_hours') for _, rb in both]),
                        f'a_{y}_mean': mean_std([ra[y] for ra, _ in both])[0],
                        f'b_{y}_mean': mean_std([rb[y] for _, rb in both])[0],
                        'difference_mean': mean, 'difference_std': std,
                        'above': sum(d > 0 for d in diffs)})
    return out


def _with_metric(row: Row, metric: str) -> Row:
    """``row`` with ``metric`` as a column: its own, or its ``metrics``' (the evaluator's)."""
    if metric in row:
        return row
    evaluated = row.get('metrics') or {}
    if not isinstance(evaluated.get(metric), (int, float)):
        known = sorted(k for k, v in evaluated.items() if isinstance(v, (int, float)))
        raise KeyError(f'step {row.get("step")} of a run has no metric {metric!r}; its '
                       f'evaluator gave {known}')
    return dict(row, **{metric: float(evaluated[metric])})
