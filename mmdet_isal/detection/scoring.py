"""ISAL on an mmdet detector: score every unlabeled image by its influence on the reference loss.

``I(z) = − s_test · ∇θ l(z)`` with ``s_test = (H + λI)⁻¹ ∇θ l(R)`` (see ``docs/method.md``):

1. ``∇θ l(R)``: gradient of the mean per-image loss over the reference set (ground truth);
2. ``s_test``: LiSSA over at most ``hessian_images`` labeled images (ground truth);
3. for each unlabeled image, one backbone and head forward gives its detections, the detections
   above ``score_thr`` become its targets, and the same forward gives its loss, whose
   directional derivative along ``s_test`` is the influence (batched, double backward).

Negative influence: labeling the image is predicted to lower the reference loss. ISAL picks the
most negative first.

This module is the pool pass (:func:`score_pool`); :func:`~.isal.run_isal` is the one way in:
the ISALHook, ``mmdet_isal.apis``, the ISAL strategy of the loop and ``tools/score.py`` all
call it, and it calls :func:`score_pool`. In a distributed run (a process group initialised,
:mod:`mmdet_isal.utils.dist`) every process calls it: the reference set and the pool are
sharded, the reference gradient is summed over the processes, LiSSA's repeats are spread over
them (CG's and the exact solver's Hessian-vector products are summed instead), the scores are
gathered in pool order, and only the main process writes files.
"""
import math
import time
from functools import partial
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import all_gather_object, all_reduce, get_rank, get_world_size

from ..influence import ExactInverse, InfluenceScorer, build_solver
from ..utils.console import Progress
from ..utils.dist import shard
from ..utils.model import unwrap_model
from .calibration import calibrate_on, hessian_subset
from .data import BatchSequence, build_scoring_dataset
from .feature_cache import FeatureCache
from .per_image import measure_normalizer, per_image_losses
from .options import AUTO, ScorerOptions
from .presets import parameter_preset
from .pseudo_labels import PseudoLabeler
from .ranking import NONFINITE, SCORED, UNRANKED
from .specs import detector_spec


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
               labeled_ann_file: str, scorer: Optional[ScorerOptions] = None, seed: int = 0,
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
        scorer: the parsed :class:`~.options.ScorerOptions` (``ScorerOptions.from_dict``
            parses a config's flat dict); None: the defaults.
        seed: seeds the Hessian subset, LiSSA's batch order and every RoI/anchor sampler.
        diagnostics: if a dict is given, it is filled with what a user needs to judge the run:
            the parameters, LiSSA's scale, λ and convergence trace, timings, counts, the
            pseudo-label threshold used (``score_thr``; with ``score_thr='auto'`` its
            calibration on the Hessian images, ``score_thr_auto``, :mod:`.calibration`).

    Returns:
        ``{image_id: {'influence': float or None, 'num_pseudo_boxes': int}}`` for every image,
        in data set order. ``influence`` is None where it was not finite (counted in
        ``diagnostics['num_nonfinite']``; such images are never selected).
    """
    if scorer is None:
        scorer = ScorerOptions()
    if not isinstance(scorer, ScorerOptions):
        raise TypeError(f'score_pool: scorer must be the parsed ScorerOptions (parse a flat '
                        f'dict once with ScorerOptions.from_dict), got {scorer!r}')
    det, scoring, solving = scorer.detection, scorer.scoring, scorer.inverse_hvp
    model = unwrap_model(model)
    rank, world = get_rank(), get_world_size()
    reduce_sum = all_reduce if world > 1 else None  # mmengine's: in place, op 'sum'
    was_training = model.training
    model.eval()
    timings = {}
    try:
        start = time.perf_counter()
        bs = det.batch_size
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
        subset = hessian_subset(len(labeled_ds), scoring.hessian_images, seed)
        hessian = BatchSequence(labeled_ds, scoring.hessian_batch_size, subset)
        names = (list(scoring.params) if scoring.params
                 else parameter_preset(model, scoring.include_bias))
        solver = build_solver(solving, seed=seed, num_batches=len(hessian), rank=rank,
                              world_size=world, all_reduce=reduce_sum)
        if not solver.distributed:
            # CG and the exact solver: each process forms its share of every H·v product
            hessian = BatchSequence(labeled_ds, scoring.hessian_batch_size, shard(subset))
        timings['build'] = time.perf_counter() - start
        start = time.perf_counter()
        # one loss function for R, H and the pool: the same normaliser everywhere (measured on
        # all Hessian images by every process, so that it is the same everywhere)
        normalizer = (measure_normalizer(model, BatchSequence(labeled_ds,
                                                              scoring.hessian_batch_size,
                                                              subset),
                                         seed=seed)
                      if scoring.loss_normalizer == 'labeled_mean' else None)
        timings['normalizer'] = time.perf_counter() - start
        gt_scorer = InfluenceScorer(model, names, partial(per_image_losses, seed=seed,
                                                          normalizer=normalizer), solver,
                                    all_reduce=reduce_sum)

        start = time.perf_counter()
        v = gt_scorer.reference_gradient(reference, reduction='mean')
        timings['reference_gradient'] = time.perf_counter() - start
        start = time.perf_counter()
        hessian.progress = Progress(f'ISAL: {solving.solver} on {len(subset)} labeled images',
                                    solver.expected_hvps(len(hessian)),
                                    unit='H·v batches')
        # the Hessian batches come back every iteration: their backbone features are kept
        cache = FeatureCache(scoring.feature_cache_mb * 2**20)
        hessian_scorer = InfluenceScorer(
            model, dict(zip(gt_scorer.param_names, gt_scorer.params)),
            partial(per_image_losses, seed=seed, normalizer=normalizer, feature_cache=cache),
            solver, all_reduce=reduce_sum)
        s_test = hessian_scorer.inverse_hvp(v, hessian)
        hessian.progress.close()
        timings['s_test'] = time.perf_counter() - start

        start = time.perf_counter()
        score_thr, calibration = det.score_thr, None
        if score_thr == AUTO:
            # calibrated on the Hessian images (every process: the same threshold everywhere)
            calibration = calibrate_on(model, labeled_ds, subset, bs)
            score_thr = calibration.threshold
            timings['calibration'] = time.perf_counter() - start
            start = time.perf_counter()
        influence, records, score_mode = pool_influences(
            model, dict(zip(gt_scorer.param_names, gt_scorer.params)), pool, s_test,
            score_thr=score_thr, seed=seed, normalizer=normalizer)
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
        if scoring.no_pseudo_boxes == 'last' and record['num_targets'] == 0:
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
            options=scorer.to_dict(),
            score_thr=score_thr,
            score_thr_auto=calibration.to_dict() if calibration is not None else None,
            num_classes=len(labeled_ds.metainfo.get('classes') or ()),
            seed=seed,
            num_reference_images=reference.num_images(),
            num_hessian_images=hessian.num_images(),
            num_pool_images=len(scores),
            num_without_pseudo_boxes=sum(s['num_pseudo_boxes'] == 0 for s in scores.values()),
            num_unranked=sum(s['status'] == UNRANKED for s in scores.values()),
            num_nonfinite=sum(s['status'] == NONFINITE for s in scores.values()),
            solver=solver.diagnostics(all_gather_object),
            world_size=world,
            loss_normalizer=dict(kind=scoring.loss_normalizer,
                                 **(normalizer.to_dict() if normalizer else {})),
            feature_cache=dict(groups=len(cache), mib=cache.nbytes / 2**20, hits=cache.hits,
                               misses=cache.misses, bypassed=cache.bypassed,
                               head_hits=cache.head_hits),
            s_test_norm=float(torch.sqrt(sum((s.double() ** 2).sum() for s in s_test))),
            score_mode=score_mode,
            loss_path=detector_spec(model).loss_path(model),
            hvp_mode=(hessian_scorer.hvp_mode_ or 'none') + (
                f' ({hessian_scorer.hvp_mode_reason_})' if hessian_scorer.hvp_mode_reason_
                else ''),
            timings=timings)
    return scores
