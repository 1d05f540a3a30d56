"""Selection diagnostics: Spearman with ties, and what a selection picked."""
from collections import Counter

import numpy as np
import pytest
from scipy.stats import spearmanr

from mmdet_isal.active.diagnostics import (average_ranks, selection_diagnostics, selection_message,
                                           spearman)


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks([3, 1, 3, 2, 3]), [4, 1, 4, 2, 4])


@pytest.mark.parametrize('seed', range(5))
def test_spearman_matches_scipy_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 4, size=50)  # pseudo-box counts: many ties
    scores = -counts + rng.normal(0, 1.0, size=50)
    assert spearman(scores, counts) == pytest.approx(spearmanr(scores, counts)[0], rel=1e-12)


def test_spearman_is_none_when_undefined():
    assert spearman([1.0], [2]) is None
    assert spearman([1.0, 2.0, 3.0], [5, 5, 5]) is None
    with pytest.raises(ValueError, match='one length'):
        spearman([1.0, 2.0], [1])


def test_selection_diagnostics_by_hand():
    ranked = [10, 11, 12, 13]
    chosen = [12, 10]
    num_boxes = {10: 0, 11: 5, 12: 3, 13: 1}
    classes = {10: Counter(), 11: Counter(a=5), 12: Counter(a=1, b=2), 13: Counter(b=1)}
    scores = {10: -3.0, 11: 1.0, 12: -2.0, 13: None}
    pseudo = {10: 0, 11: 6, 12: 2, 13: 1}
    d = selection_diagnostics(chosen, ranked, scores, pseudo, num_boxes, classes)
    assert d['picked_images'] == 2 and d['pool_images'] == 4
    assert d['picked_true_boxes'] == 1.5 and d['picked_no_true_box'] == 0.5
    assert d['picked_class_histogram'] == {'a': 1, 'b': 2}
    assert d['pool_class_histogram'] == {'a': 6, 'b': 3}
    assert d['pool_true_boxes'] == 2.25
    assert d['picked_pseudo_boxes'] == 1.0 and d['pool_pseudo_boxes'] == 2.25
    assert d['pool_no_pseudo_box'] == 1
    # over the scored images 10, 11, 12: scores (-3, 1, -2) and counts (0, 6, 2) agree in order
    assert d['spearman_score_pseudo_boxes'] == pytest.approx(1.0)
    # a strategy that counted no pseudo boxes (random) gets None for those entries
    d = selection_diagnostics(chosen, ranked, scores, {}, num_boxes, classes)
    assert d['picked_pseudo_boxes'] is None and d['spearman_score_pseudo_boxes'] is None
    assert d['picked_true_boxes'] == 1.5


def test_pseudo_label_accuracy_with_one_label_per_image():
    ranked, chosen = [1, 2, 3, 4], [3, 1]
    labels = {1: Counter(a=1), 2: Counter(b=1), 3: Counter(a=1), 4: Counter(c=1)}
    ones = dict.fromkeys(ranked, 1)
    pseudo = {1: 'a', 2: 'b', 3: 'b', 4: 'b'}  # right on 1 and 2 only
    d = selection_diagnostics(chosen, ranked, dict.fromkeys(ranked, 0.0), {}, ones, labels,
                              pseudo_labels=pseudo)
    assert d['picked_pseudo_label_accuracy'] == 0.5 and d['pool_pseudo_label_accuracy'] == 0.5
    d = selection_diagnostics([1, 2], ranked, dict.fromkeys(ranked, 0.0), {}, ones, labels,
                              pseudo_labels=pseudo)
    assert d['picked_pseudo_label_accuracy'] == 1.0
    # undefined without a pseudo-label for every ranked image, or without one true label each
    for kwargs in (dict(pseudo_labels={1: 'a'}), dict(pseudo_labels=None)):
        d = selection_diagnostics(chosen, ranked, {}, {}, ones, labels, **kwargs)
        assert d['picked_pseudo_label_accuracy'] is None
    boxes = {**labels, 2: Counter(b=2)}  # image 2 has two labels: not one per image
    d = selection_diagnostics(chosen, ranked, {}, {}, ones, boxes, pseudo_labels=pseudo)
    assert d['pool_pseudo_label_accuracy'] is None
    assert selection_message(0, selection_diagnostics(
        chosen, ranked, {}, {}, ones, labels, pseudo_labels=pseudo), boxes=False) == (
        'step_0: picked 2 images, 50% of them with their pseudo-label right (pool 50%)')
