"""An image classifier for mmengine: a backbone from mmdet's registry (a ResNet), global average
pooling and one linear layer.

Its ``backbone`` is the same module a detector builds from the same config, so a classifier's
``backbone.*`` weights load into a detector's backbone (see
:mod:`mmdet_isal.classification.pretrain`).
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from torch import nn

__all__ = ['ImageClassifier']


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """``fc(mean over space of backbone(x)[-1])``: logits over ``num_classes`` classes.

    Args:
        backbone: config of a backbone whose last output is a feature map [B, C, H, W] (e.g.
            mmdet's ``ResNet`` with ``out_indices=(3,)``).
        num_classes: number of classes, >= 2.
        in_channels: C, the channels of the backbone's last output; default the backbone's
            ``feat_dim`` (mmdet's ResNet has it).
        data_preprocessor: e.g. ``dict(type='ImgDataPreprocessor', mean=..., std=...,
            bgr_to_rgb=True)``.
        channels_last: keep the backbone's convolution weights and its input in the channels-
            last memory layout (NHWC), which oneDNN on the CPU and cuDNN (with mixed precision)
            convolve faster: the shapes recipe's backbone (a ResNet-18 of 16 base channels),
            forward, backward and AdamW step on 64 images of 32 px on one CPU core, 0.065-0.069 s
            instead of 0.080-0.082 s. Only the memory layout changes, not the math (the
            logits agree to rounding, but a long training drifts apart, as on another
            machine). Off by default, so that a config trains as it did; the shapes recipe
            turns it on.
        init_cfg: mmengine's initialisation config.

    ``forward(inputs, data_samples, mode)``: ``'tensor'`` the logits [B, K]; ``'loss'``
    ``dict(loss=mean cross-entropy)`` against each sample's ``gt_label``; ``'predict'`` the data
    samples with ``pred_score`` (softmax, [K]), ``pred_label`` ([1]) and
    ``train_class_counts``.

    The buffer ``train_class_counts`` ([K], float64, saved in checkpoints) counts the labels of
    every sample the model took a training step on ('loss' mode in training mode), so the
    class prior the classifier learnt travels with it: :class:`~.metric.ClassificationAccuracy`
    can correct its predictions to another prior (``target_prior``), e.g. when an
    active-learning strategy picked a class mix unlike the pool's. Under DDP, which broadcasts
    the buffers of rank 0, it counts rank 0's shard of the samples (the same proportions).
    """

    def __init__(self, backbone: dict, num_classes: int, in_channels: Optional[int] = None,
                 data_preprocessor: Optional[dict] = None, channels_last: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f'ImageClassifier: num_classes must be an integer >= 2, got '
                             f'{num_classes!r}')
        self.backbone = MODELS.build(backbone)
        if in_channels is None:
            in_channels = getattr(self.backbone, 'feat_dim', None)
            if in_channels is None:
                raise ValueError(f'ImageClassifier: {type(self.backbone).__name__} has no '
                                 f'feat_dim; give in_channels (the channels of its last output)')
        self.num_classes = num_classes
        self.fc = nn.Linear(in_channels, num_classes)
        self.register_buffer('train_class_counts', torch.zeros(num_classes, dtype=torch.float64))
        self.channels_last = bool(channels_last)
        if self.channels_last:
            # initialisation and checkpoint loading write into the parameters in place, so the
            # layout stays
            self.backbone.to(memory_format=torch.channels_last)

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled features [B, C]: the mean over space of the backbone's last output."""
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.backbone(inputs)[-1].mean((2, 3))

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List] = None,
                mode: str = 'tensor') -> Union[torch.Tensor, Dict[str, torch.Tensor], List]:
        logits = self.fc(self.extract_feat(inputs))
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            labels = gt_labels(data_samples)
            loss = F.cross_entropy(logits, labels)
            if self.training:
                with torch.no_grad():
                    self.train_class_counts += torch.bincount(
                        labels, minlength=self.num_classes).to(self.train_class_counts)
            return dict(loss=loss)
        if mode == 'predict':
            samples = self.predictions(logits, data_samples)
            counts = self.train_class_counts.detach().clone()
            for sample in samples:
                sample.train_class_counts = counts
            return samples
        raise ValueError(f'ImageClassifier: mode must be "tensor", "loss" or "predict", got '
                         f'{mode!r}')

    @staticmethod
    def predictions(logits: torch.Tensor, data_samples: Optional[Sequence] = None) -> List:
        """The data samples (new ones without) with ``pred_score`` and ``pred_label``."""
        scores = logits.softmax(1).detach()
        samples = list(data_samples) if data_samples is not None else \
            [BaseDataElement() for _ in range(len(logits))]
        for sample, score in zip(samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax().view(1)
        return samples


def gt_labels(data_samples: Sequence) -> torch.Tensor:
    """The ``gt_label`` of each data sample, as one long tensor [B]."""
    missing = [k for k, s in enumerate(data_samples) if 'gt_label' not in s]
    if missing:
        raise ValueError(f'data samples {missing[:5]} have no gt_label; the loss needs the '
                         f'label of every sample')
    return torch.cat([s.gt_label for s in data_samples]).long()
