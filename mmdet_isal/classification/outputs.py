"""A classifier's per-image outputs over a list file: one forward pass, what every classification
strategy ranks with.

Per image: the pooled features (the input of the classifier's last linear layer, [C]), the
logits ([K]) and, for the sets whose labels are known (labeled, reference), the label. The
images go through the evaluation pipeline (no augmentation) and the model in eval mode.
"""
from typing import Any, List, NamedTuple, Optional, Sequence

import torch
from mmdet.registry import DATASETS
from mmengine.dataset import pseudo_collate
from mmengine.dist import all_gather_object
from mmengine.registry import DefaultScope

from mmdet_isal.detection.data import base_dataset_cfg
from mmdet_isal.utils.console import Progress
from mmdet_isal.utils.dist import shard
from mmdet_isal.utils.model import unwrap_model

__all__ = ['ClassifierOutputs', 'classify_list', 'list_dataset_cfg', 'image_batches']


class ClassifierOutputs(NamedTuple):
    """Outputs of a classifier over the images of a list file, in file order.

    Attributes:
        ids: the image ids (file names as the list gives them).
        features: [N, C] the inputs of the last linear layer (float32).
        logits: [N, K] its outputs.
        labels: [N] the list file's labels (long); only for sets whose labels may be read
            (labeled, reference); a strategy must not read those of the unlabeled pool (but
            for the diagnostic ``isal(labels='true')`` of a simulated run, which says so).
    """
    ids: List[Any]
    features: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor

    @property
    def probs(self) -> torch.Tensor:
        """[N, K] the softmax of the logits (float64)."""
        return self.logits.double().softmax(1)


def list_dataset_cfg(cfg, ann_file: str) -> dict:
    """The config of a data set of ``ann_file`` (an absolute list file of pool or reference
    images) for an inference pass: the training data set's config (its ``data_root``,
    ``data_prefix`` and classes: where the pool's images are) with the evaluation pipeline
    (``val_dataloader``'s) and ``test_mode``."""
    train = base_dataset_cfg(cfg.train_dataloader, 'train_dataloader.dataset')
    val = base_dataset_cfg(cfg.val_dataloader, 'val_dataloader.dataset')
    train.update(ann_file=ann_file, pipeline=val['pipeline'], test_mode=True)
    return train


def _dataset(cfg, ann_file: str):
    # the pipeline's transforms are mmdet's and mmdet_isal's: built in the config's scope also
    # outside a Runner (which would have made it the default)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope') or 'mmdet'):
        return DATASETS.build(list_dataset_cfg(cfg, ann_file))


def image_batches(model, cfg, ann_file: str, batch_size: int,
                  indices: Optional[Sequence[int]] = None):
    """The images of ``ann_file`` (those at ``indices`` of it, default all), loaded with the
    evaluation pipeline and normalised by ``model``'s data preprocessor: a generator of
    ``(inputs [B, 3, H, W], labels [B], image ids)`` batches, in file order."""
    dataset = _dataset(cfg, ann_file)
    model = unwrap_model(model)
    order = list(range(len(dataset)) if indices is None else indices)
    for start in range(0, len(order), batch_size):
        batch = pseudo_collate([dataset[k] for k in order[start:start + batch_size]])
        with torch.no_grad():
            data = model.data_preprocessor(batch, False)
        samples = data['data_samples']
        labels = torch.tensor([int(s.gt_label[0]) if 'gt_label' in s else -1 for s in samples])
        yield data['inputs'], labels, [s.metainfo['img_id'] for s in samples]


@torch.no_grad()
def classify_list(model, cfg, ann_file: str, batch_size: int = 256,
                  title: Optional[str] = None) -> ClassifierOutputs:
    """One forward pass of ``model`` (an :class:`~.model.ImageClassifier`, a wrapper is
    unwrapped; run in eval mode, its mode restored) over the images of ``ann_file``.

    Args:
        model: the trained classifier.
        cfg: the config it was trained with (data roots and the evaluation pipeline).
        ann_file: a list file of "file label" lines, absolute.
        batch_size: images per forward pass (the outputs do not depend on it).
        title: a progress line title, or None.

    Returns:
        the outputs of every image, in file order, on every process: in a distributed run each
        process classifies its contiguous share of the images and the shares are gathered.
    """
    model = unwrap_model(model)
    dataset = _dataset(cfg, ann_file)
    mine = shard(range(len(dataset)))
    was_training = model.training
    model.eval()
    ids, feats, logits, labels = [], [], [], []
    progress = Progress(title, len(mine)) if title else None
    try:
        for start in range(0, len(mine), batch_size):
            batch = pseudo_collate([dataset[k] for k in mine[start:start + batch_size]])
            data = model.data_preprocessor(batch, False)
            f = model.extract_feat(data['inputs'])
            feats.append(f.float())
            logits.append(model.fc(f).float())
            for sample in data['data_samples']:
                ids.append(sample.metainfo['img_id'])
                labels.append(int(sample.gt_label[0]) if 'gt_label' in sample else -1)
            if progress is not None:
                progress.update(len(data['data_samples']))
    finally:
        model.train(was_training)
        if progress is not None:
            progress.close()
    dim, classes = model.fc.in_features, model.fc.out_features
    parts = all_gather_object((ids, torch.cat(feats) if feats else torch.zeros(0, dim),
                               torch.cat(logits) if logits else torch.zeros(0, classes),
                               labels))  # in rank order: the shares are contiguous
    return ClassifierOutputs(
        [i for part in parts for i in part[0]], torch.cat([part[1] for part in parts]),
        torch.cat([part[2] for part in parts]),
        torch.tensor([y for part in parts for y in part[3]], dtype=torch.long))
