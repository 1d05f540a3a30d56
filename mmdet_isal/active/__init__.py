"""Active learning: the pool ledger, annotation subsets and budgets, the loop, its reports."""
from mmdet_isal.active.config import ActiveLearningConfig, Budget
from mmdet_isal.active.ledger import STAGES, PoolLedger
from mmdet_isal.active.loop import ActiveLearningLoop
from mmdet_isal.active.report import (comparison_table, group_runs, load_summary,
                                      plot_ap_vs_boxes, summary_rows, write_summary)
from mmdet_isal.active.subsets import (CocoPool, Pool, VocPool, apply_budget, build_pool,
                                       pool_dataset_cfg, resolve_ann_file)

__all__ = [
    'ActiveLearningConfig', 'Budget', 'STAGES', 'PoolLedger', 'ActiveLearningLoop',
    'comparison_table', 'group_runs', 'load_summary', 'plot_ap_vs_boxes', 'summary_rows',
    'write_summary', 'CocoPool', 'Pool', 'VocPool', 'apply_budget', 'build_pool',
    'pool_dataset_cfg', 'resolve_ann_file'
]
