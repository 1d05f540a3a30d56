"""MinLengthSampler: epochs of at least a given length over a small set, every image drawn
equally often over the schedule, split between processes as mmengine's DefaultSampler."""
from collections import Counter
from unittest import mock

import pytest
from mmdet.registry import DATA_SAMPLERS
from mmengine.dataset import DefaultSampler
from mmengine.registry import init_default_scope

import mmdet_isal  # noqa: F401  (registers the sampler)
from mmdet_isal.datasets.samplers import MinLengthSampler


def _epochs(sampler, count):
    out = []
    for epoch in range(count):
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


@pytest.mark.parametrize('n, min_length', [(6, 20), (7, 20), (20, 20), (3, 1)])
def test_an_epoch_is_min_length_long_and_images_are_drawn_equally_often(n, min_length):
    sampler = MinLengthSampler(range(n), min_length=min_length, seed=3)
    length = max(n, min_length)
    epochs = _epochs(sampler, 5)
    assert len(sampler) == length and all(len(e) == length for e in epochs)
    # the stream is whole permutations one after another: within every pass of n samples each
    # image once, so over the schedule every image within one draw of every other
    stream = [i for e in epochs for i in e]
    for k in range(len(stream) // n):
        assert sorted(stream[k * n:(k + 1) * n]) == list(range(n))
    counts = Counter(stream)
    assert set(counts) == set(range(n)) and max(counts.values()) - min(counts.values()) <= 1
    # an epoch depends on its number only (a resumed run draws the same)
    sampler.set_epoch(3)
    assert list(sampler) == epochs[3]


def test_the_seed_sets_the_order():
    first, second = (MinLengthSampler(range(50), min_length=80, seed=s) for s in (1, 2))
    assert first.epoch_indices(1) != second.epoch_indices(1)
    assert first.epoch_indices(1) == MinLengthSampler(range(50), 80, seed=1).epoch_indices(1)


def test_a_set_of_min_length_or_more_samples_as_default_sampler():
    for epoch in range(3):
        ours = MinLengthSampler(range(50), min_length=40, seed=7)
        theirs = DefaultSampler(range(50), seed=7)
        ours.set_epoch(epoch)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs)


def test_without_shuffle_the_passes_are_in_order():
    sampler = MinLengthSampler(range(4), min_length=10, shuffle=False, seed=0)
    assert _epochs(sampler, 2) == [[0, 1, 2, 3, 0, 1, 2, 3, 0, 1],
                                   [2, 3, 0, 1, 2, 3, 0, 1, 2, 3]]


def test_processes_share_an_epoch_disjointly():
    """Two processes: each gets every other index of the epoch's ceil(len / 2) * 2 samples."""
    shards = []
    for rank in range(2):
        with mock.patch('mmdet_isal.datasets.samplers.get_dist_info', return_value=(rank, 2)):
            sampler = MinLengthSampler(range(6), min_length=11, seed=1)
        sampler.set_epoch(2)
        assert len(sampler) == 6
        shards.append(list(sampler))
    one = MinLengthSampler(range(6), min_length=12, seed=1)  # the same 12 samples per epoch
    one.set_epoch(2)
    assert shards[0] == list(one)[0::2] and shards[1] == list(one)[1::2]


def test_built_from_a_config_and_bad_min_length_named():
    init_default_scope('mmdet')
    sampler = DATA_SAMPLERS.build(dict(type='MinLengthSampler', min_length=9, seed=0),
                                  default_args=dict(dataset=range(4)))
    assert isinstance(sampler, MinLengthSampler) and len(sampler) == 9
    assert len(MinLengthSampler(range(0), min_length=9, seed=0)) == 0
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match=r'^MinLengthSampler: min_length must be an integer'):
            MinLengthSampler(range(4), min_length=bad, seed=0)
