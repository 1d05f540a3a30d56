"""ISAL on an mmdet detector: score every unlabeled image by its influence on the reference loss.

``I(z) = − s_test · ∇θ l(z)`` with ``s_test = (H + λI)⁻¹ ∇θ l(R)`` (see ``ISAL.md``):

1. ``∇θ l(R)``: gradient of the mean per-image loss over the reference set (ground truth);
2. ``s_test``: LiSSA over at most ``hessian_images`` labeled images (ground truth);
3. for each unlabeled image, one backbone and head forward gives its detections, the detections
   above ``score_thr`` become its targets, and the same forward gives its loss, whose
   directional derivative along ``s_test`` is the influence (batched, double backward).

Negative influence: labeling the image is predicted to lower the reference loss. ISAL picks the
most negative first.
"""
import math
import time
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..influence import InfluenceScorer, LiSSA
from ..utils.fileio import atomic_write_json
from .data import BatchSequence, build_scoring_dataset
from .losses import per_image_losses
from .presets import parameter_preset
from .pseudo_labels import PseudoLabeler


@dataclass
class ScorerOptions:
    """Options of ISAL scoring (``active_learning.scorer`` / the hook's ``scorer``).

    Args:
        params: parameter names or regular expressions taking part; ``None`` uses
            :func:`parameter_preset` (the final classification/regression layers).
        score_thr: pseudo-label detection threshold in [0, 1) (paper: 0.1).
        hessian_images: at most this many labeled images, drawn with the seed, form H (paper:
            500).
        damping: LiSSA damping; the solve estimates ``(H + damping·scale·I)⁻¹ v``.
        scale: LiSSA scale, a number > 0 or ``'auto'`` (power iteration on H).
        hessian_batch_size: images per LiSSA iteration (each ``H_j`` is the Hessian of one such
            batch). The paper uses single images; single-image Hessians vary so much that the
            automatic scale made LiSSA diverge on the demo, so the default is 8.
        depth: LiSSA iterations per repeat; ``None`` = one pass over the Hessian images (the
            paper's k sampled images).
        repeats: LiSSA repeats averaged (paper: 4).
        power_iters: power iterations for ``scale='auto'``.
        power_batches: Hessian batches the power iteration of ``scale='auto'`` runs on.
        batch_size: images per batch of the reference and pool passes (scores do not depend
            on it).
        include_bias: with the preset, also take the layers' biases.
    """
    params: Optional[Sequence[str]] = None
    score_thr: float = 0.1
    hessian_images: int = 500
    damping: float = 0.01
    scale: Union[float, str] = 'auto'
    hessian_batch_size: int = 8
    depth: Optional[int] = None
    repeats: int = 4
    power_iters: int = 10
    power_batches: int = 20
    batch_size: int = 4
    include_bias: bool = False

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
        if opts.depth is not None and (not isinstance(opts.depth, int) or opts.depth < 1):
            raise ValueError(f'scorer option depth must be None or an integer >= 1, '
                             f'got {opts.depth!r}')
        if opts.params is not None and (isinstance(opts.params, str) or not opts.params):
            raise ValueError(f'scorer option params must be a non-empty list of names or '
                             f'patterns, got {opts.params!r}')
        PseudoLabeler(opts.score_thr)  # validates score_thr
        return opts


def _unwrap(model):
    from mmengine.model import is_model_wrapper
    return model.module if is_model_wrapper(model) else model


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
    was_training = model.training
    model.eval()
    timings = {}
    try:
        start = time.perf_counter()
        bs = opts.batch_size
        reference = BatchSequence(build_scoring_dataset(cfg, reference_ann_file, True), bs,
                                  title='ISAL: reference gradient')
        labeled_ds = build_scoring_dataset(cfg, labeled_ann_file, True)
        pool = BatchSequence(build_scoring_dataset(cfg, unlabeled_ann_file, False), bs,
                             title='ISAL: scoring the unlabeled pool')
        if len(labeled_ds) == 0 or reference.num_images() == 0:
            raise ValueError(f'ISAL needs labeled and reference images: {labeled_ann_file} has '
                             f'{len(labeled_ds)}, {reference_ann_file} has '
                             f'{reference.num_images()}')
        rng = np.random.default_rng(seed)
        subset = sorted(rng.choice(len(labeled_ds), min(opts.hessian_images, len(labeled_ds)),
                                   replace=False).tolist())
        hessian = BatchSequence(labeled_ds, opts.hessian_batch_size, subset)
        names = list(opts.params) if opts.params else parameter_preset(model, opts.include_bias)
        solver = LiSSA(damping=opts.damping, scale=opts.scale, depth=opts.depth or len(hessian),
                       repeats=opts.repeats, seed=seed, power_iters=opts.power_iters,
                       power_batches=min(opts.power_batches, len(hessian)))
        gt_scorer = InfluenceScorer(model, names, partial(per_image_losses, seed=seed), solver)
        timings['build'] = time.perf_counter() - start

        start = time.perf_counter()
        v = gt_scorer.reference_gradient(reference, reduction='mean')
        timings['reference_gradient'] = time.perf_counter() - start
        start = time.perf_counter()
        print(f'ISAL: LiSSA over {hessian.num_images()} labeled images '
              f'({solver!r}, {len(hessian)} batches per pass)', flush=True)
        s_test = gt_scorer.inverse_hvp(v, hessian)
        timings['s_test'] = time.perf_counter() - start

        start = time.perf_counter()
        records: List[dict] = []
        pool_loss = partial(per_image_losses, pseudo_label_fn=PseudoLabeler(opts.score_thr),
                            seed=seed, records=records)
        pool_scorer = InfluenceScorer(model, dict(zip(gt_scorer.param_names, gt_scorer.params)),
                                      pool_loss, solver)
        influence = pool_scorer.score(pool, s_test).tolist()
        timings['score'] = time.perf_counter() - start
    finally:
        model.train(was_training)

    scores = {}
    for record, value in zip(records, influence):
        scores[record['img_id']] = dict(
            influence=value if math.isfinite(value) else None,
            num_pseudo_boxes=record['num_targets'])
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
            num_nonfinite=sum(s['influence'] is None for s in scores.values()),
            lissa=dict(scale=solver.scale_, lambda_=solver.lambda_,
                       top_eigenvalue=solver.top_eigenvalue_, trace=solver.trace_),
            s_test_norm=float(torch.sqrt(sum((s.double() ** 2).sum() for s in s_test))),
            timings=timings)
    return scores


def rank_by_influence(scores: Dict[object, dict]) -> List[object]:
    """Image ids, most negative influence first; ties by id; non-finite influence last."""
    def key(item):
        image_id, record = item
        value = record['influence']
        return (value is None, value if value is not None else 0.0, str(image_id))
    return [image_id for image_id, _ in sorted(scores.items(), key=key)]


def write_isal_outputs(scores_path: str, selection_path: str, scores: Dict[object, dict],
                       budget: Optional[int], diagnostics: Optional[dict] = None) -> Dict[str, str]:
    """Write the scores and the selection as JSON (atomically).

    ``scores_path``: ``{"images": [{"image_id", "influence", "num_pseudo_boxes"}, ...],
    "summary": diagnostics}``. ``selection_path``: ``{"budget", "image_ids", "influence"}``,
    the ``budget`` images with the most negative influence, most negative first (every image
    with a finite influence if ``budget`` is None).

    Returns:
        ``dict(scores=scores_path, selection=selection_path)``.
    """
    if budget is not None and (not isinstance(budget, int) or budget < 0):
        raise ValueError(f'budget must be a non-negative integer (images), got {budget!r}')
    order = [i for i in rank_by_influence(scores) if scores[i]['influence'] is not None]
    chosen = order if budget is None else order[:budget]
    atomic_write_json(scores_path, dict(
        images=[dict(image_id=i, **record) for i, record in scores.items()],
        summary=diagnostics or {}))
    atomic_write_json(selection_path, dict(
        budget=budget, image_ids=chosen,
        influence=[scores[i]['influence'] for i in chosen]))
    return dict(scores=scores_path, selection=selection_path)
