"""The classifier, its list dataset and its accuracy metric, and its backbone's weights in the toy
detector's backbone."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.structures import BaseDataElement

from mmdet_isal.classification import (ClassificationAccuracy, ClassificationListDataset,
                                       ImageClassifier, read_label_list)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _cfg(name):
    return Config.fromfile(osp.join(ROOT, 'configs', 'classification', f'{name}.py'))


def _classifier(num_classes=8):
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = _cfg('resnet18_shapes').model.to_dict()
    cfg.pop('type')
    cfg['num_classes'] = num_classes
    return ImageClassifier(**cfg)


def test_forward_modes_agree_with_the_math():
    torch.manual_seed(0)
    model = _classifier().eval()
    inputs = torch.randn(3, 3, 32, 32)
    labels = torch.tensor([2, 0, 7])
    samples = [BaseDataElement(gt_label=labels[k:k + 1]) for k in range(3)]
    logits = model(inputs, mode='tensor')
    assert logits.shape == (3, 8)
    # 'tensor' is fc of the spatial mean of the backbone's last map
    feats = model.backbone(inputs)[-1]
    # 32 px: the stem's stride 4, then the stages' strides (1, 1, 2, 2) leave a 2x2 map
    assert feats.shape == (3, 128, 2, 2)
    torch.testing.assert_close(logits, model.fc(feats.mean((2, 3))))
    loss = model(inputs, samples, mode='loss')['loss']
    manual = -(logits.log_softmax(1)[torch.arange(3), labels]).mean()
    torch.testing.assert_close(loss, manual)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels))
    out = model(inputs, samples, mode='predict')
    for k, sample in enumerate(out):
        torch.testing.assert_close(sample.pred_score, logits[k].softmax(0))
        assert int(sample.pred_label) == int(logits[k].argmax())
    with pytest.raises(ValueError, match='mode must be'):
        model(inputs, mode='features')
    with pytest.raises(ValueError, match='no gt_label'):
        model(inputs, [BaseDataElement() for _ in range(3)], mode='loss')
    with pytest.raises(ValueError, match='num_classes must be an integer >= 2'):
        _classifier(num_classes=1)


def test_backbone_weights_load_into_the_toy_detector(tmp_path):
    """The pretraining's weights file (backbone parameter names, under state_dict) is what the
    toy FCOS's backbone loads with init_cfg=dict(type='Pretrained', checkpoint=...)."""
    from mmdet.registry import MODELS
    torch.manual_seed(1)
    classifier = _classifier(num_classes=10)
    with torch.no_grad():
        for p in classifier.backbone.parameters():
            p.add_(torch.randn_like(p))
        for name, b in classifier.backbone.named_buffers():
            if b.is_floating_point():
                b.uniform_(0.5, 1.5)
    state = classifier.backbone.state_dict()
    path = str(tmp_path / 'backbone.pth')
    torch.save(dict(state_dict=state, meta=dict(classes=['a'] * 10)), path)
    det_cfg = Config.fromfile(osp.join(ROOT, 'configs', 'toy', 'fcos_shapes.py'))
    det_cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path)
    detector = MODELS.build(det_cfg.model)
    detector.init_weights()
    loaded = detector.backbone.state_dict()
    assert sorted(loaded) == sorted(state)
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_list_dataset_reads_files_and_labels(tmp_path):
    (tmp_path / 'images').mkdir()
    (tmp_path / 'train.txt').write_text('a.png 1\n\nb.png 0\n')
    ds = ClassificationListDataset(ann_file='train.txt', data_root=str(tmp_path),
                                   data_prefix=dict(img='images/'), metainfo=dict(
                                       classes=('x', 'y')), lazy_init=True, pipeline=[])
    ds.full_init()
    assert [(d['img_id'], d['gt_label']) for d in ds] == [('a.png', 1), ('b.png', 0)]
    assert ds[0]['img_path'] == osp.join(str(tmp_path), 'images', 'a.png')


@pytest.mark.parametrize('text, match', [
    ('a.png 2\n', r'line 1: label 2 is not in \[0, 2\)'),
    ('a.png\n', 'line 1: .* is not "file label"'),
    ('a.png 1\na.png 0\n', 'line 2: a.png is listed twice'),
    ('a.png one\n', 'is not "file label"'),
])
def test_bad_list_lines_are_named(tmp_path, text, match):
    path = tmp_path / 'list.txt'
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_label_list(str(path), num_classes=2)
    with pytest.raises(FileNotFoundError, match='make the data set first'):
        read_label_list(str(tmp_path / 'missing.txt'))


def test_accuracy_metric_exact():
    metric = ClassificationAccuracy(classes=('a', 'b', 'c'))
    pairs = [(0, 0), (0, 1), (1, 1), (1, 1), (1, 2), (2, 2)]  # (label, prediction)
    metric.process(None, [dict(gt_label=torch.tensor([y]), pred_label=torch.tensor([p]))
                          for y, p in pairs])
    out = metric.compute_metrics(metric.results)
    assert out['accuracy'] == pytest.approx(4 / 6)
    assert out['accuracy_a'] == pytest.approx(1 / 2)
    assert out['accuracy_b'] == pytest.approx(2 / 3)
    assert out['accuracy_c'] == pytest.approx(1.0)
    assert out['mean_class_accuracy'] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert 'cross_entropy' not in out  # no scores: no loss
    with pytest.raises(ValueError, match='needs gt_label and pred_label'):
        metric.process(None, [dict(gt_label=torch.tensor([0]))])


def test_prior_corrected_accuracy_exact(tmp_path):
    """Predictions moved from the training prior (counts + 1) to the target prior: worked by
    hand on two classes, training counts 3 and 1 (prior 4/6, 2/6), target 1/2, 1/2."""
    samples = [  # (label, scores): raw argmax, corrected argmax of p_k / train_k * target_k
        (1, [0.6, 0.4]),  # 0 (wrong); 0.9 vs 1.2: 1 (right)
        (0, [0.7, 0.3]),  # 0 (right); 1.05 vs 0.9: 0 (right)
        (0, [0.2, 0.8]),  # 1 (wrong); 0.3 vs 2.4: 1 (wrong)
    ]
    counts = torch.tensor([3., 1.], dtype=torch.float64)

    def run(metric):
        metric.process(None, [dict(gt_label=torch.tensor([y]), pred_score=torch.tensor(p),
                                   pred_label=torch.tensor(p).argmax().view(1),
                                   train_class_counts=counts) for y, p in samples])
        return metric.compute_metrics(metric.results)

    out = run(ClassificationAccuracy(target_prior=[1, 1]))
    assert out['accuracy'] == pytest.approx(1 / 3)
    assert out['mean_class_accuracy'] == pytest.approx((1 / 2 + 0) / 2)
    assert out['prior_corrected_accuracy'] == pytest.approx(2 / 3)
    assert out['prior_corrected_mean_class_accuracy'] == pytest.approx((1 / 2 + 1) / 2)
    # a list file whose label counts (plus one) give the same proportions; and the training
    # prior as target changes nothing
    split = tmp_path / 'val.txt'
    split.write_text('a.png 0\nb.png 1\nc.png 1\nd.png 0\n')
    assert run(ClassificationAccuracy(target_prior=str(split))) == out
    split.write_text('a.png 0\nb.png 0\n')  # counts 2, 0 (class 1 after the last label)
    skewed = run(ClassificationAccuracy(target_prior=str(split)))  # prior 3/4, 1/4
    # 0.6 * 1.5 * 3 = 2.7 vs 0.4 * 3 * 1 = 1.2: 0; 0.7: 0; 0.2 * 1.5 * 3 = 0.9 vs 2.4: 1
    assert skewed['prior_corrected_accuracy'] == pytest.approx(1 / 3)
    same = run(ClassificationAccuracy(target_prior=[4, 2]))
    assert same['prior_corrected_accuracy'] == same['accuracy'] == pytest.approx(1 / 3)
    # no target prior: the plain metrics only
    assert 'prior_corrected_accuracy' not in run(ClassificationAccuracy())
    # the cross-entropy of the labels' scores: -(ln 0.4 + ln 0.7 + ln 0.2) / 3
    assert out['cross_entropy'] == pytest.approx(-(np.log(0.4) + np.log(0.7) + np.log(0.2)) / 3)


def test_cross_entropy_of_an_underflowed_score_is_finite():
    metric = ClassificationAccuracy()
    metric.process(None, [dict(gt_label=torch.tensor([1]), pred_label=torch.tensor([0]),
                               pred_score=torch.tensor([1.0, 0.0]))])
    out = metric.compute_metrics(metric.results)
    assert out['cross_entropy'] == pytest.approx(-np.log(np.finfo(np.float32).tiny))


@pytest.mark.parametrize('prior, error, match', [
    ([1.0], ValueError, 'one positive proportion per class'),
    ([0.5, 0.0], ValueError, 'one positive proportion per class'),
    ('text', FileNotFoundError, 'does not exist'),
    ('empty', ValueError, 'lists no image'),
])
def test_bad_target_prior_is_named(tmp_path, prior, error, match):
    if prior == 'empty':
        prior = str(tmp_path / 'empty.txt')
        (tmp_path / 'empty.txt').write_text('\n')
    with pytest.raises(error, match=match):
        ClassificationAccuracy(target_prior=prior)


def test_prior_correction_needs_what_the_classifier_counted(tmp_path):
    metric = ClassificationAccuracy(target_prior=[1, 1, 1])
    sample = dict(gt_label=torch.tensor([0]), pred_label=torch.tensor([0]),
                  pred_score=torch.tensor([0.5, 0.3, 0.2]))
    with pytest.raises(ValueError, match='pred_score and train_class_counts'):
        metric.process(None, [sample])
    metric.process(None, [dict(sample, train_class_counts=torch.zeros(3))])
    with pytest.raises(ValueError, match='counted no training labels'):
        metric.compute_metrics(metric.results)
    wrong = ClassificationAccuracy(target_prior=[1, 1])
    wrong.process(None, [dict(sample, train_class_counts=torch.ones(3))])
    with pytest.raises(ValueError, match='target_prior has 2 classes, the classifier 3'):
        wrong.compute_metrics(wrong.results)
    split = tmp_path / 'four.txt'
    split.write_text('a.png 3\n')  # counts of 4 classes, for a classifier of 3
    wrong = ClassificationAccuracy(target_prior=str(split))
    wrong.process(None, [dict(sample, train_class_counts=torch.ones(3))])
    with pytest.raises(ValueError, match='target_prior has 4 classes, the classifier 3'):
        wrong.compute_metrics(wrong.results)


def test_classifier_counts_the_labels_it_trains_on(tmp_path):
    """train_class_counts: the labels of training-mode loss calls only, saved with the
    weights, handed to every prediction."""
    torch.manual_seed(0)
    model = _classifier(num_classes=4).train()
    inputs = torch.randn(5, 3, 32, 32)
    labels = [0, 2, 2, 3, 2]
    samples = [BaseDataElement(gt_label=torch.tensor([y])) for y in labels]
    model(inputs, samples, mode='loss')
    model(inputs[:2], samples[:2], mode='loss')
    assert model.train_class_counts.tolist() == [2, 0, 4, 1]
    model.eval()
    model(inputs, samples, mode='loss')  # a validation loss counts nothing
    assert model.train_class_counts.tolist() == [2, 0, 4, 1]
    out = model(inputs, samples, mode='predict')
    assert all(s.train_class_counts.tolist() == [2, 0, 4, 1] for s in out)
    other = _classifier(num_classes=4)
    other.load_state_dict(model.state_dict())
    assert other.train_class_counts.tolist() == [2, 0, 4, 1]


def test_channels_last_changes_the_layout_not_the_math(tmp_path):
    """The backbone's convolutions in NHWC (the shapes recipe's, faster on oneDNN): the same
    logits and gradients as NCHW to float64 rounding, and the layout survives mmengine's
    initialisation and a checkpoint's loading."""
    torch.manual_seed(0)
    fast = _classifier().double().train()
    fast.init_weights()
    conv = fast.backbone.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    cfg = _cfg('resnet18_shapes').model.to_dict()
    cfg.pop('type')
    plain = ImageClassifier(**dict(cfg, channels_last=False)).double().train()
    plain.load_state_dict(fast.state_dict())
    assert plain.backbone.conv1.weight.is_contiguous()
    inputs = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    labels = torch.tensor([1, 3, 0, 7])
    samples = [BaseDataElement(gt_label=labels[k:k + 1]) for k in range(4)]
    losses = [m(inputs, samples, mode='loss')['loss'] for m in (fast, plain)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-12, atol=1e-12)
    for m, loss in zip((fast, plain), losses):
        loss.backward()
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=name)
    # a checkpoint of the plain model loads into the NHWC one, which keeps its layout
    path = str(tmp_path / 'plain.pth')
    torch.save(plain.state_dict(), path)
    fast.load_state_dict(torch.load(path, weights_only=True))
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(fast.backbone.conv1.weight, plain.backbone.conv1.weight)


@pytest.mark.parametrize('shape', [(32, 32, 3), (32, 32, 1), (32, 32), (3, 5, 3)])
def test_random_pad_crop_is_a_shift_of_the_reflected_image(shape):
    """Each output is a window of numpy's reflect padding of the image (the fast path through
    OpenCV and the fallback for a pad wider than the image agree with it), at the shift drawn
    from numpy's generator."""
    from mmdet_isal.classification.data import RandomPadCrop
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    widths = ((4, 4), (4, 4)) + ((0, 0), ) * (len(shape) - 2)
    padded = np.pad(img, widths, mode='reflect')
    np.random.seed(5)
    shifts = [np.random.randint(0, 9, size=2) for _ in range(20)]
    np.random.seed(5)
    crop = RandomPadCrop(pad=4)
    for y, x in shifts:
        out = crop.transform(dict(img=img))['img']
        assert out.shape == img.shape
        np.testing.assert_array_equal(out, padded[y:y + shape[0], x:x + shape[1]])
    with pytest.raises(ValueError, match='pad must be an integer >= 0'):
        RandomPadCrop(pad=-1)


def test_cached_load_decodes_a_file_once_and_gives_copies(tmp_path):
    """The second read of a file comes from memory (the file may be gone), equal to the first
    and LoadImageFromFile's, and a copy: a transform writing into it changes no later read."""
    import cv2
    from mmcv.transforms import LoadImageFromFile
    from mmdet_isal.classification.data import CachedLoadImageFromFile
    path = str(tmp_path / 'a.png')
    img = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    cv2.imwrite(path, img)
    load = CachedLoadImageFromFile()
    first = load.transform(dict(img_path=path))
    plain = LoadImageFromFile().transform(dict(img_path=path))
    np.testing.assert_array_equal(first['img'], plain['img'])
    assert first['img_shape'] == first['ori_shape'] == (6, 9)
    first['img'][:] = 0
    import os
    os.remove(path)
    again = load.transform(dict(img_path=path))
    np.testing.assert_array_equal(again['img'], img)
    assert again['img_shape'] == (6, 9)
    with pytest.raises(FileNotFoundError):
        CachedLoadImageFromFile().transform(dict(img_path=path))
    assert CachedLoadImageFromFile(ignore_empty=True).transform(dict(img_path=path)) is None
