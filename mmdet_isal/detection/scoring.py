"""ISAL on an mmdet detector: score every unlabeled image by its influence on the reference loss.

``I(z) = − s_test · ∇θ l(z)`` with ``s_test = (H + λI)⁻¹ ∇θ l(R)`` (see ``ISAL.md``):

1. ``∇θ l(R)``: gradient of the mean per-image loss over the reference set (ground truth);
2. ``s_test``: LiSSA over at most ``hessian_images`` labeled images (ground truth);
3. for each unlabeled image, one backbone and head forward gives its detections, the detections
   above ``score_thr`` become its targets, and the same forward gives its loss, whose
   directional derivative along ``s_test`` is the influence (batched, double backward).

Negative influence: labeling the image is predicted to lower the reference loss. ISAL picks the
most negative first.

:func:`run_isal` is the one way in: the ISALHook, ``mmdet_isal.apis``, the ISAL strategy of the
loop and ``tools/score.py`` all call it. In a distributed run (a process group initialised,
:mod:`mmdet_isal.utils.dist`) every process calls it: the reference set and the pool are
sharded, the reference gradient is summed over the processes, LiSSA's repeats are spread over
them (CG's and the exact solver's Hessian-vector products are summed instead), the scores are
gathered in pool order, and only the main process writes files.
"""
import math
import os.path as osp
import time
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import (all_gather_object, all_reduce, get_rank, get_world_size,
                           is_main_process)
from mmengine.model import is_model_wrapper

from ..influence import ConjugateGradient, ExactInverse, InfluenceScorer, LiSSA
from ..utils.dist import shard
from ..utils.console import Progress
from ..utils.fileio import atomic_write_json
from .data import (BatchSequence, base_dataset_cfg, build_scoring_dataset, check_ann_file,
                   scoring_ann_path)
from .feature_cache import FeatureCache
from .per_image import measure_normalizer, per_image_losses
from .presets import parameter_preset
from .pseudo_labels import PseudoLabeler
from .specs import detector_spec as detector_adapter  # the spec is the adapter


@dataclass
class ScorerOptions:
    """Options of ISAL scoring (``active_learning.scorer`` / the hook's ``scorer``).

    Args:
        params: parameter names or regular expressions taking part; ``None`` uses
            :func:`parameter_preset` (the final classification/regression layers).
        score_thr: pseudo-label detection threshold in [0, 1) (paper: 0.1).
        hessian_images: at most this many labeled images, drawn with the seed, form H (paper:
            500).
        solver: the inverse-HVP solver. ``'lissa'`` (the paper's; stochastic, its repeats are
            spread over the processes of a distributed run), ``'cg'`` (conjugate gradient on the
            mean Hessian of all Hessian images, at most ``depth`` iterations, default 100;
            deterministic) or ``'exact'`` (the Hessian built column by column and solved; only
            for a few thousand parameters, e.g. tests and small heads).
        damping: LiSSA: the solve estimates ``(H + damping·scale·I)⁻¹ v``; CG and exact: λ
            itself, ``(H + damping·I)⁻¹ v``.
        scale: LiSSA scale, a number > 0 or ``'auto'`` (power iteration on H).
        hessian_batch_size: images per LiSSA iteration (each ``H_j`` is the Hessian of one such
            batch). The paper uses single images; single-image Hessians vary so much that the
            automatic scale made LiSSA diverge on the demo, so the default is 8.
        depth: LiSSA iterations per repeat; ``None`` = one pass over the Hessian images (the
            paper's k sampled images). With ``solver='cg'``: the most CG iterations.
        repeats: LiSSA repeats averaged (paper: 4).
        power_iters: power iterations for ``scale='auto'``.
        power_batches: Hessian batches the power iteration of ``scale='auto'`` runs on.
        batch_size: images per batch of the reference and pool passes (scores do not depend
            on it).
        include_bias: with the preset, also take the layers' biases.
        no_pseudo_boxes: what to do with a pool image without any detection above
            ``score_thr``. ``'last'`` (the paper's code): it is not ranked by influence; such
            images come after every scored image, in an order drawn from the seed, and fill a
            budget only when too few images were scored. ``'score'``: score it by its
            background loss like any other image (its targets are empty).
        loss_normalizer: how each image's loss is normalised (mmdet's ``avg_factor``).
            ``'labeled_mean'``: one normaliser for every image, the labeled set's mean per image
            (dense heads: mean positives per image; RPN and RoI heads: mean sampled anchors
            and RoIs), measured on the Hessian images; an image's loss is then its share of the
            training objective. ``'per_image'`` (default): each image by its own, as mmdet
            would for a batch of one (an image with few positives is divided by few). Chosen by
            the experiment of the README: on the synthetic set, 'per_image' reached random's AP
            with 16 % fewer boxes, 'labeled_mean' picked box-dense images (at least random's AP
            per image, 17 % more boxes for it).
        feature_cache_mb: keep the outputs of the layers before the selected ones (backbone,
            neck, frozen head layers) of up to this many MiB of Hessian images across LiSSA's
            iterations (:class:`FeatureCache`; scores do not change; 0 recomputes them at
            every iteration).
        rank_by: ``'influence'`` (the paper): most negative influence first.
            ``'influence_per_box'``: most negative influence per pseudo box first, a greedy
            value-for-cost order for box budgets (annotation cost is boxes, and the pseudo
            boxes estimate an image's boxes before it is labeled).
    """
    params: Optional[Sequence[str]] = None
    score_thr: float = 0.1
    hessian_images: int = 500
    solver: str = 'lissa'
    damping: float = 0.01
    scale: Union[float, str] = 'auto'
    hessian_batch_size: int = 8
    depth: Optional[int] = None
    repeats: int = 4
    power_iters: int = 10
    power_batches: int = 20
    batch_size: int = 4
    include_bias: bool = False
    no_pseudo_boxes: str = 'last'
    loss_normalizer: str = 'per_image'
    rank_by: str = 'influence'
    feature_cache_mb: int = 1024

    SOLVERS = ('lissa', 'cg', 'exact')
    NO_PSEUDO_BOXES = ('last', 'score')
    LOSS_NORMALIZERS = ('labeled_mean', 'per_image')
    RANK_BY = ('influence', 'influence_per_box')

    @classmethod
    def from_dict(cls, options: Optional[dict]) -> 'ScorerOptions':
        """Build from a config dict; unknown keys and bad values are errors naming them."""
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f'unknown ISAL scorer option(s) {unknown}; known: {sorted(known)}')
        opts = cls(**options)
        for name in ('hessian_images', 'hessian_batch_size', 'repeats', 'power_iters',
                     'power_batches', 'batch_size'):
            value = getattr(opts, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'scorer option {name} must be an integer >= 1, got {value!r}')
        if isinstance(opts.feature_cache_mb, bool) or not isinstance(
                opts.feature_cache_mb, int) or opts.feature_cache_mb < 0:
            raise ValueError(f'scorer option feature_cache_mb must be an integer >= 0, got '
                             f'{opts.feature_cache_mb!r}')
        if opts.depth is not None and (not isinstance(opts.depth, int) or opts.depth < 1):
            raise ValueError(f'scorer option depth must be None or an integer >= 1, '
                             f'got {opts.depth!r}')
        if opts.params is not None and (isinstance(opts.params, str) or not opts.params):
            raise ValueError(f'scorer option params must be a non-empty list of names or '
                             f'patterns, got {opts.params!r}')
        PseudoLabeler(opts.score_thr)  # validates score_thr
        for name, allowed in (('solver', cls.SOLVERS),
                              ('no_pseudo_boxes', cls.NO_PSEUDO_BOXES),
                              ('loss_normalizer', cls.LOSS_NORMALIZERS),
                              ('rank_by', cls.RANK_BY)):
            if getattr(opts, name) not in allowed:
                raise ValueError(f'scorer option {name} must be one of {allowed}, got '
                                 f'{getattr(opts, name)!r}')
        try:  # damping, scale and the solver's other numbers, checked by the solver itself
            build_solver(opts, seed=0, num_batches=1)
        except ValueError as e:
            raise ValueError(f'scorer option: {e}') from None
        return opts


#: ``status`` of an image in ``score_pool``'s output.
SCORED, UNRANKED, NONFINITE = 'scored', 'unranked', 'nonfinite'
# the numpy stream (with the seed) that orders unranked images, apart from other random draws
_UNRANKED_STREAM = 2


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def build_solver(opts: 'ScorerOptions', seed: int, num_batches: int, rank: int = 0,
                 world_size: int = 1, all_reduce=None):
    """The inverse-HVP solver of ``opts`` for ``num_batches`` Hessian batches.

    LiSSA on several processes runs repeats ``rank, rank + world_size, ...`` here and sums the
    estimates with ``all_reduce`` (the paper: 4 repeats on 4 GPUs); its result does not depend
    on the world size, since each repeat depends on ``(seed, repeat)`` only.
    """
    if opts.solver == 'cg':
        return ConjugateGradient(damping=opts.damping, max_iter=opts.depth or 100)
    if opts.solver == 'exact':
        return ExactInverse(damping=opts.damping)
    distributed = all_reduce is not None and world_size > 1
    return LiSSA(damping=opts.damping, scale=opts.scale, depth=opts.depth or num_batches,
                 repeats=opts.repeats, seed=seed, power_iters=opts.power_iters,
                 power_batches=min(opts.power_batches, num_batches),
                 repeat_ids=range(rank, opts.repeats, world_size) if distributed else None,
                 all_reduce=all_reduce if distributed else None)


def _expected_hvps(solver, num_batches: int, opts: 'ScorerOptions') -> int:
    """H·v batches the progress line expects (an upper bound for CG)."""
    if isinstance(solver, LiSSA):
        return len(solver.repeat_ids) * solver.depth + (
            solver.power_iters * solver.power_batches if opts.scale == 'auto' else 0)
    if isinstance(solver, ConjugateGradient):
        return solver.max_iter * num_batches
    return num_batches  # one pass per parameter; the count is not known before


def _solver_diagnostics(solver) -> dict:
    """What the solver did, gathered from every process (LiSSA's traces in repeat order)."""
    out = dict(type=type(solver).__name__, lambda_=solver.lambda_)
    if isinstance(solver, LiSSA):
        traces = all_gather_object(list(zip(solver.repeat_ids, solver.trace_)))
        out.update(scale=solver.scale_, top_eigenvalue=solver.top_eigenvalue_,
                   scale_retries=solver.scale_retries_,
                   trace=[t for _, t in sorted(p for part in traces for p in part)])
    return out


def pool_influences(model, params: Dict[str, torch.nn.Parameter], batches, s_test, *,
                     score_thr: float, seed: int = 0, normalizer=None
                     ) -> Tuple[torch.Tensor, List[dict], str]:
    """ISAL's single pass over pool batches: ``(influences, records, score mode)``.

    For every image, one backbone and head forward gives its detections; those above
    ``score_thr`` become its targets, the same features give its loss, and
    ``− ∇θ l · s_test`` comes from the selected layers' outputs (``InfluenceScorer``'s
    ``'layerwise'`` mode; ``'backward'``, the double backward, where it does not apply).
    ``records`` holds ``img_id`` and ``num_targets`` per image, in order.
    """
    records: List[dict] = []
    loss = partial(per_image_losses, pseudo_label_fn=PseudoLabeler(score_thr), seed=seed,
                   records=records, normalizer=normalizer)
    scorer = InfluenceScorer(model, params, loss, ExactInverse())
    influence = scorer.score(batches, s_test)
    mode = scorer.score_mode_ or 'none'
    if scorer.score_mode_reason_:
        mode += f' ({scorer.score_mode_reason_})'
    return influence, records, mode


def score_pool(model, cfg, *, unlabeled_ann_file: str, reference_ann_file: str,
               labeled_ann_file: str, scorer: Optional[dict] = None, seed: int = 0,
               diagnostics: Optional[dict] = None) -> Dict[object, dict]:
    """Influence of every unlabeled image of ``unlabeled_ann_file`` on the reference loss.

    Args:
        model: the trained mmdet detector (a DDP wrapper is unwrapped). It is put in eval mode
            for scoring and its mode, ``requires_grad`` flags and ``.grad`` are restored.
        cfg: the mmengine ``Config`` the model was trained with: its training data set
            definition and its test pipeline are reused for the three sets.
        unlabeled_ann_file, reference_ann_file, labeled_ann_file: annotation files (COCO json
            or VOC ImageSets lists) of the pool to score, of the reference set R and of the
            labeled set L.
        scorer: :class:`ScorerOptions` as a dict.
        seed: seeds the Hessian subset, LiSSA's batch order and every RoI/anchor sampler.
        diagnostics: if a dict is given, it is filled with what a user needs to judge the run:
            the parameters, LiSSA's scale, λ and convergence trace, timings, counts.

    Returns:
        ``{image_id: {'influence': float or None, 'num_pseudo_boxes': int}}`` for every image,
        in data set order. ``influence`` is None where it was not finite (counted in
        ``diagnostics['num_nonfinite']``; such images are never selected).
    """
    opts = ScorerOptions.from_dict(scorer)
    model = _unwrap(model)
    rank, world = get_rank(), get_world_size()
    reduce_sum = all_reduce if world > 1 else None  # mmengine's: in place, op 'sum'
    was_training = model.training
    model.eval()
    timings = {}
    try:
        start = time.perf_counter()
        bs = opts.batch_size
        reference_ds = build_scoring_dataset(cfg, reference_ann_file, True)
        labeled_ds = build_scoring_dataset(cfg, labeled_ann_file, True)
        pool_ds = build_scoring_dataset(cfg, unlabeled_ann_file, False)
        if len(labeled_ds) == 0 or len(reference_ds) == 0:
            raise ValueError(f'ISAL needs labeled and reference images: {labeled_ann_file} has '
                             f'{len(labeled_ds)}, {reference_ann_file} has '
                             f'{len(reference_ds)}')
        # every process reads its own contiguous share of R and of the pool
        reference = BatchSequence(reference_ds, bs, shard(range(len(reference_ds))),
                                  title='ISAL: reference gradient')
        pool = BatchSequence(pool_ds, bs, shard(range(len(pool_ds))),
                             title='ISAL: scoring the unlabeled pool')
        rng = np.random.default_rng(seed)
        subset = sorted(rng.choice(len(labeled_ds), min(opts.hessian_images, len(labeled_ds)),
                                   replace=False).tolist())
        hessian = BatchSequence(labeled_ds, opts.hessian_batch_size, subset)
        names = list(opts.params) if opts.params else parameter_preset(model, opts.include_bias)
        solver = build_solver(opts, seed, len(hessian), rank, world, reduce_sum)
        if not solver.distributed:
            # CG and the exact solver: each process forms its share of every H·v product
            hessian = BatchSequence(labeled_ds, opts.hessian_batch_size, shard(subset))
        timings['build'] = time.perf_counter() - start
        start = time.perf_counter()
        # one loss function for R, H and the pool: the same normaliser everywhere (measured on
        # all Hessian images by every process, so that it is the same everywhere)
        normalizer = (measure_normalizer(model, BatchSequence(labeled_ds,
                                                              opts.hessian_batch_size, subset),
                                         seed=seed)
                      if opts.loss_normalizer == 'labeled_mean' else None)
        timings['normalizer'] = time.perf_counter() - start
        gt_scorer = InfluenceScorer(model, names, partial(per_image_losses, seed=seed,
                                                          normalizer=normalizer), solver,
                                    all_reduce=reduce_sum)

        start = time.perf_counter()
        v = gt_scorer.reference_gradient(reference, reduction='mean')
        timings['reference_gradient'] = time.perf_counter() - start
        start = time.perf_counter()
        hessian.progress = Progress(f'ISAL: {opts.solver} on {len(subset)} labeled images',
                                    _expected_hvps(solver, len(hessian), opts),
                                    unit='H·v batches')
        # the Hessian batches come back every iteration: their backbone features are kept
        cache = FeatureCache(opts.feature_cache_mb * 2**20)
        hessian_scorer = InfluenceScorer(
            model, dict(zip(gt_scorer.param_names, gt_scorer.params)),
            partial(per_image_losses, seed=seed, normalizer=normalizer, feature_cache=cache),
            solver, all_reduce=reduce_sum)
        s_test = hessian_scorer.inverse_hvp(v, hessian)
        hessian.progress.close()
        timings['s_test'] = time.perf_counter() - start

        start = time.perf_counter()
        influence, records, score_mode = pool_influences(
            model, dict(zip(gt_scorer.param_names, gt_scorer.params)), pool, s_test,
            score_thr=opts.score_thr, seed=seed, normalizer=normalizer)
        influence = influence.tolist()
        # the shards are contiguous and in rank order: concatenated, they are the pool's order
        parts = all_gather_object(([(r['img_id'], r['num_targets']) for r in records],
                                         influence))
        records = [dict(img_id=i, num_targets=n) for part, _ in parts for i, n in part]
        influence = [x for _, values in parts for x in values]
        timings['score'] = time.perf_counter() - start
    finally:
        model.train(was_training)

    scores = {}
    for record, value in zip(records, influence):
        if opts.no_pseudo_boxes == 'last' and record['num_targets'] == 0:
            status = UNRANKED
        else:
            status = SCORED if math.isfinite(value) else NONFINITE
        scores[record['img_id']] = dict(
            influence=value if status == SCORED else None,
            num_pseudo_boxes=record['num_targets'], status=status)
    if diagnostics is not None:
        diagnostics.update(
            params=gt_scorer.param_names,
            num_params=gt_scorer.num_parameters,
            options=asdict(opts),
            seed=seed,
            num_reference_images=reference.num_images(),
            num_hessian_images=hessian.num_images(),
            num_pool_images=len(scores),
            num_without_pseudo_boxes=sum(s['num_pseudo_boxes'] == 0 for s in scores.values()),
            num_unranked=sum(s['status'] == UNRANKED for s in scores.values()),
            num_nonfinite=sum(s['status'] == NONFINITE for s in scores.values()),
            solver=_solver_diagnostics(solver),
            world_size=world,
            loss_normalizer=dict(kind=opts.loss_normalizer,
                                 **(normalizer.to_dict() if normalizer else {})),
            feature_cache=dict(groups=len(cache), mib=cache.nbytes / 2**20, hits=cache.hits,
                               misses=cache.misses, bypassed=cache.bypassed,
                               head_hits=cache.head_hits),
            s_test_norm=float(torch.sqrt(sum((s.double() ** 2).sum() for s in s_test))),
            score_mode=score_mode,
            loss_path=detector_adapter(model).loss_path(model),
            hvp_mode=(hessian_scorer.hvp_mode_ or 'none') + (
                f' ({hessian_scorer.hvp_mode_reason_})' if hessian_scorer.hvp_mode_reason_
                else ''),
            timings=timings)
    return scores


def _status(record: dict) -> str:
    if 'status' in record:
        return record['status']
    return SCORED if record['influence'] is not None else NONFINITE


def rank_by_influence(scores: Dict[object, dict], seed: int = 0,
                      rank_by: str = 'influence') -> List[object]:
    """Image ids in ISAL's order of preference.

    1. scored images, most negative influence first (ties by id); with
       ``rank_by='influence_per_box'``, most negative ``influence / max(num_pseudo_boxes, 1)``;
    2. images left unranked (``status == 'unranked'``: no pseudo box under
       ``no_pseudo_boxes='last'``), in an order drawn from ``seed`` alone (a permutation of
       their ids sorted as strings), so it depends neither on scores nor on the pool order;
    3. images whose influence was not finite (``status == 'nonfinite'``), by id; these are
       never selected by :func:`write_isal_outputs`.

    Args:
        scores: ``score_pool``'s output. Records without ``status`` count as scored when their
            influence is a number and as non-finite when it is None.
        seed: seeds the order of the unranked images.
    """
    if rank_by not in ScorerOptions.RANK_BY:
        raise ValueError(f'rank_by must be one of {ScorerOptions.RANK_BY}, got {rank_by!r}')

    def value(i):
        record = scores[i]
        if rank_by == 'influence_per_box':
            return record['influence'] / max(record['num_pseudo_boxes'], 1)
        return record['influence']

    scored = sorted((i for i, r in scores.items() if _status(r) == SCORED),
                    key=lambda i: (value(i), str(i)))
    unranked = sorted((i for i, r in scores.items() if _status(r) == UNRANKED), key=str)
    perm = np.random.default_rng([int(seed), _UNRANKED_STREAM]).permutation(len(unranked))
    nonfinite = sorted((i for i, r in scores.items() if _status(r) == NONFINITE), key=str)
    return scored + [unranked[k] for k in perm] + nonfinite


def write_isal_outputs(scores_path: str, selection_path: str, scores: Dict[object, dict],
                       budget: Optional[int], diagnostics: Optional[dict] = None,
                       seed: int = 0, rank_by: str = 'influence') -> Dict[str, str]:
    """Write the scores and the selection as JSON (atomically).

    ``scores_path``: ``{"images": [{"image_id", "influence", "num_pseudo_boxes", "status"},
    ...], "summary": diagnostics}``. ``selection_path``: ``{"budget", "image_ids",
    "influence"}``, the first ``budget`` images of :func:`rank_by_influence` (most negative
    influence first, then unranked images in the seed's order; never a non-finite one), or
    all of them if ``budget`` is None.

    Args:
        seed: the seed of scoring, which orders the unranked images.
        rank_by: :attr:`ScorerOptions.rank_by`.

    Returns:
        ``dict(scores=scores_path, selection=selection_path)``.
    """
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        raise ValueError(f'budget must be a non-negative integer (images), got {budget!r}')
    order = [i for i in rank_by_influence(scores, seed, rank_by) if _status(scores[i]) != NONFINITE]
    chosen = order if budget is None else order[:budget]
    atomic_write_json(scores_path, dict(
        images=[dict(image_id=i, **record) for i, record in scores.items()],
        summary=diagnostics or {}))
    atomic_write_json(selection_path, dict(
        budget=budget, image_ids=chosen,
        influence=[scores[i]['influence'] for i in chosen]))
    return dict(scores=scores_path, selection=selection_path)


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
                      labeled_ann_file: Optional[str] = None, owner: str = 'ISAL') -> None:
    """Check the annotation files :func:`run_isal` will read (defaults as it fills them in):
    each exists and, for COCO files, is usable (:func:`~.data.check_ann_file`). For the entry
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
        check_ann_file(path, classes)


def run_isal(model, cfg, *, unlabeled_ann_file: str, reference_ann_file: Optional[str] = None,
             labeled_ann_file: Optional[str] = None,
             scorer: Union[None, dict, ScorerOptions] = None, seed: int = 0,
             budget: Optional[int] = None, out: Optional[str] = None) -> ISALResult:
    """Score the pool with ISAL, rank it and (with ``out``) write the scores and selection.

    The one way into ISAL scoring: the ISALHook, :func:`mmdet_isal.apis.score_from_config`
    (``tools/score.py``) and the loop's ISAL strategy all call it. In a distributed run every
    process calls it with the same arguments (see the module docstring); the result is the
    same on every process and only the main process writes.

    Args:
        model: the trained detector (a DDP or other mmengine wrapper is unwrapped).
        cfg: the config the model was trained with.
        unlabeled_ann_file: annotations of the pool (their boxes are never read); relative
            paths are relative to the training data set's ``data_root``.
        reference_ann_file: the reference set R; default: the validation data set's.
        labeled_ann_file: the labeled set whose Hessian is used; default: the training data
            set's.
        scorer: :class:`ScorerOptions` or a dict of them.
        seed: seeds the Hessian subset, LiSSA, the samplers and the order of unranked images.
        budget: how many images ``selected`` (and selection.json) holds; None: all.
        out: if given, the scores JSON to write; ``selection.json`` is written beside it
            (:func:`write_isal_outputs`).
    """
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool)
                               or budget < 0):
        raise ValueError(f'budget must be a non-negative integer (images), got {budget!r}')
    opts = scorer if isinstance(scorer, ScorerOptions) else ScorerOptions.from_dict(scorer)
    defaults = default_ann_files(cfg)
    diagnostics: dict = {}
    scores = score_pool(model, cfg, unlabeled_ann_file=unlabeled_ann_file,
                        reference_ann_file=reference_ann_file or defaults['reference'],
                        labeled_ann_file=labeled_ann_file or defaults['labeled'],
                        scorer=asdict(opts), seed=seed, diagnostics=diagnostics)
    order = rank_by_influence(scores, seed, opts.rank_by)
    selectable = [i for i in order if _status(scores[i]) != NONFINITE]
    selected = selectable if budget is None else selectable[:budget]
    paths = None
    if out is not None:
        out = osp.abspath(out)
        paths = dict(scores=out, selection=osp.join(osp.dirname(out), 'selection.json'))
        if is_main_process():
            write_isal_outputs(paths['scores'], paths['selection'], scores, budget, diagnostics,
                               seed=seed, rank_by=opts.rank_by)
    return ISALResult(scores=scores, order=order, selected=selected, diagnostics=diagnostics,
                      paths=paths)
