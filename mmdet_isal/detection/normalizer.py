"""One loss normaliser for every image: each image's loss as its share of the training objective.

mmdet's heads call each loss module (``FocalLoss``, ``IoULoss``, ``CrossEntropyLoss``,
``L1Loss``, ...) with ``avg_factor=``, a count over the batch (positives, centerness sum, sampled
anchors or RoIs), and the module returns ``sum(elementwise) / avg_factor``. Computed on one
image, that count is the image's own: an image with few positives gets its loss divided by
little (one without any: by 1), which inflates exactly those images. A
:class:`LossNormalizer` instead holds one fixed ``avg_factor`` per loss module, the mean over
labeled images of what each image contributes to the batch count, and substitutes it in every
call, so that every image's loss is on the scale of the training objective.

Nothing here is specific to a detector: loss modules are found by their ``avg_factor``
argument and named by their path in the model (``bbox_head.loss_cls``,
``rpn_head.loss_bbox``, ``roi_head.bbox_head.loss_cls``).
"""
import contextlib
import inspect
from typing import Dict, Iterator, List, Mapping, Optional, Sequence

import torch
from torch import nn

from ..influence.checks import check_int, check_number


def loss_modules(model: nn.Module) -> Dict[str, nn.Module]:
    """The loss modules of ``model`` by qualified name: submodules whose ``forward`` takes an
    ``avg_factor`` argument (every mmdet loss does)."""
    return {name: module for name, module in model.named_modules()
            if 'avg_factor' in inspect.signature(module.forward).parameters}


def _float(avg_factor) -> Optional[float]:
    return None if avg_factor is None else float(avg_factor)


def _like(value: float, given):
    """``value`` as the type of the ``avg_factor`` it replaces (a tensor keeps its dtype and
    device), so that the loss's arithmetic is mmdet's own (FCOS passes float32 counts)."""
    return torch.as_tensor(value, dtype=given.dtype, device=given.device) \
        if isinstance(given, torch.Tensor) else value


@contextlib.contextmanager
def _forward_pre_hooks(modules: Mapping[str, nn.Module], make_hook):
    """Register ``make_hook(name, module)`` as a kwargs forward pre-hook on every module; remove
    them all on exit, also on errors."""
    handles = []
    try:
        for name, module in modules.items():
            handles.append(module.register_forward_pre_hook(make_hook(name, module),
                                                            with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def record_avg_factors(model: nn.Module) -> Iterator[Dict[str, List[Optional[float]]]]:
    """Record the ``avg_factor`` every loss module of ``model`` is called with.

    Yields a dict ``{module name: [avg_factor of each call, in call order]}`` that fills while
    the block runs; ``None`` where a call passed no ``avg_factor``. The caller may clear it
    between images.
    """
    calls: Dict[str, List[Optional[float]]] = {}

    def make_hook(name, module):
        signature = inspect.signature(module.forward)

        def hook(module, args, kwargs):
            # bound through the signature: a head may pass avg_factor by position
            bound = signature.bind(*args, **kwargs)
            calls.setdefault(name, []).append(_float(bound.arguments.get('avg_factor')))
        return hook

    with _forward_pre_hooks(loss_modules(model), make_hook):
        yield calls


class LossNormalizer:
    """A fixed ``avg_factor`` per loss module, substituted for the per-image one.

    Within :meth:`applied`, a loss module called with ``avg_factor=a`` is called with
    ``avg_factor=avg_factors[name]`` instead. A call without ``avg_factor`` (or with ``None``)
    keeps the module's own reduction: the head asked for no count, so the module's result
    (a sum, or a mean over a number of elements fixed by the image size for dense losses)
    already does not depend on the image's content. A call to a module the normaliser has no
    value for is an error naming the module.

    Args:
        avg_factors: ``{loss module name: avg_factor}``, each a finite number > 0, in the
            module's own units (positives, centerness sum, sampled anchors or RoIs per image).
        num_images: images the values were measured on (0 if not measured).
        images_called: ``{loss module name: images on which it was called}`` during the
            measurement (an FCOS image without positives never calls ``loss_bbox``).
        own_reduction: loss modules that were called without ``avg_factor`` during the
            measurement and keep their own reduction.
    """

    def __init__(self, avg_factors: Mapping[str, float], num_images: int = 0,
                 images_called: Optional[Mapping[str, int]] = None,
                 own_reduction: Sequence[str] = ()):
        if not avg_factors:
            raise ValueError('LossNormalizer: avg_factors is empty; measure it with '
                             'measure_normalizer on labeled images whose losses call the '
                             "model's loss modules")
        for name, value in avg_factors.items():
            if not isinstance(name, str):
                raise ValueError(f'LossNormalizer: loss module names must be strings, got '
                                 f'{name!r}')
            check_number(value, f'avg_factor of {name!r}', minimum=0, open_min=True,
                         owner='LossNormalizer')
        check_int(num_images, 'num_images', minimum=0, owner='LossNormalizer')
        self.avg_factors = {name: float(value) for name, value in avg_factors.items()}
        self.num_images = num_images
        self.images_called = dict(images_called or {})
        self.own_reduction = sorted(own_reduction)

    def to_dict(self) -> dict:
        """The state as plain JSON types (for diagnostics and :meth:`from_dict`)."""
        return dict(avg_factors=dict(self.avg_factors), num_images=self.num_images,
                    images_called=dict(self.images_called),
                    own_reduction=list(self.own_reduction))

    state_dict = to_dict

    @classmethod
    def from_dict(cls, state: Mapping) -> 'LossNormalizer':
        """Rebuild from :meth:`to_dict`; unknown keys are an error naming them."""
        known = {'avg_factors', 'num_images', 'images_called', 'own_reduction'}
        unknown = sorted(set(state) - known)
        if unknown:
            raise ValueError(f'LossNormalizer.from_dict: unknown key(s) {unknown}; known: '
                             f'{sorted(known)}')
        return cls(**state)

    def __repr__(self):
        values = ', '.join(f'{k}={v:.4g}' for k, v in self.avg_factors.items())
        return f'LossNormalizer({values}; {self.num_images} images)'

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """Within the block, every loss module of ``model`` called with an ``avg_factor`` gets
        this normaliser's value instead; hooks are removed on exit, also on errors.

        Raises:
            ValueError: on entry, if the normaliser names a module that is not a loss module of
                ``model`` (measured on another architecture); in a call, if a loss module has
                no value here.
        """
        modules = loss_modules(model)
        foreign = sorted(set(self.avg_factors) - set(modules))
        if foreign:
            raise ValueError(f'the loss normaliser has values for {foreign}, which are not '
                             f'loss modules of this {type(model).__name__} (its loss modules: '
                             f'{sorted(modules)}); measure it on this model with '
                             f'measure_normalizer')

        def make_hook(name, module):
            signature = inspect.signature(module.forward)

            def hook(module, args, kwargs):
                bound = signature.bind(*args, **kwargs)
                given = bound.arguments.get('avg_factor')
                if given is None:
                    return None
                if name not in self.avg_factors:
                    raise ValueError(
                        f'the loss normaliser has no avg_factor for loss module {name!r} '
                        f'({type(module).__name__}), which was called with one; it knows '
                        f'{sorted(self.avg_factors)}. Measure the normaliser with '
                        f'measure_normalizer on labeled images of this model.')
                bound.arguments['avg_factor'] = _like(self.avg_factors[name], given)
                return bound.args, bound.kwargs
            return hook

        with _forward_pre_hooks(modules, make_hook):
            yield


def normalizer_from_calls(per_image_calls: Sequence[Mapping[str, Sequence[Optional[float]]]]
                          ) -> LossNormalizer:
    """The labeled-mean normaliser from the ``avg_factor`` calls recorded on each image.

    Args:
        per_image_calls: one ``{loss module name: [avg_factor of each call]}`` per image (what
            :func:`record_avg_factors` collected while that image's loss was computed).

    A module called several times for one image (once per FPN level in an anchor head) must
    receive one value in all of them: it is counted once. An image on which a module was not
    called counts 0 for it: heads skip a loss whose count would be zero (FCOS's box and
    centerness losses without positives), so 0 is that image's contribution to the batch
    count. The value of a module is the sum over images divided by the number of images.

    Where this differs from mmdet's batch count (only on images without targets): FCOS's
    ``max(positives, 1)`` counts 1 for such an image in ``loss_cls``, and the RoI head's
    ``loss_bbox``, whose count is all sampled RoIs, is skipped without positive RoIs, so such
    an image counts 0 there instead of its RoIs (``images_called`` shows how many images did
    call each module).
    """
    if not per_image_calls:
        raise ValueError('normalizer_from_calls: no images; measure on at least one labeled '
                         'image')
    totals: Dict[str, float] = {}
    called: Dict[str, int] = {}
    own = set()
    for index, calls in enumerate(per_image_calls):
        for name, values in calls.items():
            given = {v for v in values if v is not None}
            if given and None in values:
                raise ValueError(f'loss module {name!r} was called both with and without '
                                 f'avg_factor for image {index} ({list(values)}): a fixed '
                                 f'normaliser cannot stand for both')
            if not given:
                own.add(name)
                continue
            if len(given) > 1:
                raise ValueError(f'loss module {name!r} received different avg_factors within '
                                 f'image {index} ({sorted(given)}): a single fixed normaliser '
                                 f'cannot replace them')
            totals[name] = totals.get(name, 0.0) + given.pop()
            called[name] = called.get(name, 0) + 1
    num_images = len(per_image_calls)
    return LossNormalizer({name: total / num_images for name, total in totals.items()},
                          num_images=num_images, images_called=called,
                          own_reduction=sorted(own - set(totals)))
