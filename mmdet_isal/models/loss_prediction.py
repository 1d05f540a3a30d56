"""Learning loss (Yoo & Kweon, "Learning Loss for Active Learning", CVPR 2019): a small module
on the detector's FPN maps learns, while the detector trains, to predict each image's detection
loss; the images with the largest predicted loss are the ones to label.

:class:`LossPredictionDetector` wraps any mmdet detector with a spec in
:mod:`~mmdet_isal.detection.specs` (a config turns it on, see
``configs/toy/fcos_shapes_learning_loss_al.py``). The detector trains exactly as without it: the
module reads the FPN maps detached (its gradient stops at the backbone and neck) and learns
from the detached per-image losses, so only its own weights get the ranking loss's gradient.
"""
from typing import List, Sequence, Tuple

import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.models.utils import unpack_gt_instances
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet_isal.detection.patches import loss_mode
from mmdet_isal.detection.specs import detector_spec
from mmdet_isal.influence.checks import check_int, check_number


def margin_ranking_loss(pred: Tensor, target: Tensor, margin: float = 1.0) -> Tensor:
    """The loss-prediction loss of Yoo & Kweon: a batch of B images makes the B // 2 pairs
    (i, B-1-i); each pair costs max(0, margin - sign(l_i - l_j) (p_i - p_j)) with l the true
    and p the predicted losses (sign(0) counts as -1, as in the authors' code); the mean over
    pairs. A single image gives 0.

    Args:
        pred: [B] predicted losses.
        target: [B] true losses (no gradient is taken through them).
        margin: the margin xi (paper: 1).
    """
    if pred.shape != target.shape or pred.dim() != 1:
        raise ValueError(f'margin_ranking_loss: pred and target must be [B] tensors of one '
                         f'shape, got {tuple(pred.shape)} and {tuple(target.shape)}')
    half = pred.shape[0] // 2
    if half == 0:
        return pred.sum() * 0
    dp = (pred - pred.flip(0))[:half]
    dl = (target - target.flip(0)).detach()[:half]
    sign = 2 * torch.sign(torch.clamp(dl, min=0)) - 1
    return torch.clamp(margin - sign * dp, min=0).mean()


@MODELS.register_module()
class LossPredictionModule(BaseModule):
    """Per FPN level: global average pooling, a linear layer to ``hidden`` units and a ReLU;
    the levels concatenated and a linear layer to one number, the predicted loss.

    Args:
        in_channels: channels of every level's map (the neck's ``out_channels``).
        num_levels: number of FPN levels.
        hidden: units per level (paper: 128).
    """

    def __init__(self, in_channels: int, num_levels: int, hidden: int = 128, init_cfg=None):
        super().__init__(init_cfg)
        for name, value in (('in_channels', in_channels), ('num_levels', num_levels),
                            ('hidden', hidden)):
            check_int(value, name, minimum=1, owner='LossPredictionModule')
        self.num_levels = num_levels
        self.levels = nn.ModuleList(nn.Linear(in_channels, hidden) for _ in range(num_levels))
        self.out = nn.Linear(hidden * num_levels, 1)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """[B] predicted losses from the ``num_levels`` maps [B, C, H, W]."""
        if len(feats) != self.num_levels:
            raise ValueError(f'LossPredictionModule expects {self.num_levels} feature levels '
                             f'(num_levels), got {len(feats)}')
        pooled = [torch.relu(fc(x.mean(dim=(2, 3)))) for fc, x in zip(self.levels, feats)]
        return self.out(torch.cat(pooled, dim=1)).squeeze(1)


@MODELS.register_module()
class LossPredictionDetector(BaseDetector):
    """A detector with a learning-loss module on its FPN maps.

    Training adds ``loss_pred = loss_weight * margin_ranking_loss(predicted, true)`` to the
    detector's own losses, the true loss of an image being its detection loss on its own
    (the sum of the loss terms of :func:`~mmdet_isal.detection.specs.detector_spec`'s
    ``image_loss``, computed from the same forward, without gradient). Prediction returns the
    detector's detections with each data sample's ``pred_loss`` (a 0-dim tensor) set.

    Args:
        detector: the mmdet detector's config (its own ``data_preprocessor`` is used).
        loss_module: the :class:`LossPredictionModule` config; ``in_channels`` and
            ``num_levels`` default to the neck's ``out_channels`` and ``num_outs``.
        loss_weight: lambda, the ranking loss's weight (paper: 1).
        margin: xi, the ranking margin (paper: 1).
    """

    def __init__(self, detector: dict, loss_module: dict = None, loss_weight: float = 1.0,
                 margin: float = 1.0, init_cfg=None):
        for name, value in (('loss_weight', loss_weight), ('margin', margin)):
            check_number(value, name, minimum=0, owner='LossPredictionDetector')
        super().__init__(data_preprocessor=None, init_cfg=init_cfg)
        self.detector = MODELS.build(detector)
        # the detector's preprocessor does the batching and normalisation of both
        self.data_preprocessor = self.detector.data_preprocessor
        module = dict(type='LossPredictionModule', **(loss_module or {}))
        neck = detector.get('neck') or {}
        module.setdefault('in_channels', neck.get('out_channels'))
        module.setdefault('num_levels', neck.get('num_outs'))
        if module['in_channels'] is None or module['num_levels'] is None:
            raise ValueError('LossPredictionDetector: give loss_module=dict(in_channels=..., '
                             'num_levels=...) (the detector config has no neck with '
                             'out_channels and num_outs to take them from)')
        self.loss_module = MODELS.build(module)
        self.loss_weight = float(loss_weight)
        self.margin = float(margin)
        detector_spec(self.detector)  # an unsupported detector fails now, before training

    def _feature_source(self) -> nn.Module:
        return self.detector.neck if self.detector.with_neck else self.detector.backbone

    def _run_catching_feats(self, fn, *args) -> Tuple[object, Tuple[Tensor, ...]]:
        """``fn(*args)`` and the FPN maps its forward computed (caught by a forward hook)."""
        caught: List[Tuple[Tensor, ...]] = []
        handle = self._feature_source().register_forward_hook(
            lambda module, inputs, output: caught.append(tuple(output)))
        try:
            result = fn(*args)
        finally:
            handle.remove()
        if len(caught) != 1:
            raise RuntimeError(f'expected one forward of {type(self._feature_source()).__name__}'
                               f' per batch, caught {len(caught)}')
        return result, caught[0]

    def extract_feat(self, batch_inputs: Tensor):
        return self.detector.extract_feat(batch_inputs)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        return self.detector._forward(batch_inputs, batch_data_samples)

    def image_losses(self, feats: Sequence[Tensor], batch_data_samples) -> Tensor:
        """[B] detection loss of each image on its own, without gradient."""
        spec = detector_spec(self.detector)
        gts, gts_ignore, metas = unpack_gt_instances(batch_data_samples)
        with torch.no_grad(), loss_mode(self.detector):  # training outputs, also in eval
            feats = tuple(f.detach() for f in feats)
            outs = spec.head_outputs(self.detector, feats)
            return torch.stack([
                spec.image_loss(self.detector, feats, outs, i, gts[i], gts_ignore[i],
                                metas[i]).detach() for i in range(len(metas))])

    def loss(self, batch_inputs: Tensor, batch_data_samples) -> dict:
        losses, feats = self._run_catching_feats(self.detector.loss, batch_inputs,
                                                 batch_data_samples)
        target = self.image_losses(feats, batch_data_samples)
        pred = self.loss_module([f.detach() for f in feats])
        losses['loss_pred'] = self.loss_weight * margin_ranking_loss(pred, target, self.margin)
        return losses

    def predict(self, batch_inputs: Tensor, batch_data_samples, rescale: bool = True):
        samples, feats = self._run_catching_feats(self.detector.predict, batch_inputs,
                                                  batch_data_samples, rescale)
        pred = self.loss_module(feats)
        for sample, p in zip(samples, pred):
            sample.pred_loss = p.detach()
        return samples
