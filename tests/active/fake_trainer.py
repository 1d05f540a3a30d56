"""A trainer and a strategy without a detector, for fast tests of the loop's protocol.

"Training" step K writes ``DIR/step_K/fake.ckpt`` holding the ids and box count of the step's
labeled images (and the checkpoint it started from); the model of a step is what that file
holds, and its AP is a known function of its boxes (:func:`fake_ap`). The strategy ranks with
the model it is given, so a loop that handed it another step's model would select other images.
"""
import json
import os.path as osp

import numpy as np

from mmdet_isal.active import StepJob, TrainedModel, Trainer
from mmdet_isal.strategies.base import BaseStrategy, Ranking


class Killed(Exception):
    """Stands for the process being killed in the middle of a stage."""


def fake_ap(boxes):
    """The fake model's bbox_mAP after training on ``boxes`` boxes (0-1, grows with boxes)."""
    return boxes / (boxes + 100.0)


def fake_ap50(boxes):
    return boxes / (boxes + 50.0)


#: The fake model's detection scores, in order: image ``i`` gets the first ``i % 4`` of them.
FAKE_SCORES = (0.9, 0.6, 0.35, 0.2)


def fake_prediction(image_id):
    """The fake model's detections of image ``image_id`` (a 128-px image): ``i % 4`` boxes,
    box ``j`` at ``[8 + 24 j, 10 + 6 j, 40 + 24 j, 50 + 6 j]`` (x1 y1 x2 y2) with score
    ``FAKE_SCORES[j]`` and class ``(i + j) % 8``."""
    n = image_id % 4
    boxes = np.array([[8 + 24 * j, 10 + 6 * j, 40 + 24 * j, 50 + 6 * j] for j in range(n)],
                     dtype=np.float32).reshape(-1, 4)
    return dict(bboxes=boxes, scores=np.array(FAKE_SCORES[:n], dtype=np.float32),
                labels=np.array([(image_id + j) % 8 for j in range(n)], dtype=np.int64))


class FakeModel:
    """What the fake trainer trains: the labeled images it saw."""

    def __init__(self, ids, boxes, init=None):
        self.ids, self.boxes, self.init = ids, boxes, init

    def state(self):
        return dict(ids=self.ids, boxes=self.boxes, init=self.init)


class FakeTrainer(Trainer):
    """A :class:`Trainer` without a detector.

    Args:
        kill: ``(method, step)``: that call raises :class:`Killed` (a process killed there).
        predicts: whether :meth:`predict` gives boxes (:func:`fake_prediction`) or ``None``.

    Attributes:
        calls: ``(method, step)`` of every call, in order.
        loaded: the checkpoints a model was read back from (after a restart).
        jobs: every :class:`StepJob` the loop gave ``train``.
        predicted: ``(step, image ids)`` of every :meth:`predict` call.
    """

    def __init__(self, kill=None, predicts=True):
        super().__init__()
        self.kill, self.predicts = kill, predicts
        self.calls, self.loaded, self.jobs, self.predicted = [], [], [], []
        self.releases = 0
        self._kept = {}

    def _call(self, method, job):
        self.calls.append((method, job.step))
        if self.kill == (method, job.step):
            raise Killed(f'{method} of step {job.step}')

    def train(self, job: StepJob) -> str:
        self._call('train', job)
        self.jobs.append(job)
        with open(job.labeled_ann_file) as f:
            coco = json.load(f)
        model = FakeModel([im['id'] for im in coco['images']], len(coco['annotations']),
                          job.init_checkpoint)
        path = osp.join(job.work_dir, 'fake.ckpt')
        with open(path, 'w') as f:
            json.dump(model.state(), f)
        self._kept = {job.step: model}
        return path

    def evaluate(self, job: StepJob):
        self._call('evaluate', job)
        boxes = self._model(job).boxes
        return dict(metrics={'fake/bbox_mAP': fake_ap(boxes), 'fake/note': 'x'},
                    bbox_mAP=fake_ap(boxes), bbox_mAP_50=fake_ap50(boxes))

    def model_of(self, job: StepJob) -> TrainedModel:
        self._call('model_of', job)
        return TrainedModel(self._model(job), cfg=None)

    def predict(self, job: StepJob, ann_file: str):
        """:func:`fake_prediction` of each image of ``ann_file`` (recorded in
        :attr:`predicted`); ``None`` with ``predicts=False``."""
        if not self.predicts:
            return None
        with open(ann_file) as f:
            ids = [im['id'] for im in json.load(f)['images']]
        self.predicted.append((job.step, ids))
        return {i: fake_prediction(i) for i in ids}

    def _model(self, job):
        if job.step not in self._kept:
            self.loaded.append(job.checkpoint)
            with open(job.checkpoint) as f:
                self._kept = {job.step: FakeModel(**json.load(f))}
        return self._kept[job.step]

    def release(self):
        self.releases += 1
        self._kept = {}


class FakeStrategy(BaseStrategy):
    """Ranks the unlabeled images by ``(id * (1 + images the model saw)) % 97``, highest first:
    another step's model gives another order. Details: ``num_pseudo_boxes = id % 3``; info: the
    model's number of images (or a NaN with ``nan_info``)."""

    def __init__(self, nan_info=False, kill=False):
        self.nan_info, self.kill = nan_info, kill

    def rank(self, context):
        if self.kill:
            raise Killed('score')
        seen = len(context.model.ids)
        order = sorted(context.unlabeled_ids, key=lambda i: (-((i * (1 + seen)) % 97), i))
        return Ranking(order=order, scores={i: float(k) for k, i in enumerate(order)},
                       details={i: dict(num_pseudo_boxes=i % 3) for i in order},
                       info=dict(model_images=seen,
                                 trace=[1.0, float('nan') if self.nan_info else 2.0]))
