"""The pictures and text of a report: one plot, one text report, for one run or many.

Both take what :mod:`.aggregate` computes (rows of :func:`~.aggregate.aggregate`, the content of
:func:`~.aggregate.report_data`); standard deviations are over seeds with ``ddof=1`` and shown
only where there are two seeds or more.
"""
import io
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmdet_isal.active.report.aggregate import BASELINE, Row, boxes_at_ap
from mmdet_isal.utils.fileio import atomic_write


def plot_curves(rows: Sequence[Row], out: str, title: Optional[str] = None) -> None:
    """Write the plot of a report to ``out`` (png): two panels, bbox mAP against mean boxes and
    against mean images, per strategy, mean ± std over seeds (a band where a strategy has two
    seeds or more; a single run is one line).

    Args:
        rows: rows of :func:`~mmdet_isal.active.report.aggregate.aggregate`.
        out: the png file to write (atomically).
        title: a title over both panels (e.g. the run's strategy and seed), or none.
    """
    fig = Figure(figsize=(11, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    labels = list(dict.fromkeys(r['strategy'] for r in rows))
    over_seeds = any(r['seeds'] > 1 for r in rows)
    for label in labels:
        curve = sorted((r for r in rows if r['strategy'] == label), key=lambda r: r['step'])
        y = np.array([r['bbox_mAP_mean'] for r in curve])
        std = np.array([r['bbox_mAP_std'] or 0.0 for r in curve])
        seeds = max(r['seeds'] for r in curve)
        for ax, x_name in zip(axes, ('boxes', 'images')):
            x = np.array([r[f'{x_name}_mean'] for r in curve])
            line, = ax.plot(x, y, marker='o', label=f'{label} ({seeds} seed'
                            f'{"s" if seeds > 1 else ""})')
            if seeds > 1:
                ax.fill_between(x, y - std, y + std, color=line.get_color(), alpha=0.2)
    for ax, x_name in zip(axes, ('annotated boxes', 'labeled images')):
        ax.set_xlabel(f'{x_name} (mean over seeds)' if over_seeds else x_name)
        ax.set_ylabel('bbox mAP (mean ± std over seeds)' if over_seeds else 'bbox mAP')
        ax.set_title(f'AP versus {x_name}')
        ax.grid(True, alpha=0.3)
        if labels:
            ax.legend()
    if title:
        fig.suptitle(title)
    # fixed margins: tight_layout would draw the figure once more to measure it (as long as
    # the drawing itself), and the loop redraws this plot after every evaluation
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.12, top=0.86 if title else 0.92,
                        wspace=0.22)
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    atomic_write(out, buf.getvalue())


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
    """The text report: AP per strategy and step, what each selection picked, the
    comparisons with random (when ``data`` has them), and with ``target_ap`` the boxes each
    strategy's mean curve needs to reach it.

    Args:
        data: the content of ``experiment.json``
            (:func:`~mmdet_isal.active.report.aggregate.report_data`).
        target_ap: a common bbox mAP (0-1) to compare mean box counts at (``tools/plot_runs.py
            --ap``); ``None``: no such section.
    """
    width = max([len(r['strategy']) for r in data['rows']] + [8])
    lines = ['bbox mAP per strategy and step (mean ± std over seeds):',
             f'{"strategy":<{width}} {"seeds":>5} {"step":>4} {"images":>14} {"boxes":>16} '
             f'{"bbox_mAP":>17} {"bbox_mAP_50":>17}']
    for r in data['rows']:
        lines.append(
            f'{r["strategy"]:<{width}} {r["seeds"]:>5} {r["step"]:>4} '
            f'{_pm(r["images_mean"], r["images_std"], ".0f"):>14} '
            f'{_pm(r["boxes_mean"], r["boxes_std"], ".0f"):>16} '
            f'{_pm(r["bbox_mAP_mean"], r["bbox_mAP_std"], ".4f"):>17} '
            f'{_pm(r["bbox_mAP_50_mean"], r["bbox_mAP_50_std"], ".4f"):>17}')
    if data.get('selections'):
        lines += ['', 'What each selection picked (after step; mean over seeds): true boxes and '
                      'pseudo boxes per picked image (pool), share of picks without a true box, '
                      'Spearman(score, pseudo boxes):',
                  f'{"strategy":<{width}} {"step":>4} {"true boxes":>16} {"pseudo boxes":>16} '
                  f'{"no box":>7} {"Spearman":>8}']
        for r in data['selections']:
            lines.append(
                f'{r["strategy"]:<{width}} {r["step"]:>4} '
                f'{_num(r["picked_true_boxes"], ".2f")} ({_num(r["pool_true_boxes"], ".2f")})'
                f'{"":>3}{_num(r["picked_pseudo_boxes"], ".1f")} '
                f'({_num(r["pool_pseudo_boxes"], ".1f")})'
                f'{"":>3}{_num(r["picked_no_true_box"], ".0%")} '
                f'{_num(r["spearman_score_pseudo_boxes"], "+.2f")}')
    comparisons = data.get('comparisons')
    if comparisons is None:
        if data.get('note'):
            lines += ['', data['note']]
    else:
        lines += _comparison_lines(comparisons, width)
    if target_ap is not None:
        lines += _boxes_at_ap_lines(data['rows'], target_ap)
    return '\n'.join(lines)


def _comparison_lines(comparisons: Mapping[str, Any], width: int) -> list:
    lines = ['', "Boxes saved at random's AP: saving = 1 - boxes needed / random's boxes",
             '(mean ± std over the seeds where defined; holds = seeds with saving > 0):',
             f'{"strategy":<{width}} {"step":>4} {"random boxes":>12} {"random AP":>9} '
             f'{"boxes needed":>12} {"saving":>17} {"holds":>7}']
    for r in comparisons['savings']:
        needed = r['boxes_needed_mean']
        lines.append(
            f'{r["strategy"]:<{width}} {r["step"]:>4} {r["random_boxes_mean"]:>12.0f} '
            f'{r["random_bbox_mAP_mean"]:>9.4f} '
            f'{"n/a" if needed is None else f"{needed:.0f}":>12} '
            f'{_pm(r["saving_mean"], r["saving_std"], ".1f", 100, " %"):>17} '
            f'{_holds(r):>7}' + _undefined(r))
    lines += ['', "AP at random's number of images: difference = strategy's AP - random's",
              '(mean ± std over the seeds where defined; holds = seeds with a higher AP):',
              f'{"strategy":<{width}} {"step":>4} {"images":>12} {"random AP":>9} '
              f'{"AP":>12} {"difference":>17} {"holds":>7}']
    for r in comparisons['matched_images']:
        ap = r['bbox_mAP_mean']
        lines.append(
            f'{r["strategy"]:<{width}} {r["step"]:>4} {r["images_mean"]:>12.0f} '
            f'{r["random_bbox_mAP_mean"]:>9.4f} {"n/a" if ap is None else f"{ap:.4f}":>12} '
            f'{_pm(r["ap_difference_mean"], r["ap_difference_std"], "+.4f"):>17} '
            f'{_holds(r):>7}' + _undefined(r))
    return lines


def _boxes_at_ap_lines(rows: Sequence[Row], target_ap: float) -> list:
    """Boxes each mean curve needs to reach ``target_ap``, and the difference to random's where
    random is among the strategies."""
    needed = boxes_at_ap(rows, target_ap)
    first = {}
    for r in sorted(rows, key=lambda r: r['step']):
        first.setdefault(r['strategy'], r['bbox_mAP_mean'])
    width = max([len(name) for name in needed] + [12])
    lines = ['', f'boxes needed to reach bbox_mAP {target_ap:.4f} (mean curves over seeds, '
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


def _num(value: Optional[float], fmt: str) -> str:
    return 'n/a' if value is None else format(value, fmt)


def _holds(row: Row) -> str:
    return f'{row["holds"]}/{row["seeds"]}'


def _undefined(row: Row) -> str:
    missing = row['seeds'] - row['defined']
    return f' ({missing} seed{"s" if missing > 1 else ""} undefined)' if missing else ''
