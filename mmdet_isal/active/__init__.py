"""Active learning: the pool ledger, annotation subsets and budgets, the loop and its trainers,
the checks before training, experiments over strategies and seeds, and their reports."""
from mmdet_isal.active.config import ActiveLearningConfig, Budget
from mmdet_isal.active.ledger import STAGES, PoolLedger
from mmdet_isal.active.loop import ActiveLearningLoop
from mmdet_isal.active.report import (format_report, group_runs, load_summary, plot_curves,
                                      report_data, summary_rows, write_experiment,
                                      write_summary)
from mmdet_isal.active.strategy_specs import StrategySpec, parse_strategy_spec, \
    parse_strategy_specs
from mmdet_isal.active.subsets import (CocoPool, Pool, VocPool, apply_budget, build_pool,
                                       pool_dataset_cfg, resolve_ann_file)
from mmdet_isal.active.trainer import MMEngineTrainer, StepJob, TrainedModel, Trainer

__all__ = [
    'ActiveLearningConfig', 'Budget', 'STAGES', 'PoolLedger', 'ActiveLearningLoop',
    'format_report', 'group_runs', 'load_summary', 'plot_curves', 'report_data', 'summary_rows',
    'write_experiment', 'write_summary', 'StrategySpec', 'parse_strategy_spec',
    'parse_strategy_specs', 'CocoPool', 'Pool', 'VocPool', 'apply_budget', 'build_pool',
    'pool_dataset_cfg', 'resolve_ann_file', 'MMEngineTrainer', 'StepJob', 'TrainedModel',
    'Trainer'
]
