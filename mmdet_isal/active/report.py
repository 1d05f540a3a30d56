"""Reports of active-learning runs: per-step summaries, AP-versus-boxes plots and tables.

Units: ``bbox_mAP`` and ``bbox_mAP_50`` are on mmdet's 0-1 scale, and ``ap_per_10k_boxes`` is
``10000 * bbox_mAP / num_boxes`` on that scale, as in the paper's tables (e.g. 0.035 for
0.128 AP with 36.6k boxes).
"""
import csv
import io
import json
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from mmdet_isal.utils.fileio import atomic_write, atomic_write_json
from mmdet_isal.active.ledger import STAGES, PoolLedger

#: Diagnostics of the selection made after a step (active.diagnostics), in the summary row of
#: that step: what the strategy picked for the next step and how its scores relate to the
#: pseudo-box counts. None where unknown (the last step selects nothing; random counts no
#: pseudo boxes).
SELECTION_COLUMNS = ('picked_true_boxes', 'picked_no_true_box', 'picked_pseudo_boxes',
                     'pool_true_boxes', 'pool_pseudo_boxes', 'pool_no_pseudo_box',
                     'spearman_score_pseudo_boxes')
SUMMARY_COLUMNS = ('step', 'strategy', 'seed', 'num_images', 'num_boxes', 'bbox_mAP',
                   'bbox_mAP_50', 'ap_per_10k_boxes') + tuple(f'{s}_seconds' for s in STAGES) \
    + SELECTION_COLUMNS

Row = Dict[str, Any]


def strategy_name(strategy: Any) -> str:
    """The name of a strategy given as a name or a ``dict(type=...)``."""
    return strategy['type'] if isinstance(strategy, Mapping) else str(strategy)


def summary_rows(ledger: PoolLedger) -> List[Row]:
    """One row per evaluated step of ``ledger`` (columns :data:`SUMMARY_COLUMNS` + ``metrics``).

    Stage durations are in seconds; a stage that did not run (no selection after the last
    step) is ``None``.
    """
    rows = []
    for step, rec in sorted(ledger.steps.items()):
        if rec.get('metrics') is None:
            continue
        ids = ledger.labeled_ids(step)
        boxes = ledger.num_boxes(ids)
        ap = rec['bbox_mAP']
        row = OrderedDict(
            step=step, strategy=strategy_name(ledger.strategy), seed=ledger.seed,
            num_images=len(ids), num_boxes=boxes, bbox_mAP=ap, bbox_mAP_50=rec['bbox_mAP_50'],
            ap_per_10k_boxes=10000.0 * ap / boxes if boxes else None)
        for stage in STAGES:
            row[f'{stage}_seconds'] = rec['stages'].get(stage, {}).get('seconds')
        selection = rec.get('selection') or {}
        for key in SELECTION_COLUMNS:
            row[key] = selection.get(key)
        row['picked_class_histogram'] = selection.get('picked_class_histogram')
        row['metrics'] = rec['metrics']
        rows.append(row)
    return rows


def write_summary(ledger: PoolLedger, work_dir: str) -> List[Row]:
    """Write ``summary.csv``, ``summary.json`` and ``ap_vs_boxes.png`` into ``work_dir``."""
    rows = summary_rows(ledger)
    atomic_write_json(osp.join(work_dir, 'summary.json'), rows, indent=1)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction='ignore',
                            lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(osp.join(work_dir, 'summary.csv'), buf.getvalue())
    if rows:
        plot_ap_vs_boxes({rows[0]['strategy']: [rows]}, osp.join(work_dir, 'ap_vs_boxes.png'),
                         title=f'{rows[0]["strategy"]}, seed {rows[0]["seed"]}')
    return rows


def load_summary(run_dir: str) -> List[Row]:
    """Read ``run_dir/summary.json`` with a clear error when the run has none yet."""
    path = osp.join(run_dir, 'summary.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: {run_dir} is not an active-learning '
                                f'run directory, or no step of it has been evaluated yet')
    with open(path) as f:
        return json.load(f)


def group_runs(runs: Sequence[List[Row]]) -> Dict[str, List[List[Row]]]:
    """Group runs (lists of summary rows) by strategy, in order of first appearance."""
    groups: Dict[str, List[List[Row]]] = OrderedDict()
    for rows in runs:
        if rows:
            groups.setdefault(rows[0]['strategy'], []).append(rows)
    return groups


def mean_curve(runs: Sequence[List[Row]]) -> List[Row]:
    """Per step, mean and std over runs of boxes and AP (steps that every run reached)."""
    by_step = [{r['step']: r for r in rows} for rows in runs]
    steps = sorted(set.intersection(*(set(d) for d in by_step)))
    curve = []
    for step in steps:
        boxes = np.array([d[step]['num_boxes'] for d in by_step], dtype=float)
        ap = np.array([d[step]['bbox_mAP'] for d in by_step], dtype=float)
        curve.append(dict(step=step, runs=len(runs), boxes=boxes.mean(), boxes_std=boxes.std(),
                          ap=ap.mean(), ap_std=ap.std()))
    return curve


def boxes_to_reach(curve: Sequence[Row], target: float) -> Optional[float]:
    """Boxes at which a mean curve first reaches AP ``target`` (linear between steps)."""
    prev = None
    for point in curve:
        if point['ap'] >= target:
            if prev is None or point['ap'] == prev['ap']:
                return float(point['boxes'])
            t = (target - prev['ap']) / (point['ap'] - prev['ap'])
            return float(prev['boxes'] + t * (point['boxes'] - prev['boxes']))
        prev = point
    return None


def plot_ap_vs_boxes(groups: Mapping[str, Sequence[List[Row]]], out: str,
                     title: str = 'AP versus annotated boxes') -> None:
    """Plot mean AP against mean boxes per strategy, with a ±std band for several runs."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, runs in groups.items():
        curve = mean_curve(runs)
        x = np.array([p['boxes'] for p in curve])
        y = np.array([p['ap'] for p in curve])
        label = name if len(runs) == 1 else f'{name} (mean ± std of {len(runs)} runs)'
        line, = ax.plot(x, y, marker='o', label=label)
        if len(runs) > 1:
            std = np.array([p['ap_std'] for p in curve])
            ax.fill_between(x, y - std, y + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel('annotated boxes')
    ax.set_ylabel('bbox mAP')
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    atomic_write(out, buf.getvalue())


def comparison_table(groups: Mapping[str, Sequence[List[Row]]],
                     target_ap: Optional[float] = None) -> Tuple[str, Optional[float]]:
    """A text table of AP against boxes per strategy and step, and the boxes each strategy
    needs to reach a common AP.

    Args:
        groups: runs grouped by strategy (:func:`group_runs`).
        target_ap: the common AP; by default the highest mean AP that every strategy reaches.

    Returns:
        (the table, the common AP used).
    """
    curves = {name: mean_curve(runs) for name, runs in groups.items()}
    lines = [f'{"strategy":<12} {"runs":>4} {"step":>4} {"images":>7} {"boxes":>9} '
             f'{"bbox_mAP":>15} {"AP/10k boxes":>12}']
    for name, runs in groups.items():
        images = {}
        for rows in runs:
            for r in rows:
                images.setdefault(r['step'], []).append(r['num_images'])
        for p in curves[name]:
            ap = f'{p["ap"]:.4f}' + (f' ± {p["ap_std"]:.4f}' if p['runs'] > 1 else '')
            per10k = 1e4 * p['ap'] / p['boxes'] if p['boxes'] else float('nan')
            lines.append(f'{name:<12} {p["runs"]:>4} {p["step"]:>4} '
                         f'{np.mean(images[p["step"]]):>7.0f} {p["boxes"]:>9.0f} {ap:>15} '
                         f'{per10k:>12.4f}')
    if target_ap is None and curves and all(curves.values()):
        target_ap = min(max(p['ap'] for p in c) for c in curves.values())
    if target_ap is not None:
        lines.append('')
        lines.append(f'boxes needed to reach bbox_mAP {target_ap:.4f}:')
        needed = {name: boxes_to_reach(c, target_ap) for name, c in curves.items()}
        base = needed.get('random')
        for name, boxes in needed.items():
            if boxes is None:
                lines.append(f'  {name:<12} not reached')
                continue
            note = ''
            if base and name != 'random':
                fewer = base - boxes
                note = f'  ({abs(fewer):.0f} {"fewer" if fewer >= 0 else "more"} boxes than ' \
                       f'random, {100 * abs(fewer) / base:.1f}%)'
            lines.append(f'  {name:<12} {boxes:9.0f}{note}')
    return '\n'.join(lines), target_ap
