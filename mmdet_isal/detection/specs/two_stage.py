"""Two-stage detectors with an RPN and a standard RoI head (Faster R-CNN, ...)."""
import torch

from ..outputs import image_slice, sum_detection_losses
from .base import DetectorSpec, HeadSpec, register


@register
class TwoStageSpec(DetectorSpec):
    """RPN loss plus RoI-head loss.

    The RPN sees class-agnostic targets (labels 0) and the RoI head trains on the RPN's
    training proposals (``train_cfg.rpn_proposal``), exactly as ``TwoStageDetector.loss``.
    Pseudo-labels come from the test-time path (``test_cfg.rpn``, ``roi_head.predict``).
    """
    covers = 'TwoStageDetector'
    # mmcv's CPU nms (the RPN's proposals) takes float32 only
    tiny = dict(
        base='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
        dtype='float32',
        model=dict(
            rpn_head=dict(in_channels=32, feat_channels=32,
                          anchor_generator=dict(scales=[2], strides=[4, 8, 16, 32, 64])),
            roi_head=dict(bbox_roi_extractor=dict(out_channels=32),
                          bbox_head=dict(in_channels=32, fc_out_channels=128, num_classes=8)),
            train_cfg=dict(rpn=dict(sampler=dict(num=128)),
                           rpn_proposal=dict(nms_pre=600, max_per_img=300),
                           rcnn=dict(sampler=dict(num=128))),
            test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100))))

    def head_outputs(self, model, feats):
        return model.rpn_head(feats)

    def predict(self, model, feats, outs, img_metas):
        from mmdet.structures import DetDataSample
        proposals = model.rpn_head.predict_by_feat(
            *outs, batch_img_metas=img_metas, cfg=model.test_cfg.rpn, rescale=False)
        samples = [DetDataSample(metainfo=meta) for meta in img_metas]
        return model.roi_head.predict(feats, proposals, samples, rescale=False)

    def image_loss(self, model, feats, outs, i, gt, gt_ignore, img_meta):
        from mmdet.structures import DetDataSample
        rpn_gt = gt.clone()
        rpn_gt.labels = torch.zeros_like(gt.labels)
        outs_i = image_slice(outs, i)
        rpn_losses = model.rpn_head.loss_by_feat(*outs_i, [rpn_gt], [img_meta], [gt_ignore])
        proposal_cfg = model.train_cfg.get('rpn_proposal', model.test_cfg.rpn)
        proposals = model.rpn_head.predict_by_feat(
            *outs_i, batch_img_metas=[img_meta], cfg=proposal_cfg, rescale=False)
        sample = DetDataSample(metainfo=img_meta)
        sample.gt_instances = gt
        sample.ignored_instances = gt_ignore
        roi_losses = model.roi_head.loss(image_slice(feats, i), proposals, [sample])
        return sum_detection_losses(rpn_losses) + sum_detection_losses(roi_losses)

    def group_losses(self, model, outs, gts, normalizer, per_image):
        """``None``: the RPN's and RoI head's samplers draw per image (seeded by its id)."""
        return None

    def loss_path(self, model) -> str:
        return 'per_image (two-stage: the samplers draw per image)'


@register
class RPNSpec(HeadSpec):
    """The region proposal network: objectness and box deltas per anchor. No pooled features:
    its one shared conv is not a classification and a regression branch."""
    covers = 'RPNHead'
    preset = ('rpn_cls', 'rpn_reg')


@register
class BBoxHeadSpec(HeadSpec):
    """The RoI head's box head (``Shared2FCBBoxHead`` and other ``BBoxHead`` subclasses): its
    final classification and regression layers."""
    covers = 'BBoxHead'
    preset = ('fc_cls', 'fc_reg')
