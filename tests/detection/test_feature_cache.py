"""score_pool with LiSSA's feature cache gives the scores it gives without (bitwise)."""
import pytest

from mmdet_isal.detection import ScorerOptions, score_pool

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


@pytest.mark.slow
def test_cached_lissa_scores_equal_uncached_ones(shapes_coco, toy_cfg):
    from tests.detection.test_losses import build_model
    cfg = toy_cfg('fcos_shapes', shapes_coco)
    model = build_model(cfg)
    options = dict(hessian_images=8, hessian_batch_size=4, repeats=2, power_iters=2,
                   power_batches=2, no_pseudo_boxes='score', score_thr=0.0)
    runs = []
    for cache_mb in (0, 64):
        diagnostics = {}
        scores = score_pool(model, cfg, unlabeled_ann_file=VAL, reference_ann_file=VAL,
                            labeled_ann_file=TRAIN,
                            scorer=ScorerOptions.from_dict(dict(options, feature_cache_mb=cache_mb)),
                            diagnostics=diagnostics)
        runs.append(([s['influence'] for s in scores.values()], diagnostics))
    (plain, plain_diag), (cached, cached_diag) = runs
    assert len(plain) == 8 and all(v is not None for v in plain)
    assert plain == cached  # the same floats, not close ones
    assert plain_diag['feature_cache']['hits'] == 0
    # 2 batches of 4, drawn 2 x 2 times by power iteration and 2 x 2 by the repeats, and the
    # first once more (its layerwise product is checked against the double backward):
    # computed once each
    assert cached_diag['hvp_mode'] == 'layerwise'
    assert cached_diag['loss_path'] == plain_diag['loss_path'] == 'vectorised'
    assert cached_diag['feature_cache'] == dict(
        cached_diag['feature_cache'], groups=2, misses=2, hits=7)
    assert cached_diag['solver'] == plain_diag['solver']


def test_selected_layers_hand_their_outputs_to_calls_without_grad_as_copies():
    """memoized_heads(selected=True): a selected (trainable) layer's output computed with
    gradients is returned, as a copy, to a later call on the same cached input without
    gradients; a call with gradients always computes its own."""
    import torch
    from torch import nn
    from mmdet_isal.detection import FeatureCache

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.bbox_head = nn.Module()
            self.bbox_head.tower = nn.Linear(3, 3)
            self.bbox_head.cls = nn.Linear(3, 2)
            self.bbox_head.tower.requires_grad_(False)

    model = Model().eval()
    cache = FeatureCache()
    x = torch.randn(4, 3)
    cache._room([x])  # an input the cache holds, as the group's features are
    calls = []
    model.bbox_head.cls.register_forward_hook(lambda m, a, out: calls.append(out))
    with cache.memoized_heads(model, selected=True):
        head = model.bbox_head
        with_grad = head.cls(head.tower(x))
        with torch.no_grad():
            copy = head.cls(head.tower(x))
        again = head.cls(head.tower(x))
    assert with_grad.requires_grad and not copy.requires_grad and again.requires_grad
    assert torch.equal(copy, with_grad) and copy.data_ptr() != with_grad.data_ptr()
    assert again is not with_grad
    assert cache.head_hits == 3  # the tower twice, the selected layer once (without grad)
    copy.mul_(2)  # changing the copy leaves the output the loss differentiates alone
    assert torch.equal(with_grad, again)
    assert 'forward' not in vars(head.cls) and 'forward' not in vars(head.tower)
    with torch.no_grad():  # outside the block: computed
        assert head.cls(head.tower(x)) is not calls[1]
