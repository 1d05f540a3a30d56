"""Every image's loss of a group in one vectorised call: what every vectorised loss shares.

:func:`~.per_image.per_image_losses` otherwise calls the head's own ``loss_by_feat`` once per
image, so that each image gets its own normaliser. For a dense head, that is one target
assignment, one set of loss calls and a few dozen small tensor operations per image: on the tiny
FCOS, mmdet's per-image ``loss_by_feat`` was 35 % of a scoring pass, more than the backward.
A head's spec may compute the same loss for all images of a group at once
(:meth:`~.specs.base.HeadSpec.vectorised_loss`; FCOS's is in :mod:`.specs.fcos`):

- the targets of every image from one assignment over ``images × points × boxes`` (boxes padded
  to the group's largest count, padded columns never chosen),
- each loss module called once on all images' elements with ``reduction_override='none'``,
- per-image sums divided by each image's own count, exactly as mmdet's ``avg_factor`` reduction
  divides one image's sum (``sum / (avg_factor + eps)``), or by a
  :class:`~.normalizer.LossNormalizer`'s fixed counts.

Nothing mixes images, so every image's loss depends on its own rows only, as the layerwise
derivative of :class:`~mmdet_isal.influence.InfluenceScorer` requires. The result equals mmdet's
per-image loss up to the order of float summation; :func:`checked_group_losses` checks that once
per head (and normaliser) on the first group it sees, and keeps the per-image path if it does
not.

This module holds what those losses share: which mmdet loss modules reduce elementwise
(:data:`ELEMENTWISE_LOSSES`), mmdet's ``avg_factor`` arithmetic per image (:func:`divisor`,
:func:`per_image_mean`) and the check.
"""
import warnings
import weakref
from typing import Callable, List, Optional

import torch
from torch import Tensor

from .normalizer import loss_modules

#: mmdet's ``avg_factor`` reduction adds this to the count (``weight_reduce_loss``)
_EPS = torch.finfo(torch.float32).eps

#: loss module types whose ``reduction_override='none'`` output, summed and divided by
#: ``avg_factor + eps``, is their mean with ``avg_factor`` (mmdet's ``weight_reduce_loss``). A
#: fact about mmdet's loss modules, not about a detector family (any head may be configured
#: with any of them), so it is one table here, for every vectorised loss.
ELEMENTWISE_LOSSES = ('FocalLoss', 'IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss',
                      'CrossEntropyLoss', 'L1Loss', 'SmoothL1Loss')


def elementwise(module) -> bool:
    """Whether the loss module ``module`` is one of :data:`ELEMENTWISE_LOSSES` in a
    configuration whose ``reduction_override='none'`` output is elementwise."""
    name = type(module).__name__
    if name not in ELEMENTWISE_LOSSES:
        return False
    if name == 'FocalLoss':
        return bool(module.use_sigmoid) and not getattr(module, 'activated', False)
    if name == 'CrossEntropyLoss':
        return bool(module.use_sigmoid) and getattr(module, 'class_weight', None) is None
    return True


def segment_sum(values: Tensor, sizes: List[int]) -> Tensor:
    """The sums of consecutive runs of ``sizes`` rows of ``values``, one per image.

    Each run is summed by itself, as mmdet sums the image's elements alone: the same
    reduction of the same values, so float32 terms round as in mmdet's loss.
    """
    return torch.stack([part.sum() for part in values.split(sizes)])


def divisor(normalizer, name: str, own: Tensor, python_one: Optional[Tensor] = None) -> Tensor:
    """``avg_factor + eps`` per image, with mmdet's arithmetic: ``own`` (each image's count, a
    tensor of the dtype mmdet's count has) or the normaliser's fixed value cast to that dtype
    (as the normaliser's hook casts it), plus eps in that dtype. Where ``python_one`` is true,
    mmdet's count is the Python float 1.0 (``max(0 positives, 1.0)``) and the sum is taken in
    double precision instead. Returned in float64; the caller casts it to its loss's dtype.
    """
    value = own if normalizer is None else torch.full_like(own, normalizer.avg_factors[name])
    divisor = (value + _EPS).double()
    if python_one is not None:
        one = 1.0 if normalizer is None else normalizer.avg_factors[name]
        divisor = torch.where(python_one, torch.full_like(divisor, one + _EPS), divisor)
    return divisor


def per_image_mean(terms: Tensor, sizes: List[int], divisor: Tensor) -> Tensor:
    """Each image's sum of its run of ``sizes`` rows of ``terms`` divided by its ``divisor``
    (from :func:`divisor`), in the terms' dtype."""
    sums = segment_sum(terms, sizes)
    return sums / divisor.to(sums.dtype)


# head -> {normaliser key: whether the vectorised loss matched the per-image one}
_CHECKED: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()
#: the check's tolerance, relative to the largest loss of the group
CHECK_RTOL = 1e-4


def checked_group_losses(head, prefix: str, outs, gts: list, normalizer,
                         per_image: Callable[[], Tensor], loss: Callable) -> Optional[Tensor]:
    """The per-image losses of a group from the head's vectorised ``loss``, or ``None`` where it
    cannot stand for the per-image path (the caller then computes them image by image).

    Args:
        head: the dense head; ``prefix``: its path in the model with a dot (``'bbox_head.'``),
            which names its loss modules in a normaliser.
        outs: the head's training outputs for the group; ``gts``: one ``InstanceData`` per image.
        normalizer: the :class:`~.normalizer.LossNormalizer` applied, or ``None``.
        per_image: computes the same losses image by image (the reference of the check).
        loss: the vectorised loss, ``loss(head, prefix, outs, gts, normalizer) -> (B,)``.

    The first call per head and normaliser compares the result with ``per_image()`` (the
    losses image by image, without gradients); if they differ, a warning names the head and
    ``None`` is returned from then on.
    """
    if normalizer is not None and not all(f'{prefix}{name}' in normalizer.avg_factors
                                          for name in loss_modules(head)):
        return None  # the per-image path raises the normaliser's error, if it is one
    key = None if normalizer is None else tuple(sorted(normalizer.avg_factors.items()))
    known = _CHECKED.setdefault(head, {})
    if known.get(key) is False:
        return None
    losses = loss(head, prefix, outs, gts, normalizer)
    if key not in known:
        with torch.no_grad():
            reference = per_image()
        scale = float(reference.abs().max()) if reference.numel() else 0.0
        same = torch.allclose(losses.detach(), reference, rtol=CHECK_RTOL,
                              atol=CHECK_RTOL * max(scale, 1e-12))
        known[key] = same
        if not same:
            warnings.warn(f'mmdet-isal: the vectorised loss of {type(head).__name__} differs '
                          f'from its per-image loss_by_feat (largest difference '
                          f'{float((losses.detach() - reference).abs().max()):.3g}); computing '
                          f'its losses image by image', RuntimeWarning)
            return None
    return losses


def disagreed(head) -> bool:
    """Whether the vectorised loss of ``head`` differed from its per-image loss in a check (its
    losses are then computed image by image)."""
    return False in _CHECKED.get(head, {}).values()
