"""One inference pass over a set of images: each image's detections and, optionally, its pooled
head features (the core-set embedding), with optional Gaussian noise on the input.

The features are the global average pooling of the detection head's classification-branch and
regression-branch feature maps (the outputs of the last conv of each branch), per FPN level,
concatenated: ``[cls level 0, ..., cls level L-1, reg level 0, ..., reg level L-1]``. Which
modules those are depends on the head class: each head family's spec names them
(:attr:`~.specs.HeadSpec.taps`, one file per family in :mod:`.specs`); the maps are caught with
forward hooks during the model's own test-time forward, so features cost nothing beyond the
detections.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmengine.dist import all_gather_object
from mmengine.structures import InstanceData

from ..utils.dist import shard
from ..utils.model import unwrap_model
from .data import BatchSequence, build_scoring_dataset
from .specs import HEAD_PATHS, get_path, head_spec


@dataclass
class ImageOutputs:
    """What :func:`detect_pool` keeps of one image.

    Attributes:
        detections: the model's test-time detections (``bboxes`` [K, 4] in original-image
            pixels, ``scores`` [K], ``labels`` [K]), on the CPU, without gradient.
        features: the pooled head features [D] (float32, CPU), or ``None`` when not asked for.
        fields: the data sample's own fields asked for with ``fields`` (tensors detached, on
            the CPU), e.g. a loss-prediction detector's ``pred_loss``.
    """
    detections: InstanceData
    features: Optional[torch.Tensor] = None
    fields: Dict[str, Any] = field(default_factory=dict)


def feature_modules(model) -> List[torch.nn.Module]:
    """The modules whose outputs :func:`detect_pool` pools: the classification branch, then the
    regression branch, of the first head of ``model`` (in :data:`~.specs.HEAD_PATHS` order)
    whose spec has :attr:`~.specs.HeadSpec.taps`.

    Raises:
        TypeError: naming the model's heads when none has taps.
    """
    seen = []
    for path in HEAD_PATHS:
        head = get_path(model, path)
        if head is None:
            continue
        seen.append(f'{path} ({type(head).__name__})')
        spec = head_spec(head)
        if spec is None or spec.taps is None:
            continue
        modules = []
        for name in spec.taps:
            module = get_path(head, name)
            if isinstance(module, torch.nn.ModuleList):
                module = module[-1] if len(module) else None
            if module is None:
                raise TypeError(f'{path} ({type(head).__name__}) has no module {name!r} '
                                f'(the taps of {type(spec).__name__}) or it is empty; add a '
                                f'HeadSpec for this head in mmdet_isal/detection/specs/')
            modules.append(module)
        return modules
    raise TypeError(f'no pooled-feature taps for the heads {", ".join(seen) or "(none found)"}:'
                    f' add a HeadSpec with taps for the head class (its classification and '
                    f'regression branch modules) in mmdet_isal/detection/specs/')


class _Pooler:
    """Forward hooks that pool each call's [B, C, H, W] output to [B, C], in call order."""

    def __init__(self, modules: Sequence[torch.nn.Module]):
        self.pooled: List[List[torch.Tensor]] = [[] for _ in modules]
        self.handles = [m.register_forward_hook(self._hook(k)) for k, m in enumerate(modules)]

    def _hook(self, k):
        def hook(module, args, output):
            if output.dim() != 4:
                raise ValueError(f'pooled-feature tap {type(module).__name__} gave an output '
                                 f'of shape {tuple(output.shape)}; expected [B, C, H, W]')
            self.pooled[k].append(output.detach().float().mean(dim=(2, 3)).cpu())
        return hook

    def take(self) -> torch.Tensor:
        """[B, D]: every tap's calls (levels) concatenated, taps in order; then reset."""
        out = torch.cat([t for calls in self.pooled for t in calls], dim=1)
        self.pooled = [[] for _ in self.pooled]
        return out

    def remove(self):
        for h in self.handles:
            h.remove()


def _to_cpu(value):
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


def add_gaussian_noise(batch: dict, sigma: float, generator: torch.Generator) -> dict:
    """``batch`` with N(0, sigma^2) noise added to every input image (pixel scale 0-255,
    before the data preprocessor's normalisation), clipped to [0, 255]; a new dict, the inputs
    become float tensors."""
    inputs = [(img.float() + sigma * torch.randn(img.shape, generator=generator)).clamp_(0, 255)
              for img in batch['inputs']]
    return dict(batch, inputs=inputs)


def detect_pool(model, cfg, ann_file: str, batch_size: int = 8, with_features: bool = False,
                noise_sigma: float = 0.0, noise_seed: Sequence[int] = (0,),
                title: Optional[str] = 'detecting',
                fields: Sequence[str] = ()) -> Dict[object, ImageOutputs]:
    """Detections (and pooled head features) of every image of ``ann_file``: one inference pass.

    The model's test-time path on the scoring pipeline
    (:func:`~mmdet_isal.detection.build_scoring_dataset`, the same images and detections
    ISAL's pseudo-labels come from); the image boxes of ``ann_file`` are never read.

    Args:
        model: an mmdet detector (a DDP wrapper is unwrapped); run in eval mode, its mode is
            restored.
        cfg: the mmengine ``Config`` the model was trained with.
        ann_file: annotation file (COCO json or VOC ImageSets list).
        batch_size: images per forward pass (results do not depend on it without noise).
        with_features: also pool the head features (:func:`feature_modules`).
        noise_sigma: standard deviation, in pixel units (0-255), of Gaussian noise added to each
            input image; 0 for none.
        noise_seed: seeds the noise (a ``torch.Generator`` seeded from these integers).
        title: progress line title; ``None`` for none.
        fields: names of further fields of each predicted data sample to keep.

    Returns:
        ``{image_id: ImageOutputs}`` in data set order, on every process: in a distributed run
        each process runs its contiguous share of the images and the outputs are gathered (the
        noise then depends on the world size, as it is drawn per batch).
    """
    if not noise_sigma >= 0:
        raise ValueError(f'noise_sigma must be >= 0 (pixel units, 0-255), got {noise_sigma!r}')
    model = unwrap_model(model)
    dataset = build_scoring_dataset(cfg, ann_file, with_boxes=False)
    batches = BatchSequence(dataset, batch_size, shard(range(len(dataset))), title=title)
    generator = torch.Generator().manual_seed(
        int(sum(int(s) * 1000003 ** k for k, s in enumerate(noise_seed)) % (2 ** 63)))
    pooler = _Pooler(feature_modules(model)) if with_features else None
    was_training = model.training
    model.eval()
    out: Dict[object, ImageOutputs] = {}
    try:
        with torch.no_grad():
            for batch in batches:
                if noise_sigma > 0:
                    batch = add_gaussian_noise(batch, noise_sigma, generator)
                samples = model.test_step(batch)
                feats = pooler.take() if pooler is not None else None
                for k, sample in enumerate(samples):
                    pred = sample.pred_instances
                    dets = InstanceData(bboxes=pred.bboxes.detach().cpu(),
                                        scores=pred.scores.detach().cpu(),
                                        labels=pred.labels.detach().cpu())
                    kept = {name: _to_cpu(getattr(sample, name)) for name in fields}
                    out[sample.metainfo['img_id']] = ImageOutputs(
                        dets, None if feats is None else feats[k].clone(), kept)
    finally:
        if pooler is not None:
            pooler.remove()
        model.train(was_training)
    return {i: o for part in all_gather_object(list(out.items())) for i, o in part}
