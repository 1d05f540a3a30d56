"""Reports of active-learning runs: one stack for a single run, a set of runs and an experiment.

* :mod:`.aggregate` (numbers, no files): per strategy and step, mean and std over seeds
  (:func:`aggregate`); what the selections picked; every strategy against random, seed by
  seed (:func:`compare_with_baseline`); the one interpolation along a curve (:func:`reach`).
* :mod:`.render` (pictures and text): the one plot (:func:`plot_curves`: AP against boxes and
  against images, mean ± std over seeds) and the one text report (:func:`format_report`).
* :mod:`.files`: a run's summary rows and files (``summary.csv/json``, ``ap_vs_boxes.png``),
  and an experiment's (``experiment.csv/json/png``, ``report.txt``).

A single run is the same thing as an experiment with one strategy and one seed: the loop's
``ap_vs_boxes.png`` is :func:`plot_curves` of that one run, ``tools/plot_runs.py`` groups run
directories by strategy and seed, and ``tools/al_experiment.py`` runs them first.

Conventions, the same everywhere:

* **Standard deviations** are sample standard deviations over seeds (``ddof=1``), and
  ``None`` (empty in a csv, left out of a table, no band in a plot) with fewer than two seeds
  (:func:`mean_std`).
* **Units**: ``bbox_mAP`` and ``bbox_mAP_50`` are on mmdet's 0-1 scale; ``ap_per_10k_boxes`` is
  ``10000 * bbox_mAP / num_boxes`` on that scale, as in the paper's tables (e.g. 0.035 for
  0.128 AP with 36.6k boxes); boxes and images are counts.
"""
from mmdet_isal.active.report.aggregate import (BASELINE, COMPARISON_DEFINITIONS,
                                                EXPERIMENT_COLUMNS, MEASURES, SELECTION_COLUMNS,
                                                SUMMARY_COLUMNS, Results, Row, aggregate,
                                                aggregate_selections, ap_at_images,
                                                boxes_at_ap, boxes_needed, common_ap,
                                                compare_with_baseline, mean_std, reach,
                                                report_data, summarise_per_seed)
from mmdet_isal.active.report.files import (group_runs, load_summary, run_results,
                                            strategy_name, summary_rows, write_experiment,
                                            write_summary)
from mmdet_isal.active.report.render import format_report, plot_curves

__all__ = [
    'BASELINE', 'COMPARISON_DEFINITIONS', 'EXPERIMENT_COLUMNS', 'MEASURES', 'SELECTION_COLUMNS',
    'SUMMARY_COLUMNS', 'Results', 'Row', 'aggregate', 'aggregate_selections', 'ap_at_images',
    'boxes_at_ap', 'boxes_needed', 'common_ap', 'compare_with_baseline', 'mean_std', 'reach',
    'report_data', 'summarise_per_seed', 'group_runs', 'load_summary', 'run_results',
    'strategy_name',
    'summary_rows', 'write_experiment', 'write_summary', 'format_report', 'plot_curves'
]
