"""Pseudo-labels: the model's own detections of an unlabeled image, used as its targets."""
from mmengine.structures import InstanceData


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
        if not isinstance(score_thr, (int, float)) or not 0 <= score_thr < 1:
            raise ValueError(f'pseudo-label score_thr must be a number in [0, 1), got '
                             f'{score_thr!r}')
        self.score_thr = float(score_thr)

    def __call__(self, pred_instances) -> InstanceData:
        keep = pred_instances.scores >= self.score_thr
        return InstanceData(bboxes=pred_instances.bboxes[keep].detach(),
                            labels=pred_instances.labels[keep].detach())
