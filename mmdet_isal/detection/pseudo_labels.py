"""Pseudo-labels: the model's own detections of an unlabeled image, used as its targets."""
from typing import Dict

from mmengine.structures import InstanceData

from ..influence.checks import check_number
from .features import detect_pool


class PseudoLabeler:
    """Keep the detections with ``score >= score_thr`` as boxes and labels (no gradient).

    An image with no detection above the threshold gets an empty target set. Its loss is then
    the detector's background loss over the whole image (every location or sampled proposal is
    a negative), a well-defined loss whose gradient says "this image holds nothing": the image is
    scored like any other, never dropped, filled in at random or given a constant. Such images
    are counted in the outputs (``num_pseudo_boxes == 0``).

    Args:
        score_thr: detection score threshold in [0, 1); the paper uses 0.1.
    """

    def __init__(self, score_thr: float = 0.1):
        check_number(score_thr, 'score_thr', minimum=0, maximum=1, open_max=True,
                     owner='pseudo-label')
        self.score_thr = float(score_thr)

    def __call__(self, pred_instances) -> InstanceData:
        keep = pred_instances.scores >= self.score_thr
        return InstanceData(bboxes=pred_instances.bboxes[keep].detach(),
                            labels=pred_instances.labels[keep].detach())


def count_pseudo_boxes(model, cfg, ann_file: str, score_thr: float,
                       batch_size: int = 8) -> Dict[object, int]:
    """Detections above ``score_thr`` per image of ``ann_file``: one inference pass.

    The same detections :func:`~mmdet_isal.detection.score_pool` turns into pseudo-labels
    (the model's test-time path on the scoring pipeline, :func:`~.features.detect_pool`). The
    image boxes of ``ann_file`` are never read.

    Args:
        model: an mmdet detector (a DDP wrapper is unwrapped); run in eval mode, its mode is
            restored.
        cfg: the mmengine ``Config`` the model was trained with (data set and test pipeline).
        ann_file: annotation file (COCO json or VOC ImageSets list) of the images to count.
        score_thr: detection score threshold in [0, 1).
        batch_size: images per forward pass (counts do not depend on it).

    Returns:
        ``{image_id: number of detections with score >= score_thr}`` in data set order, on
        every process (collective in a distributed run).
    """
    labeler = PseudoLabeler(score_thr)
    outputs = detect_pool(model, cfg, ann_file, batch_size, title='counting detections')
    return {i: len(labeler(o.detections)) for i, o in outputs.items()}
