"""The text of a report (``report.txt``, what the tools print): one function, for one run or many.

:func:`format_report` takes the content of ``experiment.json``
(:func:`~.compare.report_data`). Savings at random's AP follow the rule of :mod:`.compare`: the
median over all seeds, a seed that never reaches random's AP counted as a failure ("not
reached"), the count of seeds that reach it always beside a saving, and a mean only over the
seeds that reach it, printed with their count.
"""
from typing import Any, List, Mapping, Optional, Sequence

from mmdet_isal.active.report.aggregate import (BASELINE, METRIC_LABELS, METRIC_SHORT, Row,
                                                boxes_at_ap, curve_metrics,
                                                one_label_per_image)
from mmdet_isal.active.report.compare import SENSITIVITY_RATIOS, reach_text, saving_text

_UNITS = ('hours', 'boxes', 'images')


def _pm(mean: Optional[float], std: Optional[float], fmt: str, scale: float = 1.0,
        unit: str = '') -> str:
    """``mean ± std`` (``std`` left out when undefined), both times ``scale``."""
    if mean is None:
        return 'n/a'
    text = f'{scale * mean:{fmt}}'
    if std is not None:
        text += f' ± {scale * std:{fmt.lstrip("+")}}'
    return text + unit


def format_report(data: Mapping[str, Any], target_ap: Optional[float] = None) -> str:
    """The text report: AP per strategy and step (with images, boxes and annotation hours),
    what each selection picked and its class mix against its pool's, the comparisons with
    random (when ``data`` has them: savings at random's AP in hours, boxes and images, their
    cost-ratio sensitivity, AP at random's images), and with ``target_ap`` the boxes each
    strategy's mean curve needs to reach it.

    Runs with one label per image (image classification, :func:`~.aggregate.
    one_label_per_image`) read in their metric (accuracy) and show no boxes: no box column, no
    box diagnostics of the selections (how often a strategy's pseudo-labels are right instead,
    where it gave them), savings in hours and images only and no sensitivity
    table (a saving is the same at every cost ratio).

    Args:
        data: the content of ``experiment.json``
            (:func:`~mmdet_isal.active.report.compare.report_data`).
        target_ap: a common bbox mAP (0-1) to compare mean box counts at (``tools/plot_runs.py
            --ap``); ``None``: no such section.
    """
    width = max([len(r['strategy']) for r in data['rows']] + [8])
    y, y2 = curve_metrics(data['rows'])
    boxes = not one_label_per_image(data['rows'])
    lines = [f'{METRIC_LABELS[y]} per strategy and step (mean ± std over seeds; hours: '
             f'annotation hours of the labeled set):',
             f'{"strategy":<{width}} {"seeds":>5} {"step":>4} {"images":>14} '
             + (f'{"boxes":>16} ' if boxes else '') + f'{"hours":>13} {y:>17} {y2:>17}']
    for r in data['rows']:
        lines.append(
            f'{r["strategy"]:<{width}} {r["seeds"]:>5} {r["step"]:>4} '
            f'{_pm(r["images_mean"], r["images_std"], ".0f"):>14} '
            + (f'{_pm(r["boxes_mean"], r["boxes_std"], ".0f"):>16} ' if boxes else '') +
            f'{_pm(r.get("hours_mean"), r.get("hours_std"), ".2f"):>13} '
            f'{_pm(r[f"{y}_mean"], r[f"{y}_std"], ".4f"):>17} '
            f'{_pm(r[f"{y2}_mean"], r[f"{y2}_std"], ".4f"):>17}')
    if data.get('selections') and boxes:
        lines += _selection_lines(data['selections'], width)
    elif data.get('selections'):
        lines += _pseudo_label_lines(data['selections'], width)
    if data.get('class_mix'):
        lines += _class_mix_lines(data['class_mix'], width, boxes)
    comparisons = data.get('comparisons')
    if comparisons is None:
        if data.get('note'):
            lines += ['', data['note']]
    else:
        units = _UNITS if boxes else tuple(u for u in _UNITS if u != 'boxes')
        lines += _saving_lines(comparisons['savings'], width, y, units)
        if comparisons.get('sensitivity') and boxes:
            lines += _sensitivity_lines(comparisons['sensitivity'], width)
        lines += _matched_image_lines(comparisons['matched_images'], width, y)
    if target_ap is not None:
        lines += _boxes_at_ap_lines(data['rows'], target_ap)
    return '\n'.join(lines)


def _selection_lines(selections: Sequence[Row], width: int) -> List[str]:
    lines = ['', 'What each selection picked (after step; mean over seeds): true boxes and '
                 'pseudo boxes per picked image (pool), share of picks without a true box, '
                 'Spearman(score, pseudo boxes), the pool\'s pseudo/true box ratio and the '
                 'detection threshold:',
             f'{"strategy":<{width}} {"step":>4} {"true boxes":>16} {"pseudo boxes":>16} '
             f'{"no box":>7} {"Spearman":>8} {"pseudo/true":>11} {"thr":>6}']
    for r in selections:
        lines.append(
            f'{r["strategy"]:<{width}} {r["step"]:>4} '
            f'{_num(r["picked_true_boxes"], ".2f")} ({_num(r["pool_true_boxes"], ".2f")})'
            f'{"":>3}{_num(r["picked_pseudo_boxes"], ".1f")} '
            f'({_num(r["pool_pseudo_boxes"], ".1f")})'
            f'{"":>3}{_num(r["picked_no_true_box"], ".0%")} '
            f'{_num(r["spearman_score_pseudo_boxes"], "+.2f")} '
            f'{_num(r.get("pool_pseudo_true_ratio"), ".2f"):>11} '
            f'{_num(r.get("score_thr"), ".3f"):>6}')
    return lines


def _pseudo_label_lines(selections: Sequence[Row], width: int) -> List[str]:
    rows = [r for r in selections if r.get('picked_pseudo_label_accuracy') is not None]
    if not rows:
        return []
    lines = ['', 'How often the pseudo-labels a strategy scored with are right (after step; '
                 'mean over seeds): the picks\' share with the true class, and the pool\'s:',
             f'{"strategy":<{width}} {"step":>4} {"picks":>6} {"pool":>6}']
    for r in rows:
        lines.append(f'{r["strategy"]:<{width}} {r["step"]:>4} '
                     f'{_num(r["picked_pseudo_label_accuracy"], ".1%"):>6} '
                     f'{_num(r["pool_pseudo_label_accuracy"], ".1%"):>6}')
    return lines


def _class_mix_lines(mix: Sequence[Row], width: int, boxes: bool) -> List[str]:
    what = 'new boxes' if boxes else 'picks'
    classes = sorted(set().union(*(r['classes'] for r in mix)))
    cell = max([len(c) for c in classes] + [9])
    lines = ['', f'Class mix of each selection (after step; mean over seeds): each class\'s share '
                 f'of the {what} / of the pool it was picked from, and TV, the total variation '
                 f'distance between the two (0: the pool\'s proportions):',
             f'{"strategy":<{width}} {"step":>4} {"TV":>13} '
             + ' '.join(f'{c:>{cell}}' for c in classes)]
    for r in mix:
        shares = (f'{100 * r["picked_share"].get(c, 0):.0f}/{100 * r["pool_share"].get(c, 0):.0f}'
                  for c in classes)
        lines.append(f'{r["strategy"]:<{width}} {r["step"]:>4} '
                     f'{_pm(r["tv_mean"], r["tv_std"], ".3f"):>13} '
                     + ' '.join(f'{s:>{cell}}' for s in shares))
    return lines


def _saving_lines(savings: Sequence[Row], width: int, metric: str = 'bbox_mAP',
                  units: Sequence[str] = _UNITS) -> List[str]:
    ap = METRIC_SHORT[metric]
    rw = max(9, len(f'random {ap}'))
    lines = ['', f"Saving at random's {ap}: per seed 1 - what the strategy needed to reach "
                 f"random's {ap} / what random spent, in annotation {_and(units)};",
             f'median over all seeds, a seed whose curve never reaches random\'s {ap} counting '
             'as a failure ("not reached"):',
             f'{"strategy":<{width}} {"step":>4} {f"random {ap}":>{rw}} {"random hours":>12} '
             + ' '.join(f'{f"{u} saving":>13}' for u in units) + '  seeds']
    for r in savings:
        hours = r.get('random_hours_mean')
        lines.append(
            f'{r["strategy"]:<{width}} {r["step"]:>4} {r[f"random_{metric}_mean"]:>{rw}.4f} '
            f'{"n/a" if hours is None else f"{hours:.2f}":>12} '
            + ' '.join(f'{saving_text(r, unit):>13}' for unit in units)
            + f'  {reach_text(r)}' + _above(r))
    lines += ['', f"Mean ± std of the saving over the seeds that reach random's {ap} (their "
                  'count beside it):',
              f'{"strategy":<{width}} {"step":>4} '
              + ' '.join(f'{f"{u} saving":>17}' for u in units) + '  seeds']
    for r in savings:
        cells = [_pm(r.get(f'saving_{u}_mean_reached'), r.get(f'saving_{u}_std_reached'),
                     '+.1f', 100, ' %') for u in units]
        lines.append(f'{r["strategy"]:<{width}} {r["step"]:>4} ' +
                     ' '.join(f'{c:>17}' for c in cells) + f'  {reach_text(r)}')
    return lines


def _sensitivity_lines(sensitivity: Mapping[str, Any], width: int) -> List[str]:
    ratios = sensitivity.get('ratios', SENSITIVITY_RATIOS)
    rows = {}
    for r in sensitivity['rows']:
        rows.setdefault((r['strategy'], r['step']), {})[r['ratio']] = r
    lines = ['', "Sensitivity: saving at random's AP with cost = boxes + r x images (box units; "
                 'r = per-image / per-box cost), median over seeds, same runs:',
             f'{"strategy":<{width}} {"step":>4} ' +
             ' '.join(f'{f"r = {r:g}":>13}' for r in ratios) + '  seeds']
    for (label, step), by_ratio in rows.items():
        first = by_ratio[ratios[0]]
        lines.append(f'{label:<{width}} {step:>4} ' + ' '.join(
            f'{saving_text(by_ratio[r]):>13}' for r in ratios) + f'  {reach_text(first)}')
    return lines


def _matched_image_lines(matched: Sequence[Row], width: int,
                         metric: str = 'bbox_mAP') -> List[str]:
    ap = METRIC_SHORT[metric]
    rw = max(9, len(f'random {ap}'))
    lines = ['', f"{ap[0].upper() + ap[1:]} at random's number of images: difference = "
                 f"strategy's {ap} - random's",
             f'(mean ± std over the seeds where defined; holds = seeds with a higher {ap}):',
             f'{"strategy":<{width}} {"step":>4} {"images":>12} {f"random {ap}":>{rw}} '
             f'{ap:>12} {"difference":>17} {"holds":>7}']
    for r in matched:
        value = r[f'{metric}_mean']
        lines.append(
            f'{r["strategy"]:<{width}} {r["step"]:>4} {r["images_mean"]:>12.0f} '
            f'{r[f"random_{metric}_mean"]:>{rw}.4f} '
            f'{"n/a" if value is None else f"{value:.4f}":>12} '
            f'{_pm(r["ap_difference_mean"], r["ap_difference_std"], "+.4f"):>17} '
            f'{r["holds"]}/{r["seeds"]:<5}' + _undefined(r))
    return lines


def _boxes_at_ap_lines(rows: Sequence[Row], target_ap: float) -> List[str]:
    """Boxes each mean curve needs to reach ``target_ap``, and the difference to random's where
    random is among the strategies."""
    needed = boxes_at_ap(rows, target_ap)
    first = {}
    for r in sorted(rows, key=lambda r: r['step']):
        first.setdefault(r['strategy'], r[f'{curve_metrics(rows)[0]}_mean'])
    width = max([len(name) for name in needed] + [12])
    lines = ['', f'boxes needed to reach {curve_metrics(rows)[0]} {target_ap:.4f} (mean curves over seeds, '
                 f'linear between steps):']
    base = needed.get(BASELINE)
    for name, boxes in needed.items():
        if boxes is None:
            why = ('above it from the first step' if first[name] > target_ap
                   else 'not reached')
            lines.append(f'  {name:<{width}} {why}')
            continue
        note = ''
        if base and name != BASELINE:
            fewer = base - boxes
            note = f'  ({abs(fewer):.0f} {"fewer" if fewer >= 0 else "more"} boxes than ' \
                   f'random, {100 * abs(fewer) / base:.1f}%)'
        lines.append(f'  {name:<{width}} {boxes:9.0f}{note}')
    return lines


def _and(words: Sequence[str]) -> str:
    """``a, b and c``."""
    return ', '.join(words[:-1]) + (' and ' if len(words) > 1 else '') + words[-1]


def _num(value: Optional[float], fmt: str) -> str:
    return 'n/a' if value is None else format(value, fmt)


def _above(row: Row) -> str:
    n = row.get('above_from_start')
    return f' ({n} above random from the first step: a lower bound)' if n else ''


def _undefined(row: Row) -> str:
    missing = row['seeds'] - row['defined']
    return f' ({missing} seed{"s" if missing > 1 else ""} undefined)' if missing else ''


def format_step_differences(rows: Sequence[Row]) -> str:
    """The table of :func:`~.compare.step_differences`: per pair and step, both strategies'
    mean hours and metric, the difference ``a - b`` (mean ± std over seeds) and the seeds where
    ``a`` is above."""
    if not rows:
        return 'no step that both strategies of a pair have evaluated'
    y = rows[0]['metric']
    ap = METRIC_SHORT.get(y, y.rpartition('/')[2])
    width = max([len(f'{r["a"]} - {r["b"]}') for r in rows] + [8])
    col = max(9, len(ap) + 2)
    lines = [f"{ap[0].upper() + ap[1:]} of a minus {ap} of b at the same step, seed by seed "
             '(with a budget in annotator seconds: at equal cost); mean ± std over the seeds, '
             'above = seeds where a is higher:',
             f'{"a - b":<{width}} {"step":>4} {"hours a":>8} {"hours b":>8} {f"{ap} a":>{col}} '
             f'{f"{ap} b":>{col}} {"difference":>17} {"above":>7}']
    for r in rows:
        lines.append(
            f'{r["a"] + " - " + r["b"]:<{width}} {r["step"]:>4} '
            f'{_num(r["a_hours_mean"], ".2f"):>8} {_num(r["b_hours_mean"], ".2f"):>8} '
            f'{r[f"a_{y}_mean"]:>{col}.4f} {r[f"b_{y}_mean"]:>{col}.4f} '
            f'{_pm(r["difference_mean"], r["difference_std"], "+.4f"):>17} '
            f'{r["above"]}/{r["seeds"]:<5}')
    return '\n'.join(lines)
