"""The files of a report: a run's ``summary.csv/json`` and ``ap_vs_boxes.png``; an experiment's
``experiment.csv/json/png`` and ``report.txt``. All written atomically."""
import csv
import io
import json
import os.path as osp
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence

from mmdet_isal.active.ledger import STAGES, PoolLedger
from mmdet_isal.active.report.aggregate import (BASELINE, CURVE_METRICS, SELECTION_COLUMNS,
                                                Results, Row, aggregate, curve_metrics,
                                                experiment_columns, summary_columns)
from mmdet_isal.active.report.compare import report_data
from mmdet_isal.active.report.render import dataset_name, plot_curves, protocol_title
from mmdet_isal.active.report.text import format_report
from mmdet_isal.active.task import task_named
from mmdet_isal.cost import CostModel
from mmdet_isal.utils.fileio import atomic_write, atomic_write_json


def strategy_name(strategy: Any) -> str:
    """The name of a strategy given as a name or a ``dict(type=...)``."""
    return strategy['type'] if isinstance(strategy, Mapping) else str(strategy)


def summary_rows(ledger: PoolLedger) -> List[Row]:
    """One row per evaluated step of ``ledger`` (columns :func:`~.aggregate.summary_columns` +
    ``metrics``): the curve metrics of its task (``bbox_mAP``, ``bbox_mAP_50`` and
    ``ap_per_10k_boxes`` for detection; ``accuracy``, ``mean_class_accuracy`` for
    classification: the pair of :data:`~.aggregate.CURVE_METRICS` its step records hold).

    Stage durations are in seconds; a stage that did not run (no selection after the last
    step) is ``None``. ``annotation_hours`` is the cost of the step's labeled set under the
    cost model the ledger records (``per_image x images + per_box x boxes`` seconds / 3600;
    ``None`` for a run recorded before the cost model).
    """
    cost = ledger_cost(ledger)
    rows = []
    for step, rec in sorted(ledger.steps.items()):
        if rec.get('metrics') is None:
            continue
        ids = ledger.labeled_ids(step)
        boxes = ledger.num_boxes(ids)
        primary, secondary = next((pair for pair in CURVE_METRICS if pair[0] in rec),
                                  CURVE_METRICS[0])
        ap = rec[primary]
        row = OrderedDict(
            step=step, strategy=strategy_name(ledger.strategy), seed=ledger.seed,
            num_images=len(ids), num_boxes=boxes,
            annotation_hours=None if cost is None else cost.total_seconds(len(ids),
                                                                         boxes) / 3600.0)
        row[primary], row[secondary] = ap, rec[secondary]
        if primary == 'bbox_mAP':
            row['ap_per_10k_boxes'] = 10000.0 * ap / boxes if boxes else None
        for stage in STAGES:
            row[f'{stage}_seconds'] = rec['stages'].get(stage, {}).get('seconds')
        selection = rec.get('selection') or {}
        for key in SELECTION_COLUMNS:
            row[key] = selection.get(key)
        row['picked_class_histogram'] = selection.get('picked_class_histogram')
        row['pool_class_histogram'] = selection.get('pool_class_histogram')
        row['metrics'] = rec['metrics']
        rows.append(row)
    return rows


def ledger_cost(ledger: PoolLedger) -> Optional[CostModel]:
    """The resolved cost model a ledger records (``meta['active_learning']['cost']``), or
    ``None`` for a run recorded before the cost model."""
    cost = (ledger.meta.get('active_learning') or {}).get('cost')
    if not cost or cost.get('per_image') is None:
        return None
    return CostModel.from_dict(cost)


def run_title(meta: Mapping[str, Any]) -> str:
    """A plot title naming the data set, the model and the protocol of a run, from its
    ledger's meta (:func:`~mmdet_isal.active.report.render.protocol_title`)."""
    return protocol_title(dataset_name((meta.get('pool') or {}).get('ann_file')),
                          meta.get('model'), meta.get('active_learning') or {},
                          labels_are_boxes=task_named(meta.get('task')).labels_are_boxes)


def run_results(rows: Sequence[Row]) -> Dict[str, Dict[int, List[Row]]]:
    """One run's summary rows as results (``{strategy: {seed: rows}}``); empty without rows."""
    return {rows[0]['strategy']: {rows[0]['seed']: list(rows)}} if rows else {}


def write_summary(ledger: PoolLedger, work_dir: str, plot: bool = True) -> List[Row]:
    """Write ``summary.csv``, ``summary.json`` and with ``plot`` ``ap_vs_boxes.png`` (the
    report's plot of this one run) into ``work_dir``; returns the rows."""
    rows = summary_rows(ledger)
    atomic_write_json(osp.join(work_dir, 'summary.json'), rows, indent=1)
    _write_csv(osp.join(work_dir, 'summary.csv'), summary_columns(curve_metrics(rows)), rows,
               extrasaction='ignore')
    if rows and plot:
        plot_curves(aggregate(run_results(rows)), osp.join(work_dir, 'ap_vs_boxes.png'),
                    title=f'{rows[0]["strategy"]}, seed {rows[0]["seed"]}: '
                          f'{run_title(ledger.meta)}')
    return rows


def load_summary(run_dir: str) -> List[Row]:
    """Read ``run_dir/summary.json`` with a clear error when the run has none yet."""
    path = osp.join(run_dir, 'summary.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist: {run_dir} is not an active-learning '
                                f'run directory, or no step of it has been evaluated yet')
    with open(path) as f:
        return json.load(f)


def group_runs(runs: Sequence[List[Row]],
               sources: Optional[Sequence[str]] = None) -> Dict[str, Dict[int, List[Row]]]:
    """Runs (lists of summary rows) as results ``{strategy: {seed: rows}}``, strategies in
    order of first appearance; runs without rows are left out.

    Args:
        runs: summary rows per run.
        sources: where each run comes from (its directory), for messages.

    Raises:
        ValueError: two runs have the same strategy and seed (they would be averaged as one
            seed); naming both.
    """
    groups: Dict[str, Dict[int, List[Row]]] = OrderedDict()
    where: Dict[Any, str] = {}
    for k, rows in enumerate(runs):
        if not rows:
            continue
        key = (rows[0]['strategy'], rows[0]['seed'])
        source = sources[k] if sources else f'run {k + 1}'
        if key in where:
            raise ValueError(f'{where[key]} and {source} are both runs of strategy {key[0]!r} '
                             f'with seed {key[1]}; a report averages over seeds, each strategy '
                             f'and seed once: leave one of them out')
        where[key] = source
        groups.setdefault(key[0], {})[key[1]] = list(rows)
    return groups


def write_experiment(work_dir: str, results: Results, header: Optional[Mapping] = None,
                     baseline: str = BASELINE, title: Optional[str] = None) -> Dict[str, Any]:
    """Write ``experiment.csv``, ``experiment.json``, ``experiment.png`` and ``report.txt``
    (:func:`~mmdet_isal.active.report.text.format_report` of the json's content) into
    ``work_dir``.

    Args:
        results: ``{label: {seed: summary rows}}``.
        header: extra facts for the top of ``experiment.json`` (config, seeds, runs, ...).
        baseline: the label the others are compared with; without it there are no comparisons.
        title: the plot's title (e.g. :func:`~mmdet_isal.active.report.render.protocol_title`
            of the experiment's data set, model and protocol).

    Returns:
        the content of ``experiment.json``
        (:func:`~mmdet_isal.active.report.aggregate.report_data`).
    """
    data = report_data(results, header, baseline)
    atomic_write_json(osp.join(work_dir, 'experiment.json'), data, indent=1)
    _write_csv(osp.join(work_dir, 'experiment.csv'), experiment_columns(curve_metrics(data['rows'])),
               data['rows'])
    plot_curves(data['rows'], osp.join(work_dir, 'experiment.png'), title=title,
                savings=(data['comparisons'] or {}).get('savings'))
    atomic_write(osp.join(work_dir, 'report.txt'), format_report(data) + '\n')
    return data


def _write_csv(path: str, columns: Sequence[str], rows: Sequence[Row], **options) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator='\n', **options)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())
