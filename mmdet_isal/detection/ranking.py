"""ISAL's order of the scored pool, and its two output files (scores and selection)."""
from typing import Dict, List, Optional


from ..cost import CostModel
from ..influence.checks import check_choice, check_int
from ..utils.fileio import atomic_write_json
from ..utils.rng import Stream, stream_rng
from .options import ScoringOptions

#: ``status`` of an image in ``score_pool``'s output.
SCORED, UNRANKED, NONFINITE = 'scored', 'unranked', 'nonfinite'


def status_of(record: dict) -> str:
    """An image's ``status`` in ``score_pool``'s output; records without one (older files)
    count as scored when their influence is a number and as non-finite when it is None."""
    if 'status' in record:
        return record['status']
    return SCORED if record['influence'] is not None else NONFINITE


def rank_by_influence(scores: Dict[object, dict], seed: int = 0,
                      rank_by: str = 'influence',
                      cost: Optional[CostModel] = None) -> List[object]:
    """Image ids in ISAL's order of preference.

    1. scored images, most negative influence first (ties by id); with
       ``rank_by='influence_per_box'``, most negative ``influence / max(num_pseudo_boxes, 1)``;
       with ``rank_by='influence_per_cost'``, most negative influence per predicted annotation
       second, ``influence / (cost.per_image + cost.per_box * num_pseudo_boxes)`` (the
       greedy knapsack's order under a seconds budget);
    2. images left unranked (``status == 'unranked'``: no pseudo box under
       ``no_pseudo_boxes='last'``), in an order drawn from ``seed`` alone (a permutation of
       their ids sorted as strings), so it depends neither on scores nor on the pool order;
    3. images whose influence was not finite (``status == 'nonfinite'``), by id; these are
       never selected by :func:`write_isal_outputs`.

    Args:
        scores: ``score_pool``'s output. Records without ``status`` count as scored when their
            influence is a number and as non-finite when it is None.
        seed: seeds the order of the unranked images.
        rank_by: :attr:`ScoringOptions.rank_by`.
        cost: the resolved annotation cost model (seconds per image and per box), needed by
            ``rank_by='influence_per_cost'`` only.
    """
    check_choice(rank_by, 'rank_by', ScoringOptions.RANK_BY)
    if rank_by == 'influence_per_cost' and (cost is None or not cost.is_resolved):
        raise ValueError("rank_by='influence_per_cost' needs the annotation cost model "
                         "(active_learning.cost, per_image and per_box in seconds)")

    def value(i):
        record = scores[i]
        if rank_by == 'influence_per_box':
            return record['influence'] / max(record['num_pseudo_boxes'], 1)
        if rank_by == 'influence_per_cost':
            return record['influence'] / cost.image_seconds(record['num_pseudo_boxes'])
        return record['influence']

    scored = sorted((i for i, r in scores.items() if status_of(r) == SCORED),
                    key=lambda i: (value(i), str(i)))
    unranked = sorted((i for i, r in scores.items() if status_of(r) == UNRANKED), key=str)
    perm = stream_rng(seed, Stream.UNRANKED_ORDER).permutation(len(unranked))
    nonfinite = sorted((i for i, r in scores.items() if status_of(r) == NONFINITE), key=str)
    return scored + [unranked[k] for k in perm] + nonfinite


def write_isal_outputs(scores_path: str, selection_path: str, scores: Dict[object, dict],
                       budget: Optional[int], diagnostics: Optional[dict] = None,
                       seed: int = 0, rank_by: str = 'influence',
                       cost: Optional[CostModel] = None) -> Dict[str, str]:
    """Write the scores and the selection as JSON (atomically).

    ``scores_path``: ``{"images": [{"image_id", "influence", "num_pseudo_boxes", "status"},
    ...], "summary": diagnostics}``. ``selection_path``: ``{"budget", "image_ids",
    "influence"}``, the first ``budget`` images of :func:`rank_by_influence` (most negative
    influence first, then unranked images in the seed's order; never a non-finite one), or
    all of them if ``budget`` is None.

    Args:
        budget: images to select, an integer >= 0, or None (all).
        seed: the seed of scoring, which orders the unranked images.
        rank_by: :attr:`ScoringOptions.rank_by`.
        cost: the annotation cost model (``rank_by='influence_per_cost'``).

    Returns:
        ``dict(scores=scores_path, selection=selection_path)``.
    """
    check_int(budget, 'budget (images)', minimum=0, none_ok=True)
    order = [i for i in rank_by_influence(scores, seed, rank_by, cost)
             if status_of(scores[i]) != NONFINITE]
    chosen = order if budget is None else order[:budget]
    atomic_write_json(scores_path, dict(
        images=[dict(image_id=i, **record) for i, record in scores.items()],
        summary=diagnostics or {}))
    atomic_write_json(selection_path, dict(
        budget=budget, image_ids=chosen,
        influence=[scores[i]['influence'] for i in chosen]))
    return dict(scores=scores_path, selection=selection_path)
