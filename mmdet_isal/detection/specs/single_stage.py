"""Single-stage detectors (FCOS, RetinaNet, ATSS, ...): one dense ``bbox_head``."""
from .. import batched
from ..outputs import image_slice, sum_detection_losses
from .base import DetectorSpec, register, vectorised_loss_of


@register
class SingleStageSpec(DetectorSpec):
    """``model.bbox_head`` is dense: its outputs per FPN level have the batch first, and its
    own ``loss_by_feat`` on one image's slice is that image's loss. The losses of a group come
    from the head's vectorised loss where its spec has one (:mod:`..batched`). Each head
    family's tiny detector holds this spec."""
    covers = 'SingleStageDetector'

    def head_outputs(self, model, feats):
        return model.bbox_head(feats)

    def predict(self, model, feats, outs, img_metas):
        return model.bbox_head.predict_by_feat(*outs, batch_img_metas=img_metas, rescale=False)

    def image_loss(self, model, feats, outs, i, gt, gt_ignore, img_meta):
        losses = model.bbox_head.loss_by_feat(*image_slice(outs, i), [gt], [img_meta],
                                              [gt_ignore])
        return sum_detection_losses(losses)

    def group_losses(self, model, outs, gts, normalizer, per_image):
        """Every image's loss in one vectorised call (:mod:`..batched`), or ``None``."""
        loss = vectorised_loss_of(model.bbox_head)
        if loss is None:
            return None
        return batched.checked_group_losses(model.bbox_head, 'bbox_head.', outs, gts,
                                            normalizer, per_image, loss)

    def loss_path(self, model) -> str:
        """``'vectorised'`` or ``'per_image (reason)'``."""
        head = model.bbox_head
        if vectorised_loss_of(head) is None:
            return (f'per_image (no vectorised loss for {type(head).__name__} with its loss '
                    f'modules)')
        if batched.disagreed(head):
            return 'per_image (the vectorised loss differed from loss_by_feat)'
        return 'vectorised'
