"""Every random draw of the package comes from its own numbered stream, listed here.

A draw is ``numpy.random.default_rng([seed, stream, *more])``: the run's seed, the stream's
number and, where a draw repeats, the step (or another index). Two streams never share a
number, so that adding or changing one draw never moves another: the initial set of a seed is
the same for every strategy, a strategy's tie order is its own, and so on. The numbers are
part of what a run records (the same seed, the same images); never renumber a stream.
"""
import enum
from typing import Sequence

import numpy as np


class Stream(enum.IntEnum):
    """The package's random streams (values are fixed: they decide which images a seed picks).
    """
    INITIAL_SET = 0                    #: the loop's random initial labeled set
    RANDOM_STRATEGY = 1                #: the ``random`` strategy's order, per step
    UNRANKED_ORDER = 2                 #: ISAL's order of images it could not rank
    FEWEST_DETECTIONS_TIES = 3         #: ``fewest_detections``: ties
    ENTROPY_TIES = 4                   #: ``entropy``: ties
    LEAST_CONFIDENCE_TIES = 5          #: ``least_confidence``: ties
    LOCALIZATION_STABILITY_TIES = 6    #: ``localization_stability``: ties
    LOCALIZATION_STABILITY_NOISE = 7   #: ``localization_stability``: the input noise
    LEARNING_LOSS_TIES = 8             #: ``learning_loss``: ties
    MATCHED_RANDOM = 9                 #: ``matched_random``: the replacements and the rest


def stream_rng(seed: int, stream: Stream, *more: int) -> np.random.Generator:
    """The numpy generator of ``stream`` for ``seed`` (and ``more`` integers, e.g. the step)."""
    return np.random.default_rng([int(seed), int(stream), *(int(m) for m in more)])


def hessian_subset_rng(seed: int) -> np.random.Generator:
    """The generator that draws ISAL's Hessian images from the labeled set:
    ``default_rng(seed)``, without a stream number (older than the streams; kept so that a seed
    keeps its Hessian subset). LiSSA's own batch order is drawn inside the model-agnostic
    solver from ``(seed, repeat)`` (:class:`mmdet_isal.influence.LiSSA`)."""
    return np.random.default_rng(int(seed))


def stream_key(seed: int, stream: Stream, *more: int) -> Sequence[int]:
    """``(seed, stream, *more)`` as plain integers, for APIs that take a seed tuple."""
    return (int(seed), int(stream), *(int(m) for m in more))
