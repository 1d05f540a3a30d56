"""What mmdet must do differently while an image's loss is computed on its own, and how.

Each piece is a context manager that patches mmdet (or a model's instances) within a block and
restores everything on exit, also on errors:

- :func:`scoring_mode`: twice-differentiable focal loss, ``reduce_mean`` as the identity, exact
  ties at the kinks of the regression losses (:data:`KINKED_LOSSES`);
- :func:`seeded` with :func:`image_seed`: every random sampler seeded from the image id;
- :func:`loss_mode`: the heads compute their training outputs, their layers stay in eval mode;
- :func:`memoized_priors`: anchors and points computed once per padded size.

Nothing here knows a detector family: heads are found under :data:`HEAD_ATTRS`, loss
functions by module and name.
"""
import contextlib
import inspect
import sys
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor


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
#: min/max of coordinates, L1's absolute value): ``module: [function names]``. A fact about
#: mmdet's loss functions, not about a detector family (any head may be configured with any of
#: them), so it is one table here, beside the patch that reads it.
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
    return zlib.crc32(f'{seed}:{image_key(data_sample)}'.encode())


def image_key(data_sample):
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


def head_objects(model) -> List[torch.nn.Module]:
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
    heads = [m for m in head_objects(model) if not m.training]
    try:
        for m in heads:
            m.training = True
        yield
    finally:
        for m in heads:
            m.training = False


@contextlib.contextmanager
def instance_patches(patches: Sequence[Tuple[object, str, object]]):
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
                                     for m in head_objects(model))
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

    with instance_patches([(g, 'grid_priors', memoized(g.grid_priors))
                            for g in generators.values() if 'grid_priors' not in vars(g)]):
        yield

