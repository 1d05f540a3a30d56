"""Every registered detector family, through its spec's tiny detector: each image's loss, and its
gradient on the preset parameters, are the same alone and in a batch; the preset layers and the
feature taps exist. The families come from the registry itself, so a newly registered spec is
tested automatically, and fails here until it is in a tiny detector."""
import copy
import functools
import os.path as osp

import pytest
import torch

from mmdet_isal.detection import (SPECS, BatchSequence, DetectorSpec, HeadSpec,
                                  build_scoring_dataset, detector_spec, head_spec,
                                  parameter_preset, per_image_losses)
from mmdet_isal.detection.features import feature_modules
from mmdet_isal.detection.specs import HEAD_PATHS, TINY_MODEL, get_path, lookup, register

#: the tolerance of "the same", relative to the largest magnitude, per dtype. Measured: float64
#: losses bitwise equal and gradients within 2e-16 (FCOS: its box branch is float32 inside, but
#: rounds the same alone and in a batch); float32 (Faster R-CNN) losses bitwise equal,
#: gradients within 1e-6 (a convolution over 4 images rounds differently from one over 1).
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}

TINY = sorted(name for name, spec in SPECS.items() if spec.tiny is not None)


@functools.lru_cache(maxsize=None)
def tiny_detector(name: str, data_root: str):
    """``(cfg, model)``: the tiny detector of ``SPECS[name]`` on the shapes data, in eval mode
    and in its dtype; the data pipelines are the toy FCOS's."""
    import mmdet
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    from tests.conftest import toy_config
    tiny = SPECS[name].tiny
    assert tiny['base'].startswith('mmdet::'), tiny['base']
    family = Config.fromfile(osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs',
                                      tiny['base'][len('mmdet::'):]))
    family.merge_from_dict(dict(model=TINY_MODEL))
    family.merge_from_dict(dict(model=tiny['model']))
    cfg = toy_config('fcos_shapes', data_root)
    cfg.model = family.model
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return cfg, model.to(getattr(torch, tiny.get('dtype', 'float64'))).eval()


def specs_of(model) -> set:
    """The specs a detector is looked up by: its own and its heads'."""
    found = {detector_spec(model)}
    for path in HEAD_PATHS:
        head = get_path(model, path)
        if head is not None and head_spec(head) is not None:
            found.add(head_spec(head))
    return found


@pytest.mark.parametrize('name', TINY)
def test_a_family_s_losses_and_gradients_do_not_depend_on_the_batch(name, shapes_coco):
    cfg, model = tiny_detector(name, shapes_coco)
    spec = SPECS[name]
    assert spec in specs_of(model), f'the tiny detector of {name} does not contain {name}'
    names = parameter_preset(model, include_bias=True)
    named = dict(model.named_parameters())
    assert names and set(names) <= set(named)
    for path in HEAD_PATHS:  # every preset layer of every head is in the preset
        head = get_path(model, path)
        if head is not None:
            assert {f'{path}.{layer}.weight' for layer in head_spec(head).preset} <= set(names)
    taps = [head_spec(h).taps for h in (get_path(model, p) for p in HEAD_PATHS) if h is not None]
    if any(t is not None for t in taps):
        modules = feature_modules(model)
        assert len(modules) == 2 and all(isinstance(m, torch.nn.Module) for m in modules)

    params = [named[n] for n in names]
    dataset = build_scoring_dataset(cfg, 'annotations/instances_train.json', with_boxes=True)
    batch = BatchSequence(dataset, 4, indices=range(4))[0]
    assert sum(len(s.gt_instances) for s in batch['data_samples']) > 0
    together = per_image_losses(model, batch)
    grads_together = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                      for loss in together]
    rtol = RTOL[params[0].dtype]
    for i, single in enumerate(BatchSequence(dataset, 1, indices=range(4))):
        alone = per_image_losses(model, single)[0]
        assert torch.isfinite(alone) and alone > 0
        torch.testing.assert_close(together[i], alone, rtol=rtol, atol=0)
        grads = torch.autograd.grad(alone, params, allow_unused=True)
        assert any(g is not None and g.abs().max() > 0 for g in grads)
        for param, a, b in zip(names, grads_together[i], grads):
            assert (a is None) == (b is None), param
            if b is not None:
                torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * float(b.abs().max()),
                                           msg=lambda m: f'{name}, image {i}, {param}: {m}')


def test_every_registered_spec_is_in_a_tiny_detector(shapes_coco):
    """Each spec is looked up by at least one tiny detector, whose test above then checks it."""
    covered = set()
    for name in TINY:
        covered |= specs_of(tiny_detector(name, shapes_coco)[1])
    missing = sorted(s.covers for s in SPECS.values() if s not in covered)
    assert not missing, (f'registered specs without a tiny detector: {missing}; give each a '
                         f'`tiny` config (see mmdet_isal.detection.specs.base.Spec)')


def test_the_most_specific_spec_wins(monkeypatch):
    from mmdet.models.dense_heads import AnchorHead, RetinaHead

    class MyRetina(RetinaHead):
        pass

    class MyAnchor(AnchorHead):
        pass

    for head, covers in ((MyRetina, 'RetinaHead'), (MyAnchor, 'AnchorHead')):
        obj = head.__new__(head)  # the lookup reads only the class
        assert head_spec(obj) is SPECS[covers]
        assert lookup(obj, HeadSpec)[1].__name__ == covers

    @register
    class MyRetinaSpec(HeadSpec):
        covers = 'MyRetina'
        preset = ('retina_cls',)

    try:
        assert head_spec(MyRetina.__new__(MyRetina)) is SPECS['MyRetina']
        with pytest.raises(ValueError, match='MyRetina already has the spec MyRetinaSpec'):
            register(type('Other', (HeadSpec,), dict(covers='MyRetina')))
    finally:
        del SPECS['MyRetina']
    # a head spec is never a detector's, whatever the name
    assert lookup(MyRetina.__new__(MyRetina), DetectorSpec) == (None, None)


def test_a_head_without_preset_layers_is_named(shapes_coco):
    """A subclass of a registered head with other layers (SSD's are lists): a clear error."""
    _, model = tiny_detector('RetinaHead', shapes_coco)
    model = copy.deepcopy(model)
    del model.bbox_head.retina_reg
    with pytest.raises(TypeError, match=r"bbox_head of type RetinaHead has no layer "
                                        r"'retina_reg'.*scorer=dict\(params="):
        parameter_preset(model)
    model.bbox_head = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(TypeError, match=r'no parameter preset for bbox_head of type Conv2d.*'
                                        r'HeadSpec'):
        parameter_preset(model)
