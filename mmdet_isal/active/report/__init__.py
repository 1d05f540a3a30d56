"""Reports of active-learning runs: one stack for a single run, a set of runs and an experiment.

* :mod:`.aggregate` (numbers, no files): per strategy and step, mean and std over seeds
  (:func:`aggregate`); what the selections picked, and their class mix against their pool's
  (:func:`aggregate_class_mix`); the one interpolation along a curve
  (:func:`reach`).
* :mod:`.compare` (numbers, no files): every strategy against random, seed by seed
  (:func:`compare_with_baseline`): savings at random's AP in annotation hours, boxes and
  images, the rule for seeds that never reach random's AP ("not reached", counted as a
  failure), the cost-ratio sensitivity table; :func:`report_data`, all of it together.
* :mod:`.render` (pictures): the one plot (:func:`plot_curves`: AP against annotation hours,
  boxes and images, mean ± std over seeds, one fixed colour per strategy, random's AP levels
  with each strategy's saving on them) and its title (:func:`protocol_title`).
* :mod:`.text`: the one text report (:func:`format_report`).
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
  0.128 AP with 36.6k boxes); boxes and images are counts; ``annotation_hours`` is the cost of
  the labeled set under the run's cost model (``active_learning.cost``:
  ``per_image x images + per_box x boxes`` seconds, / 3600).
"""
from mmdet_isal.active.report.aggregate import (BASELINE, EXPERIMENT_COLUMNS, MEASURES,
                                                SELECTION_COLUMNS, SUMMARY_COLUMNS, Results, Row,
                                                aggregate, aggregate_class_mix,
                                                aggregate_selections, ap_at_images,
                                                boxes_at_ap, boxes_needed, common_ap, mean_std,
                                                one_label_per_image, reach)
from mmdet_isal.active.report.compare import (COMPARISON_DEFINITIONS, SENSITIVITY_RATIOS,
                                              compare_with_baseline, reach_status, report_data,
                                              sensitivity, step_differences, summarise,
                                              summarise_per_seed)
from mmdet_isal.active.report.files import (group_runs, load_summary, run_results,
                                            strategy_name, summary_rows, write_experiment,
                                            write_summary)
from mmdet_isal.active.report.render import (model_description, plot_curves, protocol_title,
                                             strategy_colours)
from mmdet_isal.active.report.text import format_report, format_step_differences

__all__ = [
    'BASELINE', 'COMPARISON_DEFINITIONS', 'EXPERIMENT_COLUMNS', 'MEASURES', 'SELECTION_COLUMNS',
    'SUMMARY_COLUMNS', 'Results', 'Row', 'aggregate', 'aggregate_class_mix',
    'aggregate_selections', 'ap_at_images', 'boxes_at_ap', 'boxes_needed', 'common_ap',
    'compare_with_baseline', 'mean_std', 'one_label_per_image', 'reach',
    'report_data', 'summarise_per_seed', 'group_runs', 'load_summary', 'run_results',
    'strategy_name', 'SENSITIVITY_RATIOS', 'reach_status', 'sensitivity', 'summarise',
    'summary_rows', 'write_experiment', 'write_summary', 'format_report', 'plot_curves',
    'model_description', 'protocol_title', 'strategy_colours', 'step_differences',
    'format_step_differences'
]
