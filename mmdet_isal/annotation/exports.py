"""What a person needs to annotate a selection, written to one folder (``to_annotate/``):

- ``selection.json``: the picks in rank order (1 = the strategy's first choice): pool image id,
  file name (relative to the image directory), absolute path, score, size, pre-label count;
- ``images.txt``: their absolute paths, one per line (to copy or upload them);
- ``prelabels.coco.json``: the detector's detections with ``score >= prelabel_thr`` as COCO
  annotations, with their ``score``: importable as pre-annotations into CVAT ("COCO 1.0": every
  annotation has an integer ``id``, ``category_id`` >= 1, ``iscrowd`` and an empty
  ``segmentation``, which CVAT's reader requires) or any COCO tool;
- ``label_studio_tasks.json``: one Label Studio task per pick, its detections as
  ``predictions`` of ``rectanglelabels`` results in percent of the image size (Label Studio's
  task format), and ``label_studio_config.xml``, the labeling config those results refer to
  (``<RectangleLabels name="label" toName="image">`` with the pool's classes).

Label Studio's ``data.image`` is a local-files URL, ``/data/local-files/?d=<file name>``: start
Label Studio with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to the image directory (or pass another
``image_url_prefix``).
"""
import os
import os.path as osp
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence
from xml.sax.saxutils import quoteattr

import numpy as np

from mmdet_isal.utils.fileio import atomic_write, atomic_write_json

#: Label Studio's default URL prefix of local files (its converter's ``image_root_url``).
LOCAL_FILES_URL = '/data/local-files/?d='
#: The names the tasks' results use; the labeling config declares them.
FROM_NAME, TO_NAME = 'label', 'image'
FILES = dict(selection='selection.json', images='images.txt',
             prelabels='prelabels.coco.json', label_studio='label_studio_tasks.json',
             label_studio_config='label_studio_config.xml')


@dataclass(frozen=True)
class Pick:
    """One picked image.

    Args:
        image_id: its pool id.
        file_name: relative to the image directory.
        path: absolute path of the file.
        width, height: its size as loaded, in pixels.
        rank: 1 = the strategy's first choice.
        score: the strategy's score (``None``: none, e.g. a random pick).
    """
    image_id: Any
    file_name: str
    path: str
    width: float
    height: float
    rank: int
    score: Optional[float] = None


def kept_detections(prediction: Optional[Mapping[str, np.ndarray]], threshold: float,
                    width: float, height: float):
    """The detections of one image with ``score >= threshold``, boxes clipped to the image:
    ``(boxes [K, 4] x1 y1 x2 y2 in pixels, scores [K], labels [K])``, highest score first;
    empty arrays without a prediction."""
    if prediction is None or len(prediction['scores']) == 0:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int)
    boxes = np.asarray(prediction['bboxes'], dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(prediction['scores'], dtype=np.float64)
    labels = np.asarray(prediction['labels'], dtype=int)
    keep = np.flatnonzero(scores >= threshold)
    keep = keep[np.argsort(-scores[keep], kind='stable')]
    boxes = boxes[keep].copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return boxes, scores[keep], labels[keep]


def prelabels_coco(picks: Sequence[Pick], predictions: Mapping[Any, Mapping[str, np.ndarray]],
                   classes: Sequence[str], categories: Sequence[Dict[str, Any]],
                   threshold: float, description: str = '') -> Dict[str, Any]:
    """The pre-labels as a COCO dict: the picks as images (pool ids and file names), their
    detections with ``score >= threshold`` as annotations (``bbox`` in pixels, 2 decimals;
    ``score``). ``classes[label]`` names a detection's class; ``categories`` are the pool's."""
    cat_ids = {str(c['name']): c['id'] for c in categories}
    images, annotations = [], []
    for pick in picks:
        images.append(dict(id=pick.image_id, file_name=pick.file_name, width=int(pick.width),
                           height=int(pick.height)))
        boxes, scores, labels = kept_detections(predictions.get(pick.image_id), threshold,
                                                pick.width, pick.height)
        for box, score, label in zip(boxes, scores, labels):
            x, y = round(float(box[0]), 2), round(float(box[1]), 2)
            w, h = round(float(box[2] - box[0]), 2), round(float(box[3] - box[1]), 2)
            annotations.append(dict(
                id=len(annotations) + 1, image_id=pick.image_id,
                category_id=cat_ids[classes[int(label)]], bbox=[x, y, w, h],
                area=round(w * h, 2), iscrowd=0, segmentation=[], score=round(float(score), 4)))
    return dict(info=dict(description=description), licenses=[], images=images,
                annotations=annotations, categories=[dict(c) for c in categories])


def label_studio_tasks(picks: Sequence[Pick],
                       predictions: Mapping[Any, Mapping[str, np.ndarray]],
                       classes: Sequence[str], threshold: float, model_version: str,
                       image_url_prefix: str = LOCAL_FILES_URL) -> List[Dict[str, Any]]:
    """One Label Studio task per pick: ``data`` (``image`` URL, ``pool_id``, ``file_name``,
    ``rank``, ``score``) and one prediction whose ``result`` holds a ``rectanglelabels``
    region per detection with ``score >= threshold``: ``x, y, width, height`` in percent of
    ``original_width`` / ``original_height``, ``rotation`` 0, its class and score. The
    prediction's ``score`` is the mean of its regions' (0 without any)."""
    tasks = []
    for n, pick in enumerate(picks):
        boxes, scores, labels = kept_detections(predictions.get(pick.image_id), threshold,
                                                pick.width, pick.height)
        width, height = int(pick.width), int(pick.height)
        result = []
        for k, (box, score, label) in enumerate(zip(boxes, scores, labels)):
            result.append(dict(
                id=f'r{n}_{k}', type='rectanglelabels', from_name=FROM_NAME, to_name=TO_NAME,
                original_width=width, original_height=height, image_rotation=0,
                value=dict(x=100.0 * box[0] / width, y=100.0 * box[1] / height,
                           width=100.0 * (box[2] - box[0]) / width,
                           height=100.0 * (box[3] - box[1]) / height, rotation=0,
                           rectanglelabels=[classes[int(label)]]),
                score=float(score)))
        data = dict(image=image_url_prefix + pick.file_name, pool_id=pick.image_id,
                    file_name=pick.file_name, rank=pick.rank, score=pick.score)
        tasks.append(dict(data=data, predictions=[dict(
            model_version=model_version, score=float(scores.mean()) if len(scores) else 0.0,
            result=result)]))
    return tasks


def label_studio_config(classes: Sequence[str]) -> str:
    """The labeling config the tasks' results refer to: an ``Image`` named ``image`` (value
    ``$image``) and ``RectangleLabels`` named ``label`` with one ``Label`` per class."""
    labels = ''.join(f'    <Label value={quoteattr(str(c))}/>\n' for c in classes)
    return (f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
            f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}'
            f'  </RectangleLabels>\n</View>\n')


def write_to_annotate(out_dir: str, picks: Sequence[Pick],
                      predictions: Optional[Mapping[Any, Mapping[str, np.ndarray]]],
                      classes: Sequence[str], categories: Sequence[Dict[str, Any]],
                      prelabel_thr: float, header: Mapping[str, Any],
                      image_url_prefix: str = LOCAL_FILES_URL) -> Dict[str, str]:
    """Write the files of the module docstring into ``out_dir`` (atomically, each).

    Args:
        out_dir: the folder (created if missing).
        picks: the picks in rank order.
        predictions: per pool id, the detector's ``bboxes`` [K, 4] (x1 y1 x2 y2, pixels of the
            image as loaded), ``scores`` [K] and ``labels`` [K] (indices into ``classes``);
            ``None`` when there is no model yet (the first random set): no pre-labels.
        classes: the model's class names, by label index.
        categories: the pool's COCO categories.
        prelabel_thr: the score from which a detection is a pre-label (0-1).
        header: facts for the top of ``selection.json`` (step, strategy, budget, ...).
        image_url_prefix: Label Studio's URL of an image is this + its file name.

    Returns:
        ``{what: path}`` of the files written (keys of :data:`FILES`).
    """
    os.makedirs(out_dir, exist_ok=True)
    predictions = predictions or {}
    paths = {k: osp.join(out_dir, name) for k, name in FILES.items()}
    boxes = {p.image_id: len(kept_detections(predictions.get(p.image_id), prelabel_thr,
                                             p.width, p.height)[1]) for p in picks}
    atomic_write_json(paths['selection'], dict(
        header, num_images=len(picks), prelabel_thr=prelabel_thr,
        images=[dict(rank=p.rank, id=p.image_id, file_name=p.file_name, path=p.path,
                     score=p.score, width=p.width, height=p.height,
                     prelabels=boxes[p.image_id]) for p in picks]), indent=1)
    atomic_write(paths['images'], ''.join(f'{p.path}\n' for p in picks))
    step = header.get('step')
    version = f'mmdet-isal step_{step}' if step is not None else 'mmdet-isal'
    atomic_write_json(paths['prelabels'], prelabels_coco(
        picks, predictions, classes, categories, prelabel_thr,
        f'{version}: detections with score >= {prelabel_thr} of the picked images'))
    atomic_write_json(paths['label_studio'], label_studio_tasks(
        picks, predictions, classes, prelabel_thr, version, image_url_prefix), indent=1)
    atomic_write(paths['label_studio_config'], label_studio_config(classes))
    return paths
