"""A data sampler registered into mmdet's ``DATA_SAMPLERS``: epochs of at least a given length
over a small training set, every image drawn equally often.

``RepeatToMinLength`` (:mod:`.wrappers`) lengthens an epoch by whole copies of the set, so the
number of iterations jumps with the set's size: with a floor of 8000 samples, 4000 and 8000
images train 1500 iterations of 64 but 6000 images 2250. ``MinLengthSampler`` makes an epoch
exactly ``max(len(dataset), min_length)`` samples long. Its indices are one endless stream of
permutations of the data set (permutation ``k`` drawn from ``seed + k``), cut into epochs, so
that over the whole schedule every image is drawn equally often (within one), not the first
images of a partial copy more often. A set of ``min_length`` images or more gets exactly the
indices of mmengine's ``DefaultSampler`` on one process (epoch ``e`` is permutation ``e``).
"""
import math
from typing import Iterator, Optional, Sized

import torch
from mmdet.registry import DATA_SAMPLERS
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from ..influence.checks import check_int

__all__ = ['MinLengthSampler']


@DATA_SAMPLERS.register_module()
class MinLengthSampler(Sampler):
    """Epochs of ``max(len(dataset), min_length)`` samples (rounded up to a multiple of the
    number of processes), shared out between processes as mmengine's ``DefaultSampler`` does.

    Args:
        dataset: the data set (only its length is read).
        min_length: the least number of samples of an epoch, over all processes; >= 1.
        shuffle: draw each pass over the data set in a random order (else in order).
        seed: the permutations' seed; ``None`` takes one synchronised between processes, as
            ``DefaultSampler`` does (the Runner's seed when it sets one).
    """

    def __init__(self, dataset: Sized, min_length: int, shuffle: bool = True,
                 seed: Optional[int] = None):
        check_int(min_length, 'min_length', minimum=1, owner='MinLengthSampler')
        self.rank, self.world_size = get_dist_info()
        self.dataset = dataset
        self.min_length = min_length
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else seed
        self.epoch = 0
        # an empty data set gives empty epochs (the Runner then refuses it, naming the file)
        self.num_samples = math.ceil(max(len(dataset), min_length) / self.world_size) \
            if len(dataset) else 0
        self.total_size = self.num_samples * self.world_size

    def _pass(self, k: int) -> torch.Tensor:
        """Pass ``k`` over the data set: a permutation of its indices."""
        n = len(self.dataset)
        if not self.shuffle:
            return torch.arange(n)
        g = torch.Generator()
        g.manual_seed(self.seed + k)
        return torch.randperm(n, generator=g)

    def epoch_indices(self, epoch: int) -> list:
        """Epoch ``epoch``'s indices over all processes: the stream's samples
        ``[epoch * total_size, (epoch + 1) * total_size)``."""
        n = len(self.dataset)
        if not self.total_size:
            return []
        start = epoch * self.total_size
        stop = start + self.total_size
        chunks = [self._pass(k) for k in range(start // n, (stop - 1) // n + 1)]
        offset = start - (start // n) * n
        return torch.cat(chunks)[offset:offset + self.total_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices(self.epoch)[self.rank:self.total_size:self.world_size])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Called by mmengine's loops at every epoch's start (also after a resume)."""
        self.epoch = epoch
