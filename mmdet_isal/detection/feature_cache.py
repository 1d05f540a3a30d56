"""Backbone, neck and frozen head outputs of images seen before, kept across LiSSA iterations
(:class:`FeatureCache`), and the one preprocess-and-extract step it stands in for."""
import contextlib
from typing import Dict, List, Optional

import torch
from torch import Tensor

from ..influence.checks import check_int
from .outputs import flat_tensors, map_tensors
from .patches import HEAD_ATTRS, image_key, instance_patches


def preprocess_and_extract(model, inputs: List[Tensor], samples: list):
    """``(data samples, features)`` of one group of images: the model's data preprocessor
    (``training=False``: no augmentation) and its ``extract_feat`` (backbone and neck)."""
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=False)
    return data['data_samples'], model.extract_feat(data['inputs'])


class FeatureCache:
    """Features of labeled images that do not depend on the selected parameters, kept across
    LiSSA iterations.

    LiSSA draws the same Hessian batches again and again (every repeat passes over them, and
    power iteration visits its batches once per iteration), while the backbone, the neck and
    every head layer before the selected ones are frozen: in eval mode their outputs for an
    image never change during scoring. Given to :func:`~.per_image.per_image_losses`, the
    cache keeps

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
        check_int(max_bytes, 'max_bytes', minimum=0, owner='FeatureCache')
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
            return preprocess_and_extract(model, inputs, samples)
        key = tuple(image_key(sample) for sample in samples) + tuple(
            tuple(img.shape) for img in inputs)
        cached = self._groups.get(key)
        if cached is not None:
            if [t._version for t in flat_tensors(cached[1])] == cached[2]:
                self.hits += 1
                return cached[0], cached[1]
            del self._groups[key]  # changed in place since: recompute, do not store again
            self.misses += 1
            return preprocess_and_extract(model, inputs, samples)
        self.misses += 1
        out_samples, feats = preprocess_and_extract(model, inputs, samples)
        feats = map_tensors(Tensor.detach, feats)
        if self._room(flat_tensors(feats)):
            self._groups[key] = (out_samples, feats, [t._version for t in flat_tensors(feats)])
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
        with instance_patches(patches):
            yield
