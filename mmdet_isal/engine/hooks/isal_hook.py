"""ISALHook: after training, score the unlabeled pool and write the selection."""
import os.path as osp
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook

from ...detection import ScorerOptions, check_isal_inputs, run_isal
from ...datasets.images import CHECK_DEPTHS
from ...influence.checks import check_choice, check_int


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

        scorer: the flat dict of :class:`mmdet_isal.detection.ScorerOptions` (the keys of
            ``active_learning.scorer``), parsed when the hook is built.
        seed: seed of scoring; default: the runner's seed.
        out_dir: where to write; default ``<work_dir>/isal``.
        check_images: how the images of the three sets are checked before training:
            ``'header'`` (headers and file ends), ``'decode'`` (every pixel, cached) or
            ``None`` (not at all); see :mod:`mmdet_isal.datasets.images`.

    In a distributed run (``tools/dist_train.sh``) every process scores its share of the pool
    and the main process writes the files (see :func:`mmdet_isal.detection.run_isal`).
    """
    priority = 'LOW'

    def __init__(self, unlabeled_ann_file: str, reference_ann_file: str, budget: int,
                 labeled_ann_file: Optional[str] = None, scorer: Optional[dict] = None,
                 seed: Optional[int] = None, out_dir: Optional[str] = None,
                 check_images: Optional[str] = 'header'):
        check_int(budget, 'budget', minimum=0, owner='ISALHook')
        if check_images is not None:
            check_choice(check_images, 'check_images', CHECK_DEPTHS, owner='ISALHook')
        self.check_images = check_images
        # parsed once, at build time: a bad option fails now, not after hours of training
        self.options = ScorerOptions.from_dict(scorer, where='ISALHook: scorer')
        self.unlabeled_ann_file = unlabeled_ann_file
        self.reference_ann_file = reference_ann_file
        self.labeled_ann_file = labeled_ann_file
        self.budget = budget
        self.seed = seed
        self.out_dir = out_dir
        self.paths = None

    def before_train(self, runner) -> None:
        # the annotation files are checked now, not after hours of training
        check_isal_inputs(runner.cfg, self.unlabeled_ann_file, self.reference_ann_file,
                          self.labeled_ann_file, owner='ISALHook',
                          check_images=self.check_images)

    def after_train(self, runner) -> None:
        # Every process scores its share of the pool (run_isal is collective in a distributed
        # run); the main process writes.
        seed = self.seed if self.seed is not None else (runner.seed or 0)
        result = run_isal(runner.model, runner.cfg, unlabeled_ann_file=self.unlabeled_ann_file,
                          reference_ann_file=self.reference_ann_file,
                          labeled_ann_file=self.labeled_ann_file, scorer=self.options,
                          seed=seed, budget=self.budget,
                          out=osp.join(self.out_dir or osp.join(runner.work_dir, 'isal'),
                                       'scores.json'))
        self.paths = result.paths
        diag = result.diagnostics
        solver = diag['solver']
        runner.logger.info(
            f'ISAL: scored {len(result.scores)} images on {diag["world_size"]} process(es) '
            f'({diag["num_without_pseudo_boxes"]} without pseudo boxes, '
            f'{diag["num_unranked"]} of them left unranked, {diag["num_nonfinite"]} '
            f'non-finite); {solver["type"]} lambda {solver["lambda_"]:.4g}; wrote '
            f'{self.paths["scores"]} and {self.paths["selection"]}')
