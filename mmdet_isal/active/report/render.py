"""The pictures of a report: one plot, for one run or many, and its title.

:func:`plot_curves` takes rows of :func:`~.aggregate.aggregate` (and the savings of
:func:`~.compare.compare_with_baseline`); standard deviations are over seeds with ``ddof=1``
and shown only where there are two seeds or more. Every figure is read the same way:

* one fixed colour per strategy label in every figure (:func:`strategy_colours`); random is
  black and dashed;
* panels: bbox mAP against annotation hours first, then against annotated boxes, then against
  labeled images (runs with one label per image, image classification: accuracy against hours
  and images, no boxes panel);
* a title naming the data set, the model and the protocol (:func:`protocol_title`); the legend
  outside the axes;
* random's AP at each of its steps after the first drawn as a dotted line, with each
  strategy's saving at that AP written on it in the panel's unit, in the strategy's colour
  (the median over seeds, "n.r." when not reached; :mod:`.compare`).
"""
import io
import os.path as osp
import zlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, HPacker, TextArea

from mmdet_isal.active.report.aggregate import (BASELINE, METRIC_LABELS, METRIC_SHORT, Row,
                                                curve_metrics, one_label_per_image)
from mmdet_isal.cost import CostModel
from mmdet_isal.utils.fileio import atomic_write

#: Colours of the registered strategy names (random: black); other labels hash into
#: :data:`PALETTE`.
STRATEGY_COLOURS = {
    'random': '#000000', 'isal': '#1f77b4', 'fewest_detections': '#8c564b',
    'entropy': '#2ca02c', 'least_confidence': '#bcbd22', 'coreset': '#9467bd',
    'localization_stability': '#17becf', 'learning_loss': '#e377c2',
    'matched_random': '#7f7f7f'}
#: Colours for other labels: hues apart from those of :data:`STRATEGY_COLOURS`, neighbours
#: unlike each other (a label whose colour is taken gets the next one).
PALETTE = ('#d62728', '#08306b', '#e6ab02', '#01665e', '#ae017e', '#ff7f0e', '#7570b3',
           '#fb9a99', '#a6761d', '#525252')
#: The panels, in order: (x field of the aggregate rows, axis label, unit of the savings).
PANELS = (('hours', 'annotation hours', 'hours'), ('boxes', 'annotated boxes', 'boxes'),
          ('images', 'labeled images', 'images'))
#: Layout: panel width and height (inches), the legend's column, dpi.
_PANEL_W, _HEIGHT, _LEGEND_W, _DPI = 4.4, 4.6, 2.4, 110


def strategy_colours(labels: Sequence[str]) -> Dict[str, str]:
    """A colour per label: :data:`STRATEGY_COLOURS` for registered names, else a stable hash
    of the label (crc32) into :data:`PALETTE`. Two labels of one figure never share a colour:
    a label whose colour is taken (labels in sorted order) takes the next free colour of the
    palette."""
    out: Dict[str, str] = {}
    for label in sorted(labels, key=lambda x: (x not in STRATEGY_COLOURS, x)):
        colour = STRATEGY_COLOURS.get(label)
        if colour is None or colour in out.values():
            start = zlib.crc32(label.encode()) % len(PALETTE)
            free = [PALETTE[(start + k) % len(PALETTE)] for k in range(len(PALETTE))
                    if PALETTE[(start + k) % len(PALETTE)] not in out.values()]
            colour = free[0] if free else PALETTE[start]
        out[label] = colour
    return out


def dataset_name(ann_file: Optional[str]) -> str:
    """A data set's name from its pool annotation file: the first directory above the
    annotation layout (``annotations/``, ``ImageSets/Main``, ``VOC20xx``), e.g. ``shapes`` for
    ``data/shapes/annotations/instances_train.json``."""
    if not ann_file:
        return 'unknown data'
    path = osp.dirname(osp.abspath(ann_file))
    while osp.basename(path) in ('annotations', 'Main', 'ImageSets') or \
            osp.basename(path).startswith('VOC20'):
        path = osp.dirname(path)
    return osp.basename(path) or ann_file


def model_description(model_cfg: Optional[Mapping[str, Any]]) -> Optional[str]:
    """``'FCOS (ResNet-18)'``-like text of an mmdet model config: its type and its backbone's
    (with the depth where it has one); a wrapper (a ``detector`` key) names both."""
    if not model_cfg:
        return None
    inner = model_cfg.get('detector')
    if isinstance(inner, Mapping):
        return f'{model_cfg.get("type")} of {model_description(inner)}'
    backbone = model_cfg.get('backbone') or {}
    depth = backbone.get('depth')
    name = str(backbone.get('type', '')).replace('ResNet', 'ResNet-' if depth else 'ResNet')
    return f'{model_cfg.get("type")} ({name}{depth or ""})' if backbone else \
        str(model_cfg.get('type'))


def protocol_title(dataset: str, model: Optional[str], al: Mapping[str, Any],
                   labels_are_boxes: bool = True) -> str:
    """``'shapes, FCOS (ResNet-18): 300 images initial, +150 images x 2, from scratch; 8 s per
    image + 7 s per box'`` from an ``active_learning`` block as the ledger stores it. Without
    ``labels_are_boxes`` (one label per image: classification) the cost is that of a labeled
    image, ``'15 s per labeled image'`` (an image and its one label)."""
    def amount(budget):
        if not budget:
            return '?'
        kind, value = next(iter(budget.items()))
        return f'{value:g} s' if kind == 'seconds' else f'{value} {kind}'
    steps = al.get('steps')
    parts = [f'{amount(al.get("initial"))} initial',
             f'+{amount(al.get("budget"))} x {steps - 1}' if steps else None,
             'from scratch' if al.get('retrain', 'scratch') == 'scratch' else 'fine-tuned']
    text = f'{dataset}' + (f', {model}' if model else '') + ': ' + \
        ', '.join(p for p in parts if p)
    cost = al.get('cost') or {}
    if cost.get('per_image') is not None:
        text += f'; {cost["per_image"]:g} s per image + {cost["per_box"]:g} s per box' \
            if labels_are_boxes else \
            f'; {CostModel.from_dict(cost).image_seconds(boxes=1):g} s per labeled image'
    return text


def plot_curves(rows: Sequence[Row], out: str, title: Optional[str] = None,
                savings: Optional[Sequence[Row]] = None) -> None:
    """Write the plot of a report to ``out`` (png): three panels, bbox mAP (a classification
    experiment's rows: accuracy, :func:`~.aggregate.curve_metrics`) against mean
    annotation hours, boxes and images (no boxes panel with one label per image), per
    strategy, mean ± std over seeds (a band where a strategy has two seeds or more; a single
    run is one line).

    Args:
        rows: rows of :func:`~mmdet_isal.active.report.aggregate.aggregate`.
        out: the png file to write (atomically).
        title: a title over the panels (the data set, the model and the protocol,
            :func:`protocol_title`), or none.
        savings: the ``savings`` rows of :func:`~.compare.compare_with_baseline`; with them
            (and random among ``rows``) random's AP at each step is drawn as a dotted line
            with each strategy's saving on it.
    """
    labels = list(dict.fromkeys(r['strategy'] for r in rows))
    colours = strategy_colours(labels)
    # one label per image (classification): a boxes panel would repeat the images panel
    panels = tuple(p for p in PANELS if p[0] != 'boxes' or not one_label_per_image(rows))
    fig = Figure(figsize=(_PANEL_W * len(panels) + _LEGEND_W, _HEIGHT), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels))
    over_seeds = any(r['seeds'] > 1 for r in rows)
    metric = curve_metrics(rows)[0]
    for label in labels:
        curve = sorted((r for r in rows if r['strategy'] == label), key=lambda r: r['step'])
        y = np.array([r[f'{metric}_mean'] for r in curve])
        std = np.array([r[f'{metric}_std'] or 0.0 for r in curve])
        seeds = max(r['seeds'] for r in curve)
        style = dict(color=colours[label], marker='o', markersize=4,
                     linestyle='--' if label == BASELINE else '-',
                     label=f'{label} ({seeds} seed{"s" if seeds > 1 else ""})')
        for ax, (x_name, _, _) in zip(axes, panels):
            x = [r[f'{x_name}_mean'] for r in curve]
            if None in x:
                continue  # no annotation hours: runs recorded before the cost model
            ax.plot(np.array(x), y, **style)
            if seeds > 1:
                ax.fill_between(np.array(x), y - std, y + std, color=colours[label], alpha=0.15)
    for ax, (x_name, axis_label, _) in zip(axes, panels):
        ax.set_xlabel(f'{axis_label} (mean over seeds)' if over_seeds else axis_label)
        ax.set_title(f'{METRIC_SHORT[metric]} versus {axis_label}')
        ax.grid(True, alpha=0.3)
        if not any(r[f'{x_name}_mean'] is not None for r in rows):
            ax.text(0.5, 0.5, f'no {axis_label} recorded\n(runs from before the cost model)',
                    transform=ax.transAxes, ha='center', va='center', color='0.4')
    name = METRIC_LABELS[metric]
    axes[0].set_ylabel(f'{name} (mean ± std over seeds)' if over_seeds else name)
    if savings and BASELINE in labels:
        _draw_random_levels(axes, panels, rows, savings, colours)
    if labels:
        handles = _legend_handles(axes)
        fig.legend(handles, [h.get_label() for h in handles], loc='center left',
                   bbox_to_anchor=(1 - _LEGEND_W / fig.get_figwidth() + 0.005, 0.5),
                   fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    # fixed margins: tight_layout would draw the figure once more to measure it (as long as
    # the drawing itself), and the loop redraws this plot after every evaluation
    right = 1 - _LEGEND_W / fig.get_figwidth()
    fig.subplots_adjust(left=0.055, right=right - 0.01, bottom=0.12,
                        top=0.84 if title else 0.9, wspace=0.22)
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    atomic_write(out, buf.getvalue())


def _legend_handles(axes) -> list:
    """One line per label, from the first panel that drew it."""
    seen: Dict[str, Any] = {}
    for ax in axes:
        for line in ax.get_lines():
            if not line.get_label().startswith('_'):
                seen.setdefault(line.get_label(), line)
    return list(seen.values())


def _draw_random_levels(axes, panels: Sequence[Tuple[str, str, str]], rows: Sequence[Row],
                        savings: Sequence[Row], colours: Mapping[str, str]) -> None:
    """Random's mean AP at each of its steps after the first as a dotted line, and on it each
    strategy's saving there in the panel's unit (coloured as the strategy)."""
    by_step: Dict[int, list] = {}
    for s in savings:
        by_step.setdefault(s['step'], []).append(s)
    metric = curve_metrics(rows)[0]
    levels = [(r['step'], r[f'{metric}_mean']) for r in rows
              if r['strategy'] == BASELINE and r['step'] != 0]  # all start from random's step 0
    for ax, (_, _, unit) in zip(axes, panels):
        for _, level in levels:
            ax.axhline(level, color='0.35', linestyle=':', linewidth=0.9, zorder=0)
        bottom, top = ax.get_ylim()
        heights = label_heights([(level - bottom) / (top - bottom) for _, level in levels])
        for (step, _), height in zip(levels, heights):
            texts = [TextArea(f'saved at step {step}:', textprops=dict(size=6, color='0.3'))]
            for s in by_step.get(step, []):  # in the legend's order
                value = s.get(f'saving_{unit}_median')
                text = f'{100 * value:+.0f}%' if value is not None else (
                    'n.r.' if s.get('not_reached') else 'n/a')
                texts.append(TextArea(text, textprops=dict(
                    size=6.5, weight='bold', color=colours.get(s['strategy'], '0.3'))))
            box = HPacker(children=texts, pad=0, sep=3, align='baseline')
            ax.add_artist(AnnotationBbox(box, (0.01, height), xycoords='axes fraction',
                                         box_alignment=(0, -0.15), frameon=False, pad=0))


def label_heights(heights: Sequence[float], gap: float = 0.035,
                  top: float = 0.96) -> List[float]:
    """Heights (axes fractions) for the labels of lines at ``heights``: each label on its line
    where it fits, else moved up (down near the top) just far enough that labels are at least
    ``gap`` apart and none is above ``top``, in the lines' order; the input order is kept."""
    order = sorted(range(len(heights)), key=lambda k: heights[k])
    placed = [heights[k] for k in order]
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + gap)
    for i in reversed(range(len(placed))):
        limit = top if i == len(placed) - 1 else placed[i + 1] - gap
        placed[i] = min(placed[i], limit)
    out = [0.0] * len(heights)
    for k, h in zip(order, placed):
        out[k] = h
    return out
