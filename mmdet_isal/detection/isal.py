"""ISAL's one way in, :func:`run_isal` (score, rank, write), and the checks of its inputs."""
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Union

from mmengine.dist import is_main_process

from ..cost import CostModel
from ..influence.checks import check_int
from .data import base_dataset_cfg, check_ann_file, image_dir, scoring_ann_path
from .options import ScorerOptions
from .ranking import NONFINITE, rank_by_influence, status_of, write_isal_outputs
from .scoring import score_pool


@dataclass
class ISALResult:
    """What :func:`run_isal` returns, the same on every process.

    Attributes:
        scores: :func:`score_pool`'s ``{image_id: {'influence', 'num_pseudo_boxes',
            'status'}}``, in pool order.
        order: every image id, preferred first (:func:`rank_by_influence`).
        selected: the first ``budget`` ids of ``order`` that have a finite influence or are
            unranked (all of them when no budget was given).
        diagnostics: :func:`score_pool`'s diagnostics.
        paths: ``{'scores': ..., 'selection': ...}`` written, or None (no ``out_dir``).
    """
    scores: Dict[object, dict]
    order: List[object]
    selected: List[object]
    diagnostics: dict
    paths: Optional[Dict[str, str]] = None


def default_ann_files(cfg) -> Dict[str, str]:
    """The annotation files ISAL uses when none is given: ``labeled``, the training data set's
    ``ann_file``, and ``reference``, the validation data set's (through dataset wrappers)."""
    return dict(
        labeled=base_dataset_cfg(cfg.train_dataloader, 'train_dataloader.dataset')['ann_file'],
        reference=base_dataset_cfg(cfg.val_dataloader, 'val_dataloader.dataset')['ann_file'])


def check_isal_inputs(cfg, unlabeled_ann_file: str, reference_ann_file: Optional[str] = None,
                      labeled_ann_file: Optional[str] = None, owner: str = 'ISAL',
                      check_images: Optional[str] = 'header') -> None:
    """Check the annotation files :func:`run_isal` will read (defaults as it fills them in):
    each exists and, for COCO files, is usable, images included at depth ``check_images``
    (``'header'``, ``'decode'`` or ``None``: :func:`~.data.check_ann_file`). For the entry
    points that take the user's files (the hook before training, ``tools/score.py``); the loop
    checks its pool when it starts and writes the subsets itself.

    Raises:
        FileNotFoundError: naming ``owner``, the argument and the path.
        AnnotationError: the file cannot be used.
    """
    defaults = default_ann_files(cfg)
    classes = (base_dataset_cfg(cfg.train_dataloader, 'train_dataloader.dataset').get('metainfo')
               or {}).get('classes')
    for what, ann_file in (('unlabeled_ann_file', unlabeled_ann_file),
                           ('reference_ann_file', reference_ann_file or defaults['reference']),
                           ('labeled_ann_file', labeled_ann_file or defaults['labeled'])):
        path = scoring_ann_path(cfg, ann_file)
        if not osp.isfile(path):
            raise FileNotFoundError(f'{owner}: {what} {path} does not exist')
        check_ann_file(path, classes, image_dir(cfg, ann_file), check_images)


def run_isal(model, cfg, *, unlabeled_ann_file: str, reference_ann_file: Optional[str] = None,
             labeled_ann_file: Optional[str] = None,
             scorer: Union[None, Mapping, ScorerOptions] = None, seed: int = 0,
             budget: Optional[int] = None, out: Optional[str] = None,
             cost: Optional[CostModel] = None) -> ISALResult:
    """Score the pool with ISAL, rank it and (with ``out``) write the scores and selection.

    The one way into ISAL scoring: the ISALHook, :func:`mmdet_isal.apis.score_from_config`
    (``tools/score.py``) and the loop's ISAL strategy all call it. In a distributed run every
    process calls it with the same arguments (see :mod:`.scoring`); the result is the same on
    every process and only the main process writes.

    Args:
        model: the trained detector (a DDP or other mmengine wrapper is unwrapped).
        cfg: the config the model was trained with.
        unlabeled_ann_file: annotations of the pool (their boxes are never read); relative
            paths are relative to the training data set's ``data_root``.
        reference_ann_file: the reference set R; default: the validation data set's.
        labeled_ann_file: the labeled set whose Hessian is used; default: the training data
            set's.
        scorer: :class:`ScorerOptions`, or the flat dict of them (parsed here, once).
        seed: seeds the Hessian subset, LiSSA, the samplers and the order of unranked images.
        budget: how many images ``selected`` (and selection.json) holds; None: all.
        out: if given, the scores JSON to write; ``selection.json`` is written beside it
            (:func:`write_isal_outputs`).
        cost: the annotation cost model for ``rank_by='influence_per_cost'`` (the loop's
            ``active_learning.cost``); ``None``: the defaults
            (:class:`~mmdet_isal.cost.CostModel`, 1 s per class of the data set per image, 7 s
            per box). Recorded in the diagnostics (``cost``) when it ranks.
    """
    check_int(budget, 'budget (images)', minimum=0, none_ok=True)
    opts = ScorerOptions.from_dict(scorer)
    defaults = default_ann_files(cfg)
    diagnostics: dict = {}
    scores = score_pool(model, cfg, unlabeled_ann_file=unlabeled_ann_file,
                        reference_ann_file=reference_ann_file or defaults['reference'],
                        labeled_ann_file=labeled_ann_file or defaults['labeled'],
                        scorer=opts, seed=seed, diagnostics=diagnostics)
    rank_by = opts.scoring.rank_by
    if rank_by == 'influence_per_cost':
        cost = (cost or CostModel()).resolved(diagnostics['num_classes'])
        diagnostics['cost'] = cost.to_dict()
    order = rank_by_influence(scores, seed, rank_by, cost)
    selectable = [i for i in order if status_of(scores[i]) != NONFINITE]
    selected = selectable if budget is None else selectable[:budget]
    paths = None
    if out is not None:
        out = osp.abspath(out)
        paths = dict(scores=out, selection=osp.join(osp.dirname(out), 'selection.json'))
        if is_main_process():
            write_isal_outputs(paths['scores'], paths['selection'], scores, budget, diagnostics,
                               seed=seed, rank_by=rank_by, cost=cost)
    return ISALResult(scores=scores, order=order, selected=selected, diagnostics=diagnostics,
                      paths=paths)
