"""ISALHook: after training, score the unlabeled pool and write the selection."""
import os.path as osp
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from ...detection import ScorerOptions, score_pool, write_isal_outputs


@HOOKS.register_module()
class ISALHook(Hook):
    """Score every unlabeled image by its influence once training ends.

    Add to any mmdet config::

        custom_imports = dict(imports=['mmdet_isal'], allow_failed_imports=False)
        custom_hooks = [dict(type='ISALHook', unlabeled_ann_file='annotations/unlabeled.json',
                             reference_ann_file='annotations/instances_val.json', budget=1000)]

    and train as usual (mmdet's ``tools/train.py``). The hook writes
    ``<work_dir>/isal/scores.json`` (for each image: influence, number of pseudo boxes, plus a
    summary with LiSSA's scale, λ and convergence trace) and ``<work_dir>/isal/selection.json``
    (the ``budget`` image ids with the most negative influence, most negative first).

    Args:
        unlabeled_ann_file: annotations of the pool to score (their boxes are never read),
            relative to the training data set's ``data_root`` or absolute.
        reference_ann_file: the reference set R (usually the validation set).
        budget: number of images to select (>= 0).
        labeled_ann_file: the labeled set L whose Hessian is used; default: the training data
            set's ``ann_file``.
        scorer: options of :class:`mmdet_isal.detection.ScorerOptions`.
        seed: seed of scoring; default: the runner's seed.
        out_dir: where to write; default ``<work_dir>/isal``.
    """
    priority = 'LOW'

    def __init__(self, unlabeled_ann_file: str, reference_ann_file: str, budget: int,
                 labeled_ann_file: Optional[str] = None, scorer: Optional[dict] = None,
                 seed: Optional[int] = None, out_dir: Optional[str] = None):
        if not isinstance(budget, int) or budget < 0:
            raise ValueError(f'ISALHook: budget must be a non-negative integer, got {budget!r}')
        ScorerOptions.from_dict(scorer)  # fail at build time, not after hours of training
        self.unlabeled_ann_file = unlabeled_ann_file
        self.reference_ann_file = reference_ann_file
        self.labeled_ann_file = labeled_ann_file
        self.budget = budget
        self.scorer = scorer
        self.seed = seed
        self.out_dir = out_dir
        self.paths = None

    def after_train(self, runner) -> None:
        # Scoring is not distributed yet: rank 0 scores and writes; other ranks wait nowhere
        # (no collective runs inside scoring).
        if not is_main_process():
            return
        cfg = runner.cfg
        labeled = self.labeled_ann_file or cfg.train_dataloader.dataset.get('ann_file')
        seed = self.seed if self.seed is not None else (runner.seed or 0)
        diagnostics = {}
        scores = score_pool(runner.model, cfg, unlabeled_ann_file=self.unlabeled_ann_file,
                            reference_ann_file=self.reference_ann_file,
                            labeled_ann_file=labeled, scorer=self.scorer, seed=seed,
                            diagnostics=diagnostics)
        out_dir = self.out_dir or osp.join(runner.work_dir, 'isal')
        self.paths = write_isal_outputs(osp.join(out_dir, 'scores.json'),
                                        osp.join(out_dir, 'selection.json'), scores, self.budget,
                                        diagnostics, seed=seed,
                                        rank_by=ScorerOptions.from_dict(self.scorer).rank_by)
        runner.logger.info(
            f'ISAL: scored {len(scores)} images ({diagnostics["num_without_pseudo_boxes"]} '
            f'without pseudo boxes, {diagnostics["num_unranked"]} of them left unranked, '
            f'{diagnostics["num_nonfinite"]} non-finite); LiSSA scale '
            f'{diagnostics["lissa"]["scale"]:.4g}, lambda {diagnostics["lissa"]["lambda_"]:.4g}; '
            f'wrote {self.paths["scores"]} and {self.paths["selection"]}')
