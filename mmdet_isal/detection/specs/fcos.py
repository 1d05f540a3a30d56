"""FCOS (Tian et al., ICCV 2019), with its vectorised loss: every image's ``loss_by_feat`` of a
group in one call (see :mod:`mmdet_isal.detection.batched`), bit for bit mmdet's targets and,
up to the order of float summation, its losses."""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..batched import divisor, elementwise, per_image_mean, segment_sum
from .base import BRANCH_TAPS, GN8, HeadSpec, register

#: mmdet's FCOS marks "no box" with this area
_INF = 1e8


@register
class FCOSSpec(HeadSpec):
    """``FCOSHead`` and its subclasses (e.g. ``NASFCOSHead``): classification, box regression
    and centerness layers; the vectorised loss where the loss modules are elementwise, the
    box coder is ``DistancePointBBoxCoder`` and the priors are points."""
    covers = 'FCOSHead'
    preset = ('conv_cls', 'conv_reg', 'conv_centerness')
    taps = BRANCH_TAPS
    reproduces = ('loss_by_feat', 'get_targets', '_get_targets_single', 'centerness_target')
    # the toy FCOS's head ("center-normbbox-centeronreg-giou"), smaller
    tiny = dict(
        base='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
        model=dict(bbox_head=dict(
            num_classes=8, in_channels=32, feat_channels=32, stacked_convs=2,
            norm_cfg=GN8, norm_on_bbox=True,
            centerness_on_reg=True, center_sampling=True, center_sample_radius=1.5,
            conv_bias=True, loss_bbox=dict(type='GIoULoss', loss_weight=1.0))))

    def vectorisable(self, head) -> bool:
        return all(elementwise(getattr(head, name))
                   for name in ('loss_cls', 'loss_bbox', 'loss_centerness')) \
            and type(head.bbox_coder).__name__ == 'DistancePointBBoxCoder' \
            and type(head.prior_generator).__name__ == 'MlvlPointGenerator'

    def vectorised_loss(self, head, prefix, outs, gts, normalizer=None) -> Tensor:
        return fcos_group_losses(head, prefix, outs, gts, normalizer)


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
    num_pos = divisor(normalizer, f'{prefix}loss_cls', counts.clamp(min=1.0), counts == 0)
    cls_terms = head.loss_cls(flat_cls.reshape(-1, head.cls_out_channels), labels.reshape(-1),
                              reduction_override='none')
    loss = per_image_mean(cls_terms, [num_points] * batch, num_pos)

    if sum(positives) > 0:
        pos_targets = bbox_targets[positive]
        ctr_targets = head.centerness_target(pos_targets)
        denorm = segment_sum(ctr_targets.detach(), positives).clamp(min=1e-6)
        denorm = divisor(normalizer, f'{prefix}loss_bbox', denorm)
        pos_points = torch.cat(points)[None].expand(batch, -1, -1)[positive]
        box_terms = head.loss_bbox(head.bbox_coder.decode(pos_points, flat_bbox[positive]),
                                   head.bbox_coder.decode(pos_points, pos_targets),
                                   weight=ctr_targets, reduction_override='none')
        ctr_terms = head.loss_centerness(flat_ctr[positive], ctr_targets,
                                         reduction_override='none')
        num_pos_ctr = divisor(normalizer, f'{prefix}loss_centerness', counts.clamp(min=1.0))
        # an image without positives adds mmdet's empty sums, 0
        loss = (loss + per_image_mean(box_terms, positives, denorm)
                + per_image_mean(ctr_terms, positives, num_pos_ctr))
    else:  # as mmdet: empty sums, 0, that keep the regression branch in the graph
        loss = loss + flat_bbox[positive].sum() + flat_ctr[positive].sum()
    return loss

