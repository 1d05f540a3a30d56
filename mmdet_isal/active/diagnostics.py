"""What a selection picked, measured after labeling: the facts that tell whether a strategy
chose images worth annotating or merely cheap ones.

For the picked images: mean pseudo boxes (what the model saw), mean true boxes and the share
without any true box (what the annotator drew, read after labeling), the class histogram of the
new boxes, and the class histogram of the pool's true boxes (for a classifier: its labels), so
a report can tell whether a strategy picks the classes in their pool's proportions. With one
label per image and a strategy that scored each image as a class (a classifier's ISAL: the
predicted class), how often that pseudo-label is the true one, for the picks and the pool. For
the pool that was ranked: how many images had no pseudo box, the ratio of pseudo
boxes to true boxes (how far the detection threshold is from the truth; ``score_thr='auto'``
aims at 1 on the labeled images), the threshold itself, and the Spearman correlation of the
strategy's scores with the pseudo-box counts (near ±1 means the ranking is little more than
counting detections).
"""
from collections import Counter
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np

ImageId = Any


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of ``values``; tied values share the mean of their ranks (as in Spearman)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind='mergesort')
    ranks = np.empty(len(values), dtype=float)
    sorted_vals = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_vals[end] != sorted_vals[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of ranks start+1..end
            start = end
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Spearman's rank correlation of ``a`` and ``b`` (average ranks for ties).

    Returns None when it is undefined: fewer than 2 pairs or a constant sequence.
    """
    if len(a) != len(b):
        raise ValueError(f'spearman needs sequences of one length, got {len(a)} and {len(b)}')
    if len(a) < 2:
        return None
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else None


def selection_diagnostics(chosen: Sequence[ImageId], ranked: Sequence[ImageId],
                          scores: Mapping[ImageId, Optional[float]],
                          pseudo_boxes: Mapping[ImageId, int],
                          num_boxes: Mapping[ImageId, int],
                          box_classes: Mapping[ImageId, Counter],
                          score_thr: Optional[float] = None,
                          pseudo_labels: Optional[Mapping[ImageId, str]] = None
                          ) -> Dict[str, Any]:
    """Diagnostics of one selection.

    Args:
        chosen: the images picked (labeled for the next step).
        ranked: every image the strategy ranked (the pool of this step).
        scores: the strategy's score per image (None where it gave none).
        pseudo_boxes: pseudo boxes per image, for the images the strategy counted them on
            (ISAL, fewest_detections); empty for strategies that never ran the detector.
        num_boxes: true boxes per image (the oracle's, read after labeling; in manual mode the
            annotated counts, known for the picked images once their labels are merged). A
            mean over images whose count is not known is None.
        box_classes: per image, a Counter of its true boxes' class names.
        score_thr: the detection threshold the strategy counted pseudo boxes at (its ranking's
            ``info['score_thr']``; with ``'auto'`` the calibrated number), or None.
        pseudo_labels: for one label per image (classification), the class name a strategy
            scored each image as (ISAL's pseudo-label, the predicted class), for the images it
            gave one; None or empty for strategies that give none.

    Returns:
        ``picked_images``, ``picked_true_boxes`` (mean per picked image),
        ``picked_no_true_box`` (share), ``picked_class_histogram`` (class -> new boxes),
        ``pool_class_histogram`` (class -> true boxes of the ranked pool, picks included; the
        oracle's, so empty where they are not known), ``pool_images``, ``pool_true_boxes``
        (mean per pool image); where pseudo boxes are known: ``picked_pseudo_boxes`` and
        ``pool_pseudo_boxes`` (means),
        ``pool_no_pseudo_box`` (images), ``pool_pseudo_true_ratio`` (the pool's pseudo boxes
        over its true boxes, the oracle's; None without true boxes or where they are not known),
        ``spearman_score_pseudo_boxes`` (over the images with a score; None if undefined);
        ``score_thr`` as given; where every ranked image has a pseudo-label and one true label
        (``box_classes`` with a single label): ``picked_pseudo_label_accuracy`` and
        ``pool_pseudo_label_accuracy``, the share of the picks (of the pool) whose pseudo-label
        is the true one (what the annotator will give). Absent values are None.
    """
    chosen, ranked = list(chosen), list(ranked)

    def class_histogram(ids):
        hist = Counter()
        for i in ids:
            hist.update(box_classes.get(i, {}))
        return dict(sorted(hist.items()))

    def mean(values):
        values = list(values)
        return float(np.mean(values)) if values else None

    def known(ids):
        return all(i in num_boxes for i in ids)

    out = dict(
        picked_images=len(chosen),
        picked_true_boxes=mean(num_boxes[i] for i in chosen) if known(chosen) else None,
        picked_no_true_box=mean(num_boxes[i] == 0 for i in chosen) if known(chosen) else None,
        picked_class_histogram=class_histogram(chosen),
        pool_class_histogram=class_histogram(ranked),
        pool_images=len(ranked),
        pool_true_boxes=mean(num_boxes[i] for i in ranked) if known(ranked) else None,
        picked_pseudo_boxes=None, pool_pseudo_boxes=None, pool_no_pseudo_box=None,
        spearman_score_pseudo_boxes=None, score_thr=score_thr, pool_pseudo_true_ratio=None,
        picked_pseudo_label_accuracy=None, pool_pseudo_label_accuracy=None)
    truth = {i: next(iter(box_classes[i])) for i in ranked
             if i in box_classes and sum(box_classes[i].values()) == 1}
    if ranked and pseudo_labels and all(i in pseudo_labels and i in truth for i in ranked):
        out['picked_pseudo_label_accuracy'] = mean(pseudo_labels[i] == truth[i] for i in chosen)
        out['pool_pseudo_label_accuracy'] = mean(pseudo_labels[i] == truth[i] for i in ranked)
    if ranked and all(i in pseudo_boxes for i in ranked):
        out['picked_pseudo_boxes'] = mean(pseudo_boxes[i] for i in chosen)
        out['pool_pseudo_boxes'] = mean(pseudo_boxes[i] for i in ranked)
        out['pool_no_pseudo_box'] = int(sum(pseudo_boxes[i] == 0 for i in ranked))
        true = sum(num_boxes[i] for i in ranked) if known(ranked) else 0
        if true:
            out['pool_pseudo_true_ratio'] = sum(pseudo_boxes[i] for i in ranked) / true
        pairs = [(scores[i], pseudo_boxes[i]) for i in ranked if scores.get(i) is not None]
        if pairs:
            a, b = zip(*pairs)
            out['spearman_score_pseudo_boxes'] = spearman(a, b)
    return out


def selection_message(step: int, diag: Dict[str, Any], boxes: bool = True) -> str:
    """The loop's one-line account of step ``step``'s selection, from
    :func:`selection_diagnostics`' ``diag`` (``n/a`` where a value is not known); without
    ``boxes`` (one label per image: classification) the number of images, and how often their
    pseudo-labels are right where the strategy gave them."""
    if not boxes:
        text = f'step_{step}: picked {diag["picked_images"]} images'
        if diag.get('picked_pseudo_label_accuracy') is not None:
            text += (f', {_fmt(diag["picked_pseudo_label_accuracy"], "%")} of them with their '
                     f'pseudo-label right (pool {_fmt(diag["pool_pseudo_label_accuracy"], "%")})')
        return text
    return (f'step_{step}: picked {diag["picked_images"]} images, '
            f'{_fmt(diag["picked_true_boxes"])} true boxes each (pool '
            f'{_fmt(diag["pool_true_boxes"])}), {_fmt(diag["picked_pseudo_boxes"])} pseudo '
            f'boxes each (pool {_fmt(diag["pool_pseudo_boxes"])}), '
            f'{_fmt(diag["picked_no_true_box"], "%")} without a true box; Spearman(score, '
            f'pseudo boxes) {_fmt(diag["spearman_score_pseudo_boxes"])}')


def _fmt(value: Optional[float], kind: str = '') -> str:
    if value is None:
        return 'n/a'
    return f'{100 * value:.0f}%' if kind == '%' else f'{value:.2f}'
