"""Core-set selection (Sener & Savarese, ICLR 2018): k-center greedy on pooled head features."""
from typing import List, Optional, Tuple

import torch

from mmdet_isal.detection.features import detect_pool
from mmdet_isal.influence.checks import check_int
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import (BaseStrategy, Ranking, SelectionContext,
                                        detection_overrides, threshold_info)

#: labeled centres per distance block while the initial distances are computed: bounds the
#: memory to N x _CHUNK distances whatever the number of labeled images
_CHUNK = 1024


def _sq_dist_to(features: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """[N, M] squared Euclidean distances, never negative (the expansion can round below 0)."""
    d = (features.pow(2).sum(1, keepdim=True) - 2 * features @ centres.T
         + centres.pow(2).sum(1)[None])
    return d.clamp_(min=0)


def k_center_greedy_with_distances(features: torch.Tensor, labeled_mask: torch.Tensor,
                                   n: int) -> Tuple[List[int], torch.Tensor, torch.Tensor]:
    """:func:`k_center_greedy`, also returning the distance of each pick to its nearest centre
    when it was picked ([n]) and every row's distance to its nearest centre after the last pick
    ([N]; 0 for centres, ``inf`` for all rows with no centre at all)."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2 \
            or not features.is_floating_point():
        raise ValueError(f'k_center_greedy: features must be a float tensor [N, D], got '
                         f'{getattr(features, "dtype", type(features))} of shape '
                         f'{tuple(getattr(features, "shape", ()))}')
    num = features.shape[0]
    if not isinstance(labeled_mask, torch.Tensor) or labeled_mask.dtype != torch.bool \
            or tuple(labeled_mask.shape) != (num,):
        raise ValueError(f'k_center_greedy: labeled_mask must be a bool tensor [{num}] (one '
                         f'entry per row of features), got '
                         f'{getattr(labeled_mask, "dtype", type(labeled_mask))} of shape '
                         f'{tuple(getattr(labeled_mask, "shape", ()))}')
    if not torch.isfinite(features).all():
        raise ValueError('k_center_greedy: features hold NaN or infinite values')
    unlabeled = int((~labeled_mask).sum())
    check_int(n, 'n', minimum=0, maximum=unlabeled, owner='k_center_greedy')  # unlabeled rows
    min_d = torch.full((num,), float('inf'), dtype=features.dtype)
    centres = labeled_mask.nonzero().flatten()
    for start in range(0, len(centres), _CHUNK):
        block = features[centres[start:start + _CHUNK]]
        min_d = torch.minimum(min_d, _sq_dist_to(features, block).min(1).values)
    min_d[labeled_mask] = 0
    taken = labeled_mask.clone()
    picks, picked_d = [], []
    for _ in range(n):
        # the farthest unlabeled row from every centre; ties (and no centre at all: every
        # distance inf) go to the lowest index
        cand = torch.where(taken, torch.full_like(min_d, -1.0), min_d)
        k = int(cand.argmax())
        picks.append(k)
        picked_d.append(float(min_d[k]))
        taken[k] = True
        min_d = torch.minimum(min_d, _sq_dist_to(features, features[k:k + 1])[:, 0])
        min_d[k] = 0
    return (picks, torch.tensor(picked_d, dtype=features.dtype).sqrt(), min_d.sqrt())


def k_center_greedy(features: torch.Tensor, labeled_mask: torch.Tensor, n: int) -> List[int]:
    """Pick ``n`` unlabeled rows, each the one farthest (Euclidean) from its nearest centre,
    the labeled rows and the rows picked before it being the centres.

    Memory is O(N) besides the features (a running vector of each row's distance to its nearest
    centre, updated with one [N] distance column per pick; labeled centres are taken in blocks
    of 1024), never an N x N matrix; time is O((L + n) N D) for L labeled rows. Ties go to the
    lowest index; without any labeled row the first pick is the lowest unlabeled index.

    Args:
        features: float tensor [N, D].
        labeled_mask: bool tensor [N], True for the labeled rows (the initial centres).
        n: how many rows to pick, at most the number of unlabeled rows.

    Returns:
        ``n`` row indices of unlabeled rows, in the order picked.
    """
    return k_center_greedy_with_distances(features, labeled_mask, n)[0]


@STRATEGIES.register_module(name='coreset')
class CoresetStrategy(BaseStrategy):
    """Core-set: the images that best cover the pool in feature space, labeled images as the
    initial centres (k-center greedy, :func:`k_center_greedy`).

    The feature of an image is the global average pooling of the detection head's
    classification-branch and regression-branch maps at every FPN level, concatenated
    (:attr:`~mmdet_isal.detection.specs.HeadSpec.taps`; 2 x 5 levels x 32 channels = 320 for
    the toy FCOS). Features of the labeled and the unlabeled images come from one inference
    pass over each (the pass that also gives the detections, which are counted as pseudo boxes
    in the details). The first ``max_greedy`` images are ordered by k-center greedy; the rest
    after them by their distance to the nearest centre once those are picked, farthest first.
    The score of an image is that distance (for a greedy pick: when it was picked).

    Args:
        max_greedy: how many images k-center greedy orders (the rest are ordered by distance);
            default all of the pool. Greedy costs O((labeled + max_greedy) x pool x D) time:
            set it to the budget for a pool of 100k images.
        batch_size: images per inference batch; default: the scorer's ``batch_size``.
    """

    def __init__(self, max_greedy: Optional[int] = None, batch_size: Optional[int] = None):
        self.max_greedy = check_int(max_greedy, 'max_greedy', minimum=0, none_ok=True,
                                    owner='coreset')
        self.options = detection_overrides('coreset', batch_size=batch_size)

    def rank(self, context: SelectionContext) -> Ranking:
        opts = context.detection_options(self.options)
        score_thr, calibration = context.score_threshold(opts)
        pool = detect_pool(context.model, context.cfg, context.unlabeled_ann_file,
                           opts.batch_size, with_features=True, title='coreset: pool features')
        labeled = detect_pool(context.model, context.cfg, context.labeled_ann_file,
                              opts.batch_size, with_features=True,
                              title='coreset: labeled features')
        ids = list(pool)
        features = torch.stack([pool[i].features for i in ids] +
                               [labeled[i].features for i in labeled])
        mask = torch.zeros(len(features), dtype=torch.bool)
        mask[len(ids):] = True
        n = len(ids) if self.max_greedy is None else min(self.max_greedy, len(ids))
        picks, picked_d, min_d = k_center_greedy_with_distances(features.double(), mask, n)
        scores = {ids[k]: float(d) for k, d in zip(picks, picked_d)}
        rest = sorted(set(range(len(ids))) - set(picks), key=lambda k: (-float(min_d[k]), k))
        scores.update({ids[k]: float(min_d[k]) for k in rest})
        return Ranking(
            order=[ids[k] for k in picks + rest], scores=scores,
            details={i: dict(num_pseudo_boxes=int(
                (pool[i].detections.scores >= score_thr).sum())) for i in ids},
            info=dict(feature_dim=int(features.shape[1]), num_centres=len(labeled),
                      greedy_picks=n, **threshold_info(score_thr, calibration)))
