"""score_pool with LiSSA's feature cache gives the scores it gives without (bitwise)."""
from mmdet_isal.detection import score_pool

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


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
                            labeled_ann_file=TRAIN, scorer=dict(options, feature_cache_mb=cache_mb),
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
    assert cached_diag['feature_cache'] == dict(
        cached_diag['feature_cache'], groups=2, misses=2, hits=7)
    assert cached_diag['solver'] == plain_diag['solver']
