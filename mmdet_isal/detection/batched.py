"""Every image's loss of a group in one vectorised call, for heads whose loss is known here.

:func:`~.losses.per_image_losses` otherwise calls the head's own ``loss_by_feat`` once per
image, so that each image gets its own normaliser. For a dense head, that is one target
assignment, one set of loss calls and a few dozen small tensor operations per image: on the tiny
FCOS, mmdet's per-image ``loss_by_feat`` was 35 % of a scoring pass, more than the backward.
Here the same loss is computed for all images of a group at once:

- the targets of every image from one assignment over ``images × points × boxes`` (boxes padded
  to the group's largest count, padded columns never chosen),
- each loss module called once on all images' elements with ``reduction_override='none'``,
- per-image sums divided by each image's own count, exactly as mmdet's ``avg_factor`` reduction
  divides one image's sum (``sum / (avg_factor + eps)``), or by a
  :class:`~.normalizer.LossNormalizer`'s fixed counts.

Nothing mixes images, so every image's loss depends on its own rows only, as the layerwise
derivative of :class:`~mmdet_isal.influence.InfluenceScorer` requires. The result equals mmdet's
per-image loss up to the order of float summation; :func:`group_losses` checks that once per
head (and normaliser) on the first group it sees, and keeps the per-image path if it does not.

:data:`GROUP_LOSSES` maps a head class name to its vectorised loss; a subclass qualifies only
while it keeps every method the vectorised loss reproduces (:func:`_own_methods`).
"""
import warnings
import weakref
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .normalizer import loss_modules

#: mmdet's ``avg_factor`` reduction adds this to the count (``weight_reduce_loss``)
_EPS = torch.finfo(torch.float32).eps
#: mmdet's FCOS marks "no box" with this area
_INF = 1e8

#: loss module types whose ``reduction_override='none'`` output, summed and divided by
#: ``avg_factor + eps``, is their mean with ``avg_factor`` (mmdet's ``weight_reduce_loss``)
ELEMENTWISE_LOSSES = ('FocalLoss', 'IoULoss', 'GIoULoss', 'DIoULoss', 'CIoULoss', 'EIoULoss',
                      'CrossEntropyLoss', 'L1Loss', 'SmoothL1Loss')


def _elementwise(module) -> bool:
    name = type(module).__name__
    if name not in ELEMENTWISE_LOSSES:
        return False
    if name == 'FocalLoss':
        return bool(module.use_sigmoid) and not getattr(module, 'activated', False)
    if name == 'CrossEntropyLoss':
        return bool(module.use_sigmoid) and getattr(module, 'class_weight', None) is None
    return True


def _segment_sum(values: Tensor, sizes: List[int]) -> Tensor:
    """The sums of consecutive runs of ``sizes`` rows of ``values``, one per image.

    Each run is summed by itself, as mmdet sums the image's elements alone: the same
    reduction of the same values, so float32 terms round as in mmdet's loss.
    """
    return torch.stack([part.sum() for part in values.split(sizes)])


# ----------------------------------------------------------------------------- FCOS
def fcos_targets(head, points: Sequence[Tensor], featmap_sizes: Sequence[Tuple[int, int]],
                 gts: list) -> Tuple[Tensor, Tensor]:
    """mmdet's ``FCOSHead.get_targets`` for all images of a group at once.

    The conditions on a (point, box) pair split into one on the point's x and one on its y
    (inside the box or its centre region: both coordinates inside; the largest distance to a
    side within the level's regression range: the larger of the x and y distances), so they
    are computed per column and per row of each level's grid and combined once: a handful of
    operations on ``images × points × boxes`` instead of mmdet's few dozen.

    Args:
        head: the ``FCOSHead`` (its ``prior_generator`` a ``MlvlPointGenerator``).
        points: the priors of every level, ``(H_l * W_l, 2)`` each, row-major.
        featmap_sizes: ``(H_l, W_l)`` of every level.
        gts: one ``InstanceData`` (``bboxes``, ``labels``) per image.

    Returns:
        ``labels`` ``(B, P)`` (``head.num_classes`` for background) and ``bbox_targets``
        ``(B, P, 4)`` (divided by the level's stride with ``norm_on_bbox``), points in mmdet's
        level order; bit for bit mmdet's values (the background's box targets excepted, which
        no loss reads).
    """
    concat = torch.cat(points)
    num_points, batch = len(concat), len(gts)
    max_gts = max((len(gt) for gt in gts), default=0)
    labels = torch.full((batch, num_points), head.num_classes, dtype=torch.long,
                        device=concat.device)
    # mmdet's targets have the type of ``points - boxes`` (FCOS casts its box predictions, and
    # so the points, to float32; a float64 model's boxes keep the targets in float64)
    dtype = concat.dtype
    for gt in gts:
        dtype = torch.promote_types(dtype, gt.bboxes.dtype)
    if max_gts > 0:
        boxes = concat.new_zeros((batch, max_gts, 4), dtype=dtype)
        gt_labels = labels.new_full((batch, max_gts), head.num_classes)
        valid = torch.zeros((batch, 1, max_gts), dtype=torch.bool, device=concat.device)
        for b, gt in enumerate(gts):
            n = len(gt)
            boxes[b, :n] = gt.bboxes
            gt_labels[b, :n] = gt.labels
            valid[b, 0, :n] = True
        areas = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]))[:, None]
        inf = areas.new_tensor(_INF)
        min_areas, indices = [], []
        for level, (level_points, (h, w)) in enumerate(zip(points, featmap_sizes)):
            grid = level_points.view(h, w, 2)
            ranges = [concat.new_tensor(v) for v in head.regress_ranges[level]]
            radius = head.strides[level] * head.center_sample_radius \
                if head.center_sampling else None
            x_keep, x_enough = _fcos_axis(grid[0, :, 0], boxes[..., 0], boxes[..., 2], radius,
                                          ranges)
            y_keep, y_enough = _fcos_axis(grid[:, 0, 1], boxes[..., 1], boxes[..., 3], radius,
                                          ranges)
            chosen = (y_keep[:, :, None] & (x_keep & valid)[:, None]) & (
                y_enough[:, :, None] | x_enough[:, None])                    # B, H, W, G
            min_area, index = torch.where(chosen, areas[:, None], inf).min(-1)
            min_areas.append(min_area.reshape(batch, -1))
            indices.append(index.reshape(batch, -1))
        min_area, index = torch.cat(min_areas, 1), torch.cat(indices, 1)     # B, P
        labels = gt_labels.gather(1, index)
        labels[min_area == _INF] = head.num_classes
        box = boxes.gather(1, index[..., None].expand(-1, -1, 4))            # B, P, 4
        px, py = concat[None, :, 0], concat[None, :, 1]
        bbox_targets = torch.stack((px - box[..., 0], py - box[..., 1], box[..., 2] - px,
                                    box[..., 3] - py), -1)
    else:
        bbox_targets = concat.new_zeros((batch, num_points, 4), dtype=dtype)
    if head.norm_on_bbox:
        scale = torch.cat([concat.new_full((len(p),), float(head.strides[i]))
                           for i, p in enumerate(points)])
        bbox_targets = bbox_targets / scale[None, :, None]
    return labels, bbox_targets


def _fcos_axis(coords: Tensor, low: Tensor, high: Tensor, radius: Optional[float],
               ranges: List[Tensor]) -> Tuple[Tensor, Tensor]:
    """One axis of FCOS's assignment: ``coords`` ``(n,)`` of a level's columns (or rows), the
    boxes' sides ``low``, ``high`` ``(B, G)`` on that axis.

    Returns ``keep`` (inside the box, or its centre region of ``radius``, and no side farther
    than the level's upper range) and ``enough`` (a side at least the lower range away), both
    ``(B, n, G)``, computed with mmdet's arithmetic.
    """
    coords, low, high = coords[None, :, None], low[:, None], high[:, None]
    near, far = coords - low, high - coords
    if radius is not None:
        centre = (low + high) / 2
        inside = ((coords - torch.where(centre - radius > low, centre - radius, low) > 0)
                  & (torch.where(centre + radius > high, high, centre + radius) - coords > 0))
    else:
        inside = (near > 0) & (far > 0)
    reach = torch.maximum(near, far)
    return inside & (reach <= ranges[1]), reach >= ranges[0]


def _divisor(normalizer, name: str, own: Tensor, python_one: Optional[Tensor] = None) -> Tensor:
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


def _mean(terms: Tensor, sizes: List[int], divisor: Tensor) -> Tensor:
    sums = _segment_sum(terms, sizes)
    return sums / divisor.to(sums.dtype)


def fcos_group_losses(head, prefix: str, outs, gts: list, normalizer=None) -> Tensor:
    """Each image's ``FCOSHead.loss_by_feat`` (``loss_cls + loss_bbox + loss_centerness``), for
    a group of images at once; ``outs`` are the head's training outputs for the group."""
    cls_scores, bbox_preds, centernesses = outs
    batch = cls_scores[0].shape[0]
    featmap_sizes = [tuple(c.shape[-2:]) for c in cls_scores]
    points = head.prior_generator.grid_priors(featmap_sizes, dtype=bbox_preds[0].dtype,
                                              device=bbox_preds[0].device)
    labels, bbox_targets = fcos_targets(head, points, featmap_sizes, gts)
    flat_cls = torch.cat([c.permute(0, 2, 3, 1).reshape(batch, -1, head.cls_out_channels)
                          for c in cls_scores], 1)
    flat_bbox = torch.cat([b.permute(0, 2, 3, 1).reshape(batch, -1, 4) for b in bbox_preds], 1)
    flat_ctr = torch.cat([c.permute(0, 2, 3, 1).reshape(batch, -1) for c in centernesses], 1)
    num_points = flat_cls.shape[1]

    positive = (labels >= 0) & (labels < head.num_classes)
    counts = positive.sum(1)
    positives = counts.tolist()  # per image, consecutive in the (image, point) order
    counts = counts.float()  # mmdet counts positives in float32 whatever the model's dtype
    num_pos = _divisor(normalizer, f'{prefix}loss_cls', counts.clamp(min=1.0), counts == 0)
    cls_terms = head.loss_cls(flat_cls.reshape(-1, head.cls_out_channels), labels.reshape(-1),
                              reduction_override='none')
    loss = _mean(cls_terms, [num_points] * batch, num_pos)

    if sum(positives) > 0:
        pos_targets = bbox_targets[positive]
        ctr_targets = head.centerness_target(pos_targets)
        denorm = _segment_sum(ctr_targets.detach(), positives).clamp(min=1e-6)
        denorm = _divisor(normalizer, f'{prefix}loss_bbox', denorm)
        pos_points = torch.cat(points)[None].expand(batch, -1, -1)[positive]
        box_terms = head.loss_bbox(head.bbox_coder.decode(pos_points, flat_bbox[positive]),
                                   head.bbox_coder.decode(pos_points, pos_targets),
                                   weight=ctr_targets, reduction_override='none')
        ctr_terms = head.loss_centerness(flat_ctr[positive], ctr_targets,
                                         reduction_override='none')
        num_pos_ctr = _divisor(normalizer, f'{prefix}loss_centerness', counts.clamp(min=1.0))
        # an image without positives adds mmdet's empty sums, 0
        loss = (loss + _mean(box_terms, positives, denorm)
                + _mean(ctr_terms, positives, num_pos_ctr))
    else:  # as mmdet: empty sums, 0, that keep the regression branch in the graph
        loss = loss + flat_bbox[positive].sum() + flat_ctr[positive].sum()
    return loss


def _fcos_usable(head) -> bool:
    return all(_elementwise(getattr(head, name))
               for name in ('loss_cls', 'loss_bbox', 'loss_centerness')) \
        and type(head.bbox_coder).__name__ == 'DistancePointBBoxCoder' \
        and type(head.prior_generator).__name__ == 'MlvlPointGenerator'


#: head class name -> (the methods of that class the vectorised loss reproduces, a predicate
#: on the head instance, the vectorised loss)
GROUP_LOSSES: Dict[str, Tuple[Tuple[str, ...], Callable, Callable]] = {
    'FCOSHead': (('loss_by_feat', 'get_targets', '_get_targets_single', 'centerness_target'),
                 _fcos_usable, fcos_group_losses),
}


def _own_methods(head) -> Optional[Callable]:
    """The vectorised loss of ``head``, if its class is (or inherits unchanged) a class of
    :data:`GROUP_LOSSES` and its loss modules are elementwise; else ``None``."""
    for cls in type(head).__mro__:
        entry = GROUP_LOSSES.get(cls.__name__)
        if entry is None:
            continue
        methods, usable, fn = entry
        if all(getattr(type(head), m, None) is getattr(cls, m, None) for m in methods) \
                and usable(head):
            return fn
        return None
    return None


def describe(head) -> str:
    """How the losses of ``head`` are computed: ``'vectorised'``, or ``'per_image'`` with the
    reason (reported as ``summary.loss_path``)."""
    if _own_methods(head) is None:
        return f'per_image (no vectorised loss for {type(head).__name__} with its loss modules)'
    if False in _CHECKED.get(head, {}).values():
        return 'per_image (the vectorised loss differed from loss_by_feat)'
    return 'vectorised'


# head -> {normaliser key: whether the vectorised loss matched the per-image one}
_CHECKED: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()
#: the check's tolerance, relative to the largest loss of the group
CHECK_RTOL = 1e-4


def group_losses(head, prefix: str, outs, gts: list, normalizer,
                 per_image: Callable[[], Tensor]) -> Optional[Tensor]:
    """The per-image losses of a group from :data:`GROUP_LOSSES`, or ``None`` where the head has
    no vectorised loss (the caller then computes them image by image).

    The first call per head and normaliser compares the result with ``per_image()`` (the
    losses image by image, without gradients); if they differ, a warning names the head and
    ``None`` is returned from then on.
    """
    fn = _own_methods(head)
    if fn is None:
        return None
    if normalizer is not None and not all(f'{prefix}{name}' in normalizer.avg_factors
                                          for name in loss_modules(head)):
        return None  # the per-image path raises the normaliser's error, if it is one
    key = None if normalizer is None else tuple(sorted(normalizer.avg_factors.items()))
    known = _CHECKED.setdefault(head, {})
    if known.get(key) is False:
        return None
    losses = fn(head, prefix, outs, gts, normalizer)
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
