"""The random streams: one number each, never shared, and the draws the package makes from them."""
import numpy as np

from mmdet_isal.strategies import random_order
from mmdet_isal.utils.rng import Stream, hessian_subset_rng, stream_key, stream_rng


def test_every_stream_has_its_own_number_and_the_numbers_never_move():
    # the numbers decide which images a seed picks: renumbering one changes old runs' picks
    assert {s.name: int(s) for s in Stream} == dict(
        INITIAL_SET=0, RANDOM_STRATEGY=1, UNRANKED_ORDER=2, FEWEST_DETECTIONS_TIES=3,
        ENTROPY_TIES=4, LEAST_CONFIDENCE_TIES=5, LOCALIZATION_STABILITY_TIES=6,
        LOCALIZATION_STABILITY_NOISE=7, LEARNING_LOSS_TIES=8, MATCHED_RANDOM=9)
    assert len({int(s) for s in Stream}) == len(Stream)


def test_a_stream_draws_what_numpy_draws_from_seed_stream_and_more():
    ours = stream_rng(5, Stream.RANDOM_STRATEGY, 2).random(4)
    assert np.array_equal(ours, np.random.default_rng([5, 1, 2]).random(4))
    assert stream_key(5, Stream.LOCALIZATION_STABILITY_NOISE, 2, 0) == (5, 7, 2, 0)
    assert np.array_equal(hessian_subset_rng(5).random(3), np.random.default_rng(5).random(3))


def test_streams_of_one_seed_differ_and_the_initial_set_depends_on_the_seed_only():
    ids = list(range(50))
    initial = random_order(ids, 3, Stream.INITIAL_SET)
    assert initial == random_order(ids, 3, Stream.INITIAL_SET)
    assert initial != random_order(ids, 3, Stream.RANDOM_STRATEGY, 0)
    assert initial != random_order(ids, 4, Stream.INITIAL_SET)
    assert sorted(initial) == ids
