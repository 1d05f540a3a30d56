"""Per-image detection losses of mmdet 3.x detectors, twice differentiable on every device.

mmdet computes one loss for a whole batch: dense heads divide by the number of positives over
the batch (and over ranks through ``reduce_mean``), samplers draw from the global RNG, and
images are padded to the largest one. A per-sample influence needs the loss of each image on
its own, the same whatever shares its batch. :func:`per_image_losses` gets it by

- running the data preprocessor and the backbone once per group of images of the same padded
  size (so padding never depends on the neighbours),
- running the heads once per group, then calling the heads' own ``loss_by_feat`` /
  ``roi_head.loss`` on each image's slice of the outputs (each image has its own normaliser),
  or, for heads whose loss :mod:`.batched` reproduces (FCOS), computing every image's loss of
  the group in one vectorised call with per-image reductions,
- computing those outputs as training computes them (:func:`loss_mode`; the detections that
  become pseudo-labels come from the inference outputs), with batch norm kept in eval mode,
- making ``reduce_mean`` the identity and seeding every random sampler from the image id,
- routing mmdet's ``FocalLoss`` around mmcv's compiled once-differentiable CUDA kernel.

Dividing each image by its own counts inflates images with few positives; with a
:class:`~.normalizer.LossNormalizer` (measured by :func:`measure_normalizer` on labeled images)
every image is divided by the same counts instead.

What differs between detector families is data: :data:`DETECTOR_ADAPTERS` maps a detector
class (looked up along its MRO) to the adapter that knows its heads.
"""
import contextlib
import inspect
import sys
import zlib
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..influence.layerwise import sample_rows
from .batched import describe as describe_group_losses
from .batched import group_losses as batched_group_losses
from .normalizer import LossNormalizer, normalizer_from_calls, record_avg_factors

SUPPORTED_HINT = ('mmdet-isal supports single-stage detectors with a dense bbox_head and '
                  'two-stage detectors with an RPN and a standard RoI head')


def sum_detection_losses(losses: Dict[str, object]) -> Tensor:
    """Sum the entries of an mmdet loss dict whose key contains ``'loss'``.

    Accuracy entries (``acc``, ``loss_cls`` stays, ``acc`` does not) are left out: they are not
    losses. Values may be tensors or (nested) lists of tensors, as some heads return per level.
    """
    total = None
    for key, value in losses.items():
        if 'loss' not in key:
            continue
        for term in _flatten(value):
            total = term.sum() if total is None else total + term.sum()
    if total is None:
        raise ValueError(f'the loss dict has no entry whose key contains "loss": {list(losses)}')
    return total


def _flatten(value):
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flatten(item)
    else:
        yield value


# ----------------------------------------------------------------------------- stack patches
def _twice_differentiable_sigmoid_focal_loss(pred, target, weight=None, gamma=2.0,
                                             alpha=0.25, reduction='mean', avg_factor=None):
    """Drop-in for mmdet's CUDA ``sigmoid_focal_loss`` built from torch ops only.

    Same maths as mmdet's CPU branch (one-hot target, ``py_sigmoid_focal_loss``), so CPU and
    CUDA give the same loss, and double backward works on both.
    """
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
    num_classes = pred.size(1)
    one_hot = torch.nn.functional.one_hot(target, num_classes=num_classes + 1)[:, :num_classes]
    return py_sigmoid_focal_loss(pred, one_hot.type_as(pred), weight, gamma=gamma, alpha=alpha,
                                 reduction=reduction, avg_factor=avg_factor)


def _identity(tensor):
    return tensor


#: regression losses with a kink where the prediction equals its target (the IoU family's
#: min/max of coordinates, L1's absolute value): ``module: [function names]``
KINKED_LOSSES = {
    'mmdet.models.losses.iou_loss': ['iou_loss', 'bounded_iou_loss', 'giou_loss', 'diou_loss',
                                     'ciou_loss', 'eiou_loss', 'siou_loss'],
    'mmdet.models.losses.smooth_l1_loss': ['l1_loss'],
}
#: a target this close to its prediction (relative to 1 + |target|) is taken as equal
TIE_TOLERANCE = 1e-4


def exact_ties(pred: Tensor, target: Tensor) -> Tensor:
    """``target`` with every entry within :data:`TIE_TOLERANCE` of ``pred`` replaced by the
    (detached) prediction itself.

    A pseudo-label is the detector's own prediction: at the location that produced a pseudo
    box, the regression's prediction and target agree up to float rounding, the loss is at its
    minimum, and an IoU or L1 loss has a kink there whose one-sided derivatives have opposite
    signs. Which side autograd takes then depends on rounding, and rounding on the batch (a
    convolution over 8 images rounds differently from one over 1): measured on the tiny FCOS,
    the bbox part of an image's gradient changed by 23 % with its batch. An exact tie makes
    ``torch.maximum``/``minimum`` split the gradient evenly and ``abs`` take 0: the symmetric
    subgradient, 0, for those coordinates, whatever the batch. Loss values move by at most the
    tolerance.
    """
    if not isinstance(target, Tensor) or target.shape != pred.shape:
        return target
    fixed = pred.detach()
    close = (fixed - target).abs() <= TIE_TOLERANCE * (1 + target.abs())
    return torch.where(close, fixed, target)


def _with_exact_ties(loss_fn):
    def loss(pred, target, *args, **kwargs):
        return loss_fn(pred, exact_ties(pred, target), *args, **kwargs)

    loss.__wrapped__ = loss_fn
    return loss


# (number of modules in sys.modules when scanned, the mmdet modules holding reduce_mean)
_REDUCE_MEAN_SCAN = (-1, [])


def _reduce_mean_users() -> list:
    """The ``mmdet.*`` modules that imported ``mmdet.utils.reduce_mean``.

    Scanning ``sys.modules`` cost 5 % of a LiSSA iteration on the tiny FCOS, so the result is
    kept until a module is imported or removed.
    """
    global _REDUCE_MEAN_SCAN
    from mmdet.utils import reduce_mean
    if _REDUCE_MEAN_SCAN[0] != len(sys.modules):
        users = [module for name, module in list(sys.modules.items())
                 if name.startswith('mmdet.') and getattr(module, 'reduce_mean', None)
                 is reduce_mean]
        _REDUCE_MEAN_SCAN = (len(sys.modules), users)
    return _REDUCE_MEAN_SCAN[1]


@contextlib.contextmanager
def scoring_mode():
    """Patch mmdet for per-image, twice-differentiable losses; restore everything on exit.

    - ``mmdet.models.losses.focal_loss.sigmoid_focal_loss`` (mmcv's compiled kernel, whose
      backward is once-differentiable) becomes a torch-only equivalent;
    - every ``reduce_mean`` imported into ``mmdet.models`` becomes the identity, so that a
      normaliser is never averaged across ranks (each rank scores different images);
    - the regression losses of :data:`KINKED_LOSSES` take targets within rounding of their
      predictions as exactly equal (:func:`exact_ties`).
    """
    import importlib
    import mmdet.models.losses.focal_loss as focal_module
    patches = [(focal_module, 'sigmoid_focal_loss', _twice_differentiable_sigmoid_focal_loss)]
    for module_name, names in KINKED_LOSSES.items():
        module = importlib.import_module(module_name)
        patches += [(module, name, _with_exact_ties(getattr(module, name))) for name in names
                    if hasattr(module, name)]
    patches += [(module, 'reduce_mean', _identity) for module in _reduce_mean_users()]
    saved = [(module, attr, getattr(module, attr)) for module, attr, _ in patches]
    try:
        for module, attr, new in patches:
            setattr(module, attr, new)
        yield
    finally:
        for module, attr, old in saved:
            setattr(module, attr, old)


def image_seed(seed: int, data_sample) -> int:
    """A seed for one image's random samplers: a stable hash of the run seed and the image id."""
    return zlib.crc32(f'{seed}:{_image_key(data_sample)}'.encode())


def _image_key(data_sample):
    """The image id (or path) of a data sample: what seeds and caches are keyed by."""
    meta = data_sample.metainfo
    key = meta.get('img_id', meta.get('img_path'))
    if key is None:
        raise ValueError('a data sample has neither "img_id" nor "img_path" in its metainfo; '
                         'add them to PackDetInputs meta_keys so that samplers can be seeded')
    return key


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with torch's RNGs set to ``seed``: the CPU one and, once CUDA is in use,
    every CUDA device's.

    mmdet's samplers draw from the RNG of the device their tensors live on (``randperm`` on
    CUDA tensors uses the CUDA generator), so every device in use is seeded, and its state is
    restored afterwards, so that scoring leaves training's random streams as it found them.
    The generators are seeded directly: ``torch.manual_seed`` would also queue lazy seeds for
    every uninitialised backend, recording a Python stack trace each time, which cost 7 % of a
    scoring pass on the tiny FCOS.
    """
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        if cuda:
            torch.cuda.manual_seed_all(seed)
        yield


#: the detector attributes that hold its heads
HEAD_ATTRS = ('bbox_head', 'rpn_head', 'roi_head')


def _head_objects(model) -> List[torch.nn.Module]:
    """The mmdet heads of ``model`` (mmengine ``BaseModule`` classes named ``*Head``, e.g.
    ``FCOSHead``, ``RPNHead``, ``StandardRoIHead`` and its ``Shared2FCBBoxHead``), not their
    layers."""
    from mmengine.model import BaseModule
    found = []
    for name in HEAD_ATTRS:
        head = getattr(model, name, None)
        if head is not None:
            found += [m for m in head.modules()
                      if isinstance(m, BaseModule) and type(m).__name__.endswith('Head')]
    return found


@contextlib.contextmanager
def loss_mode(model):
    """Within the block, the heads of ``model`` compute their training outputs.

    Some heads return other outputs at inference: FCOS with ``norm_on_bbox`` multiplies its
    box regression by the stride when ``self.training`` is False, for decoding, while its loss
    compares the undivided regression with targets divided by the stride. The loss of an image
    is the training objective's, so the heads' own ``training`` flags are set while it is
    computed. Their layers (batch norm, dropout) keep theirs: with the model in eval mode an
    image's loss stays independent of its batch and deterministic.
    """
    heads = [m for m in _head_objects(model) if not m.training]
    try:
        for m in heads:
            m.training = True
        yield
    finally:
        for m in heads:
            m.training = False


@contextlib.contextmanager
def _instance_patches(patches: Sequence[Tuple[object, str, object]]):
    """Within the block, each ``(obj, name, value)`` is an attribute of the instance ``obj``,
    hiding its class's; removed afterwards, also on errors."""
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, _ in patches:
            vars(obj).pop(name, None)


def _priors_key(signature: inspect.Signature, args: tuple, kwargs: dict) -> Optional[tuple]:
    """``grid_priors``' arguments, defaults filled in, as a key (feature map sizes, dtype,
    device, flags), or ``None``."""
    def plain(value):
        if isinstance(value, (list, tuple, torch.Size)):
            return tuple(plain(v) for v in value)
        if isinstance(value, dict):  # **kwargs
            return tuple(sorted((k, plain(v)) for k, v in value.items()))
        if isinstance(value, str):  # a device
            return torch.device(value)
        if isinstance(value, (int, float, bool, torch.dtype, torch.device)):
            return value
        raise TypeError(value)
    try:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return tuple((k, plain(v)) for k, v in bound.arguments.items())
    except TypeError:
        return None


@contextlib.contextmanager
def memoized_priors(model):
    """Within the block, the heads' prior generators (anchors, points) compute the priors of a
    set of feature map sizes once.

    The images of a group share their padded size, so their anchors and points are the same;
    mmdet's per-image losses and proposals otherwise rebuild them for every image. The same
    tensors are returned again (as mmdet itself hands one anchor list to every image of a
    batch), unless one was changed in place since.
    """
    generators = {id(g): g for g in (getattr(m, 'prior_generator', None)
                                     for m in _head_objects(model))
                  if g is not None and callable(getattr(g, 'grid_priors', None))}

    def memoized(grid_priors):
        calls: Dict[tuple, tuple] = {}
        signature = inspect.signature(grid_priors)

        def memo_grid_priors(*args, **kwargs):
            key = _priors_key(signature, args, kwargs)
            entry = calls.get(key) if key is not None else None
            if entry is not None and all(t._version == v for t, v in zip(*entry)):
                return list(entry[0])
            priors = grid_priors(*args, **kwargs)
            if key is not None and isinstance(priors, list) \
                    and all(isinstance(t, Tensor) for t in priors):
                calls[key] = (list(priors), [t._version for t in priors])
            return priors

        return memo_grid_priors

    with _instance_patches([(g, 'grid_priors', memoized(g.grid_priors))
                            for g in generators.values() if 'grid_priors' not in vars(g)]):
        yield


# ----------------------------------------------------------------------------- adapters
def _map_tensors(fn, outs):
    """Apply ``fn`` to every tensor of a head's outputs (tensors nested in tuples/lists)."""
    if isinstance(outs, Tensor):
        return fn(outs)
    if isinstance(outs, (list, tuple)):
        return type(outs)(_map_tensors(fn, o) for o in outs)
    return outs


def _slice(outs, i: int):
    """Image ``i`` of a head's outputs: every tensor has the batch as its first dimension."""
    return _map_tensors(lambda t: t[i:i + 1], outs)


class DenseHeadAdapter:
    """Single-stage detectors (FCOS, RetinaNet, ATSS, ...): ``model.bbox_head`` is dense."""

    def head_outputs(self, model, feats):
        return model.bbox_head(feats)

    def predict(self, model, feats, outs, img_metas):
        return model.bbox_head.predict_by_feat(*outs, batch_img_metas=img_metas, rescale=False)

    def image_loss(self, model, feats, outs, i, gt, gt_ignore, img_meta):
        losses = model.bbox_head.loss_by_feat(*_slice(outs, i), [gt], [img_meta], [gt_ignore])
        return sum_detection_losses(losses)

    def group_losses(self, model, outs, gts, normalizer, per_image):
        """Every image's loss in one vectorised call (:mod:`.batched`), or ``None``."""
        return batched_group_losses(model.bbox_head, 'bbox_head.', outs, gts, normalizer,
                                    per_image)

    def loss_path(self, model) -> str:
        """``'vectorised'`` or ``'per_image (reason)'``."""
        return describe_group_losses(model.bbox_head)


class TwoStageAdapter:
    """Two-stage detectors with an RPN (Faster R-CNN, ...): RPN loss plus RoI-head loss.

    The RPN sees class-agnostic targets (labels 0) and the RoI head trains on the RPN's
    training proposals (``train_cfg.rpn_proposal``), exactly as ``TwoStageDetector.loss``.
    Pseudo-labels come from the test-time path (``test_cfg.rpn``, ``roi_head.predict``).
    """

    def head_outputs(self, model, feats):
        return model.rpn_head(feats)

    def predict(self, model, feats, outs, img_metas):
        from mmdet.structures import DetDataSample
        proposals = model.rpn_head.predict_by_feat(
            *outs, batch_img_metas=img_metas, cfg=model.test_cfg.rpn, rescale=False)
        samples = [DetDataSample(metainfo=meta) for meta in img_metas]
        return model.roi_head.predict(feats, proposals, samples, rescale=False)

    def image_loss(self, model, feats, outs, i, gt, gt_ignore, img_meta):
        from mmdet.structures import DetDataSample
        rpn_gt = gt.clone()
        rpn_gt.labels = torch.zeros_like(gt.labels)
        outs_i = _slice(outs, i)
        rpn_losses = model.rpn_head.loss_by_feat(*outs_i, [rpn_gt], [img_meta], [gt_ignore])
        proposal_cfg = model.train_cfg.get('rpn_proposal', model.test_cfg.rpn)
        proposals = model.rpn_head.predict_by_feat(
            *outs_i, batch_img_metas=[img_meta], cfg=proposal_cfg, rescale=False)
        sample = DetDataSample(metainfo=img_meta)
        sample.gt_instances = gt
        sample.ignored_instances = gt_ignore
        roi_losses = model.roi_head.loss(_slice(feats, i), proposals, [sample])
        return sum_detection_losses(rpn_losses) + sum_detection_losses(roi_losses)

    def group_losses(self, model, outs, gts, normalizer, per_image):
        """``None``: the RPN's and RoI head's samplers draw per image (seeded by its id)."""
        return None

    def loss_path(self, model) -> str:
        return 'per_image (two-stage: the samplers draw per image)'


# Looked up along the detector's MRO, most specific first; add an entry to support more.
DETECTOR_ADAPTERS = {
    'TwoStageDetector': TwoStageAdapter,
    'SingleStageDetector': DenseHeadAdapter,
}


def detector_adapter(model):
    """The adapter of :data:`DETECTOR_ADAPTERS` for ``model``'s class, or a clear error."""
    for cls in type(model).__mro__:
        if cls.__name__ in DETECTOR_ADAPTERS:
            return DETECTOR_ADAPTERS[cls.__name__]()
    raise TypeError(f'no per-image loss for detector type {type(model).__name__}: '
                    f'{SUPPORTED_HINT} (mmdet_isal.detection.losses.DETECTOR_ADAPTERS).')


# ----------------------------------------------------------------------------- feature cache
class FeatureCache:
    """Features of labeled images that do not depend on the selected parameters, kept across
    LiSSA iterations.

    LiSSA draws the same Hessian batches again and again (every repeat passes over them, and
    power iteration visits its batches once per iteration), while the backbone, the neck and
    every head layer before the selected ones are frozen: in eval mode their outputs for an
    image never change during scoring. Given to :func:`per_image_losses`, the cache keeps

    - per group of images of one padded size, the preprocessed data samples and the backbone
      and neck features, so that the next call on the same images skips the data preprocessor
      and ``extract_feat``;
    - for every head submodule without a selected parameter (FCOS's towers, the RPN's
      shared conv), its output when it was called on tensors the cache holds (the features,
      or another stored output), so the towers run once per image too.

    The results are the same tensors, so losses and their derivatives are bitwise those of an
    uncached call. A stored tensor changed in place since (its version counter moved) is
    dropped and recomputed.

    The cache is bypassed (counted in ``bypassed``) while the model is in train mode or while a
    backbone or neck parameter requires grad (a selection reaching into them).

    Args:
        max_bytes: stop storing once the cached tensors hold this many bytes (``0``: never
            store). What does not fit is computed every time.

    Attributes:
        hits, misses, bypassed: groups served from the cache, computed (and stored while room
            was left), computed without the cache.
        head_hits: head submodule calls served from the cache.
        nbytes: bytes of the cached tensors.
    """

    def __init__(self, max_bytes: int = 2**30):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f'FeatureCache: max_bytes must be an integer >= 0, got '
                             f'{max_bytes!r}')
        self.max_bytes = max_bytes
        self._groups: Dict[tuple, tuple] = {}
        # id(input tensors) -> (inputs, output, output version), per module; holding the
        # inputs keeps their ids from being reused
        self._calls: Dict[int, Dict[tuple, tuple]] = {}
        self._known: Dict[int, Tensor] = {}  # id -> tensor the cache holds
        self.nbytes = 0
        self.hits = self.misses = self.bypassed = self.head_hits = 0

    def __len__(self):
        return len(self._groups)

    def __repr__(self):
        return (f'FeatureCache({len(self)} groups, {self.nbytes / 2**20:.1f} MiB of '
                f'{self.max_bytes / 2**20:.0f}; hits {self.hits}, misses {self.misses}, '
                f'bypassed {self.bypassed}, head hits {self.head_hits})')

    @staticmethod
    def usable(model) -> bool:
        """Whether ``model``'s features may be cached now (eval mode, frozen backbone/neck)."""
        if model.training:
            return False
        frozen = (getattr(model, name, None) for name in ('backbone', 'neck'))
        return not any(p.requires_grad for module in frozen if module is not None
                       for p in module.parameters())

    def _room(self, tensors: List[Tensor]) -> bool:
        size = sum(t.numel() * t.element_size() for t in tensors)
        if self.nbytes + size > self.max_bytes:
            return False
        self.nbytes += size
        for t in tensors:
            self._known[id(t)] = t
        return True

    def features(self, model, inputs: List[Tensor], samples: list):
        """``(data samples, features)`` of one group: preprocessed and ``extract_feat``-ed, or
        taken from the cache."""
        if not self.usable(model):
            self.bypassed += 1
            return _preprocess_and_extract(model, inputs, samples)
        key = tuple(_image_key(sample) for sample in samples) + tuple(
            tuple(img.shape) for img in inputs)
        cached = self._groups.get(key)
        if cached is not None:
            if [t._version for t in _flat_tensors(cached[1])] == cached[2]:
                self.hits += 1
                return cached[0], cached[1]
            del self._groups[key]  # changed in place since: recompute, do not store again
            self.misses += 1
            return _preprocess_and_extract(model, inputs, samples)
        self.misses += 1
        out_samples, feats = _preprocess_and_extract(model, inputs, samples)
        feats = _map_tensors(Tensor.detach, feats)
        if self._room(_flat_tensors(feats)):
            self._groups[key] = (out_samples, feats, [t._version for t in _flat_tensors(feats)])
        return out_samples, feats

    def _frozen_head_modules(self, model) -> List[torch.nn.Module]:
        """The largest head submodules with parameters, none of them requiring grad."""
        found = []

        def visit(module):
            params = list(module.parameters())
            if not params:
                return  # losses, activations: nothing to save
            if any(p.requires_grad for p in params) or isinstance(
                    module, (torch.nn.ModuleList, torch.nn.ModuleDict)):
                for child in module.children():
                    visit(child)
            elif 'forward' not in vars(module):
                found.append(module)

        for name in HEAD_ATTRS:
            head = getattr(model, name, None)
            if head is not None:
                for child in head.children():
                    visit(child)
        return found

    def _key(self, args: tuple, kwargs: dict) -> Optional[tuple]:
        """The key of a call whose positional arguments are all tensors the cache holds (their
        ids), or ``None``: a call that cannot be memoised."""
        if kwargs or not args or not all(isinstance(a, Tensor) and self._known.get(id(a)) is a
                                         for a in args):
            return None
        return tuple(id(a) for a in args)

    def _memoized(self, module, forward):
        calls = self._calls.setdefault(id(module), {})

        def memo_forward(*args, **kwargs):
            key = self._key(args, kwargs)
            if key is None:
                return forward(*args, **kwargs)
            entry = calls.get(key)
            if entry is not None and entry[1]._version == entry[2]:
                self.head_hits += 1
                return entry[1]
            out = forward(*args)
            if isinstance(out, Tensor) and not out.requires_grad and self._room([out]):
                calls[key] = (args, out, out._version)
            return out

        return memo_forward

    @staticmethod
    def _trainable_head_layers(model) -> List[torch.nn.Module]:
        """The head layers (modules without submodules) with a parameter requiring grad."""
        return [m for name in HEAD_ATTRS if getattr(model, name, None) is not None
                for m in getattr(model, name).modules()
                if not any(True for _ in m.children())
                and any(p.requires_grad for p in m.parameters(recurse=False))]

    def _copied_without_grad(self, forward):
        """``forward`` whose output for inputs the cache holds, computed with gradients, is
        returned as a copy to a later call with the same inputs without gradients."""
        calls: Dict[tuple, tuple] = {}

        def memo_forward(*args, **kwargs):
            key = self._key(args, kwargs)
            if key is None:
                return forward(*args, **kwargs)
            if torch.is_grad_enabled():
                out = forward(*args)
                if isinstance(out, Tensor):
                    calls[key] = (args, out, out._version)
                return out
            entry = calls.get(key)
            if entry is not None and entry[1]._version == entry[2]:
                self.head_hits += 1
                # a copy: changing it in place must not change what the loss differentiates
                return entry[1].detach().clone()
            return forward(*args)

        return memo_forward

    @contextlib.contextmanager
    def memoized_heads(self, model, selected: bool = False):
        """Within the block, the frozen head submodules of ``model`` called on tensors the
        cache holds return their stored outputs (computing and storing them the first
        time). Nothing is patched when the cache is not :meth:`usable`.

        With ``selected``, the head layers with parameters requiring grad (the selected ones)
        also hand an output computed with gradients to a later call without gradients on the
        same inputs, as a copy: the pool pass computes the heads' training outputs first and
        their inference outputs (for the detections) from the same layer outputs. The block
        keeps those outputs, and so their graphs, alive: for one group only.
        """
        usable = self.usable(model)
        patches = [(m, 'forward', self._memoized(m, m.forward)) for m in
                   (self._frozen_head_modules(model) if usable else [])]
        if selected and usable:
            patches += [(m, 'forward', self._copied_without_grad(m.forward))
                        for m in self._trainable_head_layers(model)]
        with _instance_patches(patches):
            yield


def _flat_tensors(outs):
    if isinstance(outs, Tensor):
        return [outs]
    return [t for o in outs for t in _flat_tensors(o)]


def _preprocess_and_extract(model, inputs: List[Tensor], samples: list):
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=False)
    return data['data_samples'], model.extract_feat(data['inputs'])


# ----------------------------------------------------------------------------- entry point
def _padded_shape(img: Tensor, divisor: int):
    h, w = img.shape[-2:]
    return (-(-h // divisor) * divisor, -(-w // divisor) * divisor) if divisor > 1 else (h, w)


def _groups_by_padded_shape(model, inputs: Sequence[Tensor]) -> List[List[int]]:
    """Indices of the batch grouped by the padded size each image would get on its own."""
    divisor = int(getattr(model.data_preprocessor, 'pad_size_divisor', 1) or 1)
    groups: Dict[tuple, List[int]] = {}
    for i, img in enumerate(inputs):
        groups.setdefault(_padded_shape(img, divisor), []).append(i)
    return list(groups.values())


def per_image_losses(model,
                     data_batch: dict,
                     *,
                     pseudo_label_fn: Optional[Callable] = None,
                     seed: int = 0,
                     records: Optional[list] = None,
                     normalizer: Optional[LossNormalizer] = None,
                     feature_cache: Optional['FeatureCache'] = None) -> Tensor:
    """One detection loss per image of an mmdet batch, independent of the rest of the batch.

    Args:
        model: an mmdet detector (not wrapped in DDP), normally in eval mode: batch norm in train
            mode would make an image's loss depend on its batch.
        data_batch: what an mmdet DataLoader yields, ``dict(inputs=[CHW uint8 tensors],
            data_samples=[DetDataSample])``; the model's data preprocessor is run here.
        pseudo_label_fn: ``None`` to use each sample's ``gt_instances`` as targets. Otherwise a
            function ``(pred_instances) -> InstanceData`` turning the model's own detections of
            the image into its targets; detections and loss then come from one backbone and
            head forward.
        seed: seeds each image's random samplers together with its image id, so that a score
            does not vary between runs.
        records: if a list is given, one dict per image is appended (``img_id``,
            ``num_targets``) in batch order.
        normalizer: ``None`` divides each image's loss terms by the image's own counts (its
            positives, sampled anchors or RoIs: mmdet's normalisation on a batch of one). A
            :class:`LossNormalizer` divides every image by the same fixed counts, one per loss
            module (see :func:`measure_normalizer`).
        feature_cache: a :class:`FeatureCache` to take the backbone and neck features of
            images seen before from (and to store new ones in): for batches drawn again and
            again, such as LiSSA's Hessian batches. Results do not change.

    Returns:
        Tensor of shape (B,): the sum of the detection losses (keys containing ``'loss'``) of
        each image, in batch order, differentiable with respect to the model's parameters.
    """
    if normalizer is not None and not isinstance(normalizer, LossNormalizer):
        raise TypeError(f'normalizer must be None or a LossNormalizer (measure_normalizer), '
                        f'got {normalizer!r}')
    applied = normalizer.applied(model) if normalizer is not None else contextlib.nullcontext()
    with applied:
        return _per_image_losses(model, data_batch, pseudo_label_fn, seed, records,
                                 feature_cache=feature_cache, normalizer=normalizer)


def _per_image_losses(model, data_batch: dict, pseudo_label_fn: Optional[Callable], seed: int,
                      records: Optional[list], image_scope: Optional[Callable] = None,
                      feature_cache: Optional[FeatureCache] = None,
                      normalizer: Optional[LossNormalizer] = None) -> Tensor:
    """:func:`per_image_losses` (whose caller applies ``normalizer``'s hooks; it is given here
    for the vectorised losses of :mod:`.batched`); ``image_scope(i)``, if given, is a context
    manager around the loss of image ``i`` (batch order) alone, which computes every loss
    image by image."""
    inputs, samples = data_batch['inputs'], data_batch['data_samples']
    if len(inputs) != len(samples):
        raise ValueError(f'data_batch has {len(inputs)} inputs but {len(samples)} data_samples')
    adapter = detector_adapter(model)
    losses: List[Optional[Tensor]] = [None] * len(samples)
    group_records: Dict[int, dict] = {}
    vectorise = image_scope is None
    image_scope = image_scope or (lambda i: contextlib.nullcontext())
    memoized = (feature_cache.memoized_heads(model) if feature_cache is not None
                else contextlib.nullcontext())
    with scoring_mode(), memoized:
        for group in _groups_by_padded_shape(model, inputs):
            # every layer output of the group has a row per image of the group, except the
            # RoI head's, called per image (rows for the layerwise derivative of
            # InfluenceScorer)
            with sample_rows(group):
                results = _group_losses(model, adapter, group, [inputs[i] for i in group],
                                        [samples[i] for i in group], pseudo_label_fn, seed,
                                        image_scope, feature_cache, normalizer, vectorise)
            for i, (loss, record) in zip(group, results):
                losses[i], group_records[i] = loss, record
    if records is not None:
        records.extend(group_records[i] for i in range(len(samples)))
    return torch.stack(losses)


def _group_losses(model, adapter, group: List[int], inputs: List[Tensor], samples: list,
                  pseudo_label_fn: Optional[Callable], seed: int, image_scope: Callable,
                  feature_cache: Optional[FeatureCache],
                  normalizer: Optional[LossNormalizer] = None,
                  vectorise: bool = True) -> List[Tuple[Tensor, dict]]:
    """``(loss, record)`` of every image of one group of one padded size, in group order
    (``group``: their positions in the batch, which ``image_scope`` and ``sample_rows``
    see). With ``vectorise``, the losses come from one vectorised call where the head has
    one (:mod:`.batched`; ``normalizer``: the one applied, or ``None``), else image by
    image."""
    from mmdet.models.utils import unpack_gt_instances
    local = contextlib.nullcontext()
    if feature_cache is not None:
        samples, feats = feature_cache.features(model, inputs, samples)
    elif pseudo_label_fn is not None:
        # the heads run twice on these features, for the detections (inference outputs) and
        # for the loss (training outputs): their frozen layers run once
        group_cache = FeatureCache(max_bytes=2**62)
        samples, feats = group_cache.features(model, inputs, samples)
        local = group_cache.memoized_heads(model, selected=True)
    else:
        samples, feats = _preprocess_and_extract(model, inputs, samples)
    with local, memoized_priors(model):
        with loss_mode(model):
            outs = adapter.head_outputs(model, feats)
        if pseudo_label_fn is not None:
            # the inference outputs from the same layer outputs: only what differs between
            # the heads' modes (FCOS: the stride scaling) runs again
            metas = [s.metainfo for s in samples]
            with torch.no_grad():
                preds = adapter.predict(model, feats, adapter.head_outputs(model, feats), metas)
            for sample, pred in zip(samples, preds):
                sample.gt_instances = pseudo_label_fn(pred)
                # nothing is ignored, but assigners expect the fields to exist
                sample.ignored_instances = sample.gt_instances[:0]
        gts, gts_ignore, metas = unpack_gt_instances(samples)
        with loss_mode(model):

            def each_image():
                losses = []
                for j, i in enumerate(group):
                    with image_scope(i), sample_rows(i), seeded(image_seed(seed, samples[j])):
                        losses.append(adapter.image_loss(model, feats, outs, j, gts[j],
                                                         gts_ignore[j], metas[j]))
                return losses

            losses = None
            if vectorise:
                losses = adapter.group_losses(model, outs, gts, normalizer,
                                              lambda: torch.stack(each_image()))
            losses = each_image() if losses is None else losses.unbind(0)
    return [(loss, dict(img_id=meta.get('img_id'), num_targets=len(gt)))
            for loss, gt, meta in zip(losses, gts, metas)]


def measure_normalizer(model, batches: Iterable[dict], seed: int = 0) -> LossNormalizer:
    """The labeled-mean normaliser: per loss module, the mean over images of the ``avg_factor``
    each image's own loss passes it (see :func:`~.normalizer.normalizer_from_calls`).

    Args:
        model: the mmdet detector, in the mode it will be scored in (normally eval).
        batches: data batches with ground-truth boxes (``gt_instances``), e.g. the labeled
            images that form the Hessian; every image counts once, whatever its batch.
        seed: seeds the samplers as in :func:`per_image_losses` (sampled counts rarely depend
            on it).

    Returns:
        A :class:`LossNormalizer` whose values are in each module's units per image (FCOS:
        positives for ``loss_cls`` and ``loss_centerness``, centerness sum for ``loss_bbox``;
        RPN and RoI heads: sampled anchors or RoIs).
    """
    per_image: List[Dict[str, list]] = []
    with torch.no_grad(), record_avg_factors(model) as calls:

        @contextlib.contextmanager
        def image_scope(i):
            calls.clear()
            yield
            per_image.append({name: list(values) for name, values in calls.items()})

        for batch in batches:
            _per_image_losses(model, batch, None, seed, None, image_scope)
    return normalizer_from_calls(per_image)
