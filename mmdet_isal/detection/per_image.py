"""Per-image detection losses of mmdet 3.x detectors, twice differentiable on every device.

mmdet computes one loss for a whole batch: dense heads divide by the number of positives over
the batch (and over ranks through ``reduce_mean``), samplers draw from the global RNG, and
images are padded to the largest one. A per-sample influence needs the loss of each image on
its own, the same whatever shares its batch. :func:`per_image_losses` gets it by

- running the data preprocessor and the backbone once per group of images of the same padded
  size (so padding never depends on the neighbours),
- running the heads once per group, then calling the heads' own ``loss_by_feat`` /
  ``roi_head.loss`` on each image's slice of the outputs (each image has its own normaliser),
  or, for heads whose spec has a vectorised loss (FCOS), computing every image's loss of the
  group in one call with per-image reductions (:mod:`.batched`),
- computing those outputs as training computes them (:func:`~.patches.loss_mode`; the
  detections that become pseudo-labels come from the inference outputs), with batch norm kept
  in eval mode,
- making ``reduce_mean`` the identity and seeding every random sampler from the image id,
- routing mmdet's ``FocalLoss`` around mmcv's compiled once-differentiable CUDA kernel
  (:mod:`.patches`).

Dividing each image by its own counts inflates images with few positives; with a
:class:`~.normalizer.LossNormalizer` (measured by :func:`measure_normalizer` on labeled images)
every image is divided by the same counts instead.

What differs between detector families is data: the detector's spec
(:func:`~.specs.detector_spec`, one file per family in :mod:`.specs`) knows its heads.
"""
import contextlib
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..influence.layerwise import sample_rows
from .feature_cache import FeatureCache, preprocess_and_extract
from .normalizer import LossNormalizer, normalizer_from_calls, record_avg_factors
from .patches import image_seed, loss_mode, memoized_priors, scoring_mode, seeded
from .specs import detector_spec


def _padded_shape(img: Tensor, divisor: int):
    h, w = img.shape[-2:]
    return (-(-h // divisor) * divisor, -(-w // divisor) * divisor) if divisor > 1 else (h, w)


def _groups_by_padded_shape(model, inputs: Sequence[Tensor]) -> List[List[int]]:
    """Indices of the batch grouped by the padded size each image would get on its own."""
    divisor = int(getattr(model.data_preprocessor, 'pad_size_divisor', 1) or 1)
    groups: Dict[tuple, List[int]] = {}
    for i, img in enumerate(inputs):
        groups.setdefault(_padded_shape(img, divisor), []).append(i)
    return list(groups.values())


def per_image_losses(model,
                     data_batch: dict,
                     *,
                     pseudo_label_fn: Optional[Callable] = None,
                     seed: int = 0,
                     records: Optional[list] = None,
                     normalizer: Optional[LossNormalizer] = None,
                     feature_cache: Optional[FeatureCache] = None) -> Tensor:
    """One detection loss per image of an mmdet batch, independent of the rest of the batch.

    Args:
        model: an mmdet detector (not wrapped in DDP), normally in eval mode: batch norm in train
            mode would make an image's loss depend on its batch.
        data_batch: what an mmdet DataLoader yields, ``dict(inputs=[CHW uint8 tensors],
            data_samples=[DetDataSample])``; the model's data preprocessor is run here.
        pseudo_label_fn: ``None`` to use each sample's ``gt_instances`` as targets. Otherwise a
            function ``(pred_instances) -> InstanceData`` turning the model's own detections of
            the image into its targets; detections and loss then come from one backbone and
            head forward.
        seed: seeds each image's random samplers together with its image id, so that a score
            does not vary between runs.
        records: if a list is given, one dict per image is appended (``img_id``,
            ``num_targets``) in batch order.
        normalizer: ``None`` divides each image's loss terms by the image's own counts (its
            positives, sampled anchors or RoIs: mmdet's normalisation on a batch of one). A
            :class:`LossNormalizer` divides every image by the same fixed counts, one per loss
            module (see :func:`measure_normalizer`).
        feature_cache: a :class:`FeatureCache` to take the backbone and neck features of
            images seen before from (and to store new ones in): for batches drawn again and
            again, such as LiSSA's Hessian batches. Results do not change.

    Returns:
        Tensor of shape (B,): the sum of the detection losses (keys containing ``'loss'``) of
        each image, in batch order, differentiable with respect to the model's parameters.
    """
    if normalizer is not None and not isinstance(normalizer, LossNormalizer):
        raise TypeError(f'normalizer must be None or a LossNormalizer (measure_normalizer), '
                        f'got {normalizer!r}')
    applied = normalizer.applied(model) if normalizer is not None else contextlib.nullcontext()
    with applied:
        return _per_image_losses(model, data_batch, pseudo_label_fn, seed, records,
                                 feature_cache=feature_cache, normalizer=normalizer)


def _per_image_losses(model, data_batch: dict, pseudo_label_fn: Optional[Callable], seed: int,
                      records: Optional[list], image_scope: Optional[Callable] = None,
                      feature_cache: Optional[FeatureCache] = None,
                      normalizer: Optional[LossNormalizer] = None) -> Tensor:
    """:func:`per_image_losses` (whose caller applies ``normalizer``'s hooks; it is given here
    for the vectorised losses of :mod:`.batched`); ``image_scope(i)``, if given, is a context
    manager around the loss of image ``i`` (batch order) alone, which computes every loss
    image by image."""
    inputs, samples = data_batch['inputs'], data_batch['data_samples']
    if len(inputs) != len(samples):
        raise ValueError(f'data_batch has {len(inputs)} inputs but {len(samples)} data_samples')
    spec = detector_spec(model)
    losses: List[Optional[Tensor]] = [None] * len(samples)
    group_records: Dict[int, dict] = {}
    vectorise = image_scope is None
    image_scope = image_scope or (lambda i: contextlib.nullcontext())
    memoized = (feature_cache.memoized_heads(model) if feature_cache is not None
                else contextlib.nullcontext())
    with scoring_mode(), memoized:
        for group in _groups_by_padded_shape(model, inputs):
            # every layer output of the group has a row per image of the group, except the
            # RoI head's, called per image (rows for the layerwise derivative of
            # InfluenceScorer)
            with sample_rows(group):
                results = _group_losses(model, spec, group, [inputs[i] for i in group],
                                        [samples[i] for i in group], pseudo_label_fn, seed,
                                        image_scope, feature_cache, normalizer, vectorise)
            for i, (loss, record) in zip(group, results):
                losses[i], group_records[i] = loss, record
    if records is not None:
        records.extend(group_records[i] for i in range(len(samples)))
    return torch.stack(losses)


def _group_losses(model, spec, group: List[int], inputs: List[Tensor], samples: list,
                  pseudo_label_fn: Optional[Callable], seed: int, image_scope: Callable,
                  feature_cache: Optional[FeatureCache],
                  normalizer: Optional[LossNormalizer] = None,
                  vectorise: bool = True) -> List[Tuple[Tensor, dict]]:
    """``(loss, record)`` of every image of one group of one padded size, in group order
    (``group``: their positions in the batch, which ``image_scope`` and ``sample_rows``
    see). With ``vectorise``, the losses come from one vectorised call where the head's spec
    has one (:mod:`.batched`; ``normalizer``: the one applied, or ``None``), else image by
    image."""
    from mmdet.models.utils import unpack_gt_instances
    local = contextlib.nullcontext()
    if feature_cache is not None:
        samples, feats = feature_cache.features(model, inputs, samples)
    elif pseudo_label_fn is not None:
        # the heads run twice on these features, for the detections (inference outputs) and
        # for the loss (training outputs): their frozen layers run once
        group_cache = FeatureCache(max_bytes=2**62)
        samples, feats = group_cache.features(model, inputs, samples)
        local = group_cache.memoized_heads(model, selected=True)
    else:
        samples, feats = preprocess_and_extract(model, inputs, samples)
    with local, memoized_priors(model):
        with loss_mode(model):
            outs = spec.head_outputs(model, feats)
        if pseudo_label_fn is not None:
            # the inference outputs from the same layer outputs: only what differs between
            # the heads' modes (FCOS: the stride scaling) runs again
            metas = [s.metainfo for s in samples]
            with torch.no_grad():
                preds = spec.predict(model, feats, spec.head_outputs(model, feats), metas)
            for sample, pred in zip(samples, preds):
                sample.gt_instances = pseudo_label_fn(pred)
                # nothing is ignored, but assigners expect the fields to exist
                sample.ignored_instances = sample.gt_instances[:0]
        gts, gts_ignore, metas = unpack_gt_instances(samples)
        with loss_mode(model):

            def each_image():
                losses = []
                for j, i in enumerate(group):
                    with image_scope(i), sample_rows(i), seeded(image_seed(seed, samples[j])):
                        losses.append(spec.image_loss(model, feats, outs, j, gts[j],
                                                      gts_ignore[j], metas[j]))
                return losses

            losses = None
            if vectorise:
                losses = spec.group_losses(model, outs, gts, normalizer,
                                           lambda: torch.stack(each_image()))
            losses = each_image() if losses is None else losses.unbind(0)
    return [(loss, dict(img_id=meta.get('img_id'), num_targets=len(gt)))
            for loss, gt, meta in zip(losses, gts, metas)]


def measure_normalizer(model, batches: Iterable[dict], seed: int = 0) -> LossNormalizer:
    """The labeled-mean normaliser: per loss module, the mean over images of the ``avg_factor``
    each image's own loss passes it (see :func:`~.normalizer.normalizer_from_calls`).

    Args:
        model: the mmdet detector, in the mode it will be scored in (normally eval).
        batches: data batches with ground-truth boxes (``gt_instances``), e.g. the labeled
            images that form the Hessian; every image counts once, whatever its batch.
        seed: seeds the samplers as in :func:`per_image_losses` (sampled counts rarely depend
            on it).

    Returns:
        A :class:`LossNormalizer` whose values are in each module's units per image (FCOS:
        positives for ``loss_cls`` and ``loss_centerness``, centerness sum for ``loss_bbox``;
        RPN and RoI heads: sampled anchors or RoIs).
    """
    per_image: List[Dict[str, list]] = []
    with torch.no_grad(), record_avg_factors(model) as calls:

        @contextlib.contextmanager
        def image_scope(i):
            calls.clear()
            yield
            per_image.append({name: list(values) for name, values in calls.items()})

        for batch in batches:
            _per_image_losses(model, batch, None, seed, None, image_scope)
    return normalizer_from_calls(per_image)
