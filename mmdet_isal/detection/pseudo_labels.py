"""Pseudo-labels: the model's own detections of an unlabeled image, used as its targets."""
from typing import Dict

import torch
from mmengine.model import is_model_wrapper
from mmengine.structures import InstanceData

from ..utils import dist
from .data import BatchSequence, build_scoring_dataset


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


def count_pseudo_boxes(model, cfg, ann_file: str, score_thr: float,
                       batch_size: int = 8) -> Dict[object, int]:
    """Detections above ``score_thr`` per image of ``ann_file``: one inference pass.

    The same detections :func:`~mmdet_isal.detection.score_pool` turns into pseudo-labels
    (the model's test-time path on the scoring pipeline), counted without their boxes being
    kept. The image boxes of ``ann_file`` are never read.

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
    model = model.module if is_model_wrapper(model) else model
    dataset = build_scoring_dataset(cfg, ann_file, with_boxes=False)
    # in a distributed run each process counts its share; the counts are gathered in order
    batches = BatchSequence(dataset, batch_size, dist.shard(range(len(dataset))),
                            title='counting detections')
    was_training = model.training
    model.eval()
    counts: Dict[object, int] = {}
    try:
        with torch.no_grad():
            for batch in batches:
                for sample in model.test_step(batch):
                    counts[sample.metainfo['img_id']] = len(labeler(sample.pred_instances))
    finally:
        model.train(was_training)
    return {i: n for part in dist.all_gather_objects(list(counts.items())) for i, n in part}
