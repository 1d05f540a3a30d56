"""Core-set: k-center greedy against a brute-force reference, and the strategy on a detector."""
import pytest
import torch

from mmdet_isal.detection.features import detect_pool
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies import SelectionContext, k_center_greedy
from mmdet_isal.strategies import coreset as coreset_module
from tests.detection.test_losses import build_model

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


def brute_force(features, labeled, n):
    """The textbook k-center greedy on the full N x N distance matrix."""
    d = torch.cdist(features.double(), features.double())
    centres = [k for k in range(len(features)) if labeled[k]]
    picks = []
    for _ in range(n):
        best, best_d = None, -1.0
        for k in range(len(features)):
            if k in centres:
                continue
            nearest = min((float(d[k, c]) for c in centres), default=float('inf'))
            if nearest > best_d:
                best, best_d = k, nearest
        picks.append(best)
        centres.append(best)
    return picks


@pytest.mark.parametrize('num,dim,num_labeled,n', [(40, 3, 5, 35), (60, 8, 1, 20),
                                                   (30, 2, 0, 10), (25, 4, 24, 1)])
def test_k_center_greedy_equals_brute_force(num, dim, num_labeled, n):
    gen = torch.Generator().manual_seed(num * 100 + dim)
    features = torch.randn(num, dim, generator=gen)
    labeled = torch.zeros(num, dtype=torch.bool)
    labeled[torch.randperm(num, generator=gen)[:num_labeled]] = True
    picks = k_center_greedy(features, labeled, n)
    assert picks == brute_force(features, labeled, n)
    assert len(set(picks)) == n and not labeled[picks].any()


def test_k_center_greedy_takes_labeled_centres_in_blocks(monkeypatch):
    # more labeled rows than one block: the running minimum must combine the blocks
    monkeypatch.setattr(coreset_module, '_CHUNK', 3)
    gen = torch.Generator().manual_seed(7)
    features = torch.randn(30, 4, generator=gen)
    labeled = torch.zeros(30, dtype=torch.bool)
    labeled[:11] = True
    assert k_center_greedy(features, labeled, 19) == brute_force(features, labeled, 19)


def test_k_center_greedy_on_a_line():
    # centre 0; picks 10 (farthest), then 5 (halfway), then 2 and 8 tie at distance 2: the
    # lower index first
    features = torch.tensor([[0.], [10.], [5.], [2.], [8.]])
    labeled = torch.tensor([True, False, False, False, False])
    assert k_center_greedy(features, labeled, 4) == [1, 2, 3, 4]


def test_k_center_greedy_bad_arguments_name_them():
    features = torch.zeros(4, 2)
    mask = torch.tensor([True, False, False, False])
    with pytest.raises(ValueError, match=r'n must be an integer in \[0, 3\]'):
        k_center_greedy(features, mask, 4)
    with pytest.raises(ValueError, match='labeled_mask must be a bool tensor'):
        k_center_greedy(features, mask.int(), 1)
    with pytest.raises(ValueError, match='features must be a float tensor'):
        k_center_greedy(torch.zeros(4, 2, dtype=torch.long), mask, 1)
    assert k_center_greedy(features, mask, 0) == []


@pytest.mark.slow
def test_coreset_ranks_the_pool_by_k_center_greedy_from_the_labeled_images(
        shapes_coco, toy_cfg, tmp_path):
    cfg = toy_cfg('fcos_shapes', shapes_coco)
    model = build_model(cfg)
    strategy = STRATEGIES.build(dict(type='coreset', _scope_=STRATEGIES.scope))
    # the val images play the labeled set
    context = SelectionContext(model=model, cfg=cfg, unlabeled_ann_file=TRAIN,
                               labeled_ann_file=VAL, reference_ann_file=VAL,
                               work_dir=str(tmp_path))
    ranking = strategy.rank(context)
    pool = detect_pool(model, cfg, TRAIN, with_features=True)
    labeled = detect_pool(model, cfg, VAL, with_features=True)
    ids = list(pool)
    features = torch.stack([pool[i].features for i in ids] + [labeled[i].features
                                                                for i in labeled])
    mask = torch.arange(len(features)) >= len(ids)
    assert ranking.order == [ids[k] for k in brute_force(features, mask, len(ids))]
    dists = [ranking.scores[i] for i in ranking.order]
    assert dists == sorted(dists, reverse=True)  # each pick is as far as any later one
    assert ranking.info['feature_dim'] == 2 * 5 * 32 and ranking.info['num_centres'] == 8
    # a partial greedy: the same first picks, the rest by distance to the nearest centre
    partial = STRATEGIES.build(dict(type='coreset', max_greedy=5, _scope_=STRATEGIES.scope))
    head = partial.rank(context)
    assert head.order[:5] == ranking.order[:5] and sorted(head.order) == sorted(ids)
    rest = [head.scores[i] for i in head.order[5:]]
    assert rest == sorted(rest, reverse=True)


def test_coreset_bad_options_fail_at_build():
    with pytest.raises(ValueError, match='max_greedy'):
        STRATEGIES.build(dict(type='coreset', max_greedy=-1, _scope_=STRATEGIES.scope))
