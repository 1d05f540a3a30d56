"""Learning loss: the ranking loss, the per-image targets, training on the synthetic set, and
one step of the loop by name."""
import pytest
import torch

from mmdet_isal.active import ActiveLearningLoop
from mmdet_isal.detection import BatchSequence, build_scoring_dataset, per_image_losses
from mmdet_isal.models import LossPredictionDetector, margin_ranking_loss
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies import SelectionContext
from tests.active.conftest import al_config
from tests.detection.test_losses import build_model

TRAIN = 'annotations/instances_train.json'
VAL = 'annotations/instances_val.json'


def test_margin_ranking_loss_exact():
    pred = torch.tensor([1., 0., 0., 2.])
    target = torch.tensor([3., 1., 2., 0.])
    # pairs (0, 3) and (1, 2): true differences 3 and -1, predicted -1 and 0:
    # max(0, 1 - 1 * -1) = 2 and max(0, 1 - (-1) * 0) = 1, mean 1.5
    assert float(margin_ranking_loss(pred, target)) == pytest.approx(1.5, abs=1e-12)
    # well separated in the right order: no loss
    assert float(margin_ranking_loss(torch.tensor([5., 0.]), torch.tensor([1., 0.]))) == 0.0
    assert float(margin_ranking_loss(torch.tensor([1.]), torch.tensor([2.]))) == 0.0
    with pytest.raises(ValueError, match='shape'):
        margin_ranking_loss(torch.zeros(4), torch.zeros(3))


def _cfg(shapes_coco, toy_cfg):
    cfg = toy_cfg('fcos_shapes_learning_loss_al', shapes_coco)
    cfg.pop('active_learning')
    return cfg


def test_targets_are_the_per_image_detection_losses(shapes_coco, toy_cfg):
    model = build_model(_cfg(shapes_coco, toy_cfg))
    assert isinstance(model, LossPredictionDetector)
    batch = BatchSequence(build_scoring_dataset(_cfg(shapes_coco, toy_cfg), TRAIN,
                                                with_boxes=True), 4)[0]
    expected = per_image_losses(model.detector, batch).detach()
    data = model.data_preprocessor(batch, False)
    feats = model.detector.extract_feat(data['inputs'])
    got = model.image_losses(feats, data['data_samples'])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert len(set(got.tolist())) == 4


def _pairwise_ranking_loss(model, batch):
    """The margin ranking loss over every pair of the batch's images, on the features of
    training (batch norm with the batch's statistics, as the module saw them)."""
    with torch.no_grad():
        data = model.data_preprocessor(batch, True)
        feats = model.detector.extract_feat(data['inputs'])
        target = model.image_losses(feats, data['data_samples'])
        pred = model.loss_module(feats)
    i, j = torch.triu_indices(len(pred), len(pred), 1)
    sign = torch.where(target[i] > target[j], 1.0, -1.0)
    return float(torch.clamp(1.0 - sign * (pred[i] - pred[j]), min=0).mean())


@pytest.mark.slow  # trains the detector for 6 epochs
def test_ranking_loss_goes_down_while_the_detector_trains(shapes_coco, toy_cfg):
    cfg = _cfg(shapes_coco, toy_cfg)
    model = build_model(cfg).train()
    dataset = build_scoring_dataset(cfg, TRAIN, with_boxes=True)
    batches = BatchSequence(dataset, 8)  # 4 pairs per batch
    everything = BatchSequence(dataset, len(dataset))[0]
    optim = torch.optim.AdamW(model.parameters(), lr=2e-3)  # the toy recipe's
    before = _pairwise_ranking_loss(model, everything)
    # measured over 20 epochs: 0.96 before, 1.02 after 1, 0.66-0.92 from epoch 5 on (the
    # detector's losses move while it trains)
    for epoch in range(6):
        for batch in batches:
            data = model.data_preprocessor(batch, True)
            loss, _ = model.parse_losses(model(**data, mode='loss'))
            optim.zero_grad()
            loss.backward()
            optim.step()
    after = _pairwise_ranking_loss(model, everything)
    assert after < 0.8 * before, (before, after)
    # the detector's own gradient does not reach the module, nor the module's the detector:
    data = model.data_preprocessor(batches[0], True)
    model.zero_grad()
    model(**data, mode='loss')['loss_pred'].backward()
    assert all(p.grad is None or not p.grad.any() for p in model.detector.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.loss_module.parameters())


@pytest.mark.slow
def test_strategy_ranks_by_predicted_loss_and_needs_the_module(shapes_coco, toy_cfg,
                                                               tmp_path):
    cfg = _cfg(shapes_coco, toy_cfg)
    model = build_model(cfg)
    strategy = STRATEGIES.build(dict(type='learning_loss', _scope_=STRATEGIES.scope))
    context = SelectionContext(model=model, cfg=cfg, unlabeled_ann_file=TRAIN,
                               labeled_ann_file=VAL, reference_ann_file=VAL,
                               work_dir=str(tmp_path))
    ranking = strategy.rank(context)
    batch = BatchSequence(build_scoring_dataset(cfg, TRAIN, with_boxes=False), 24)[0]
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        pred = model.loss_module(model.detector.extract_feat(data['inputs']))
    expected = {s.metainfo['img_id']: float(p) for s, p in zip(data['data_samples'], pred)}
    assert ranking.scores == pytest.approx(expected, abs=1e-5)
    ordered = [ranking.scores[i] for i in ranking.order]
    assert ordered == sorted(ordered, reverse=True)
    plain = build_model(toy_cfg('fcos_shapes', shapes_coco))
    with pytest.raises(TypeError, match='LossPredictionDetector'):
        strategy.rank(SelectionContext(model=plain, cfg=cfg, unlabeled_ann_file=TRAIN,
                                       labeled_ann_file=VAL, reference_ann_file=VAL,
                                       work_dir=str(tmp_path)))


@pytest.mark.slow  # the loop trains a detector
def test_runs_one_step_of_the_loop_by_name(shapes_coco, tmp_path):
    cfg = al_config(shapes_coco, tmp_path, detector='fcos_shapes_learning_loss_al',
                    strategy='learning_loss', scorer=dict(score_thr=0.0))
    cfg.merge_from_dict({'train_cfg.max_epochs': 1})
    ledger = ActiveLearningLoop(cfg).run()
    assert ledger.steps[1]['finished']
    ranked = ledger.ranking(0)
    scores = [ledger.images[i]['scores'][0] for i in ranked]
    assert len(ranked) == 24 - 8 and scores == sorted(scores, reverse=True)
    assert set(ledger.labeled_ids(1)) == set(ledger.labeled_ids(0)) | set(ranked[:6])
