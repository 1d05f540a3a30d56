"""select_parameters: names, module prefixes, regular expressions, order and errors."""
import pytest
import torch
from torch import nn

from mmdet_isal.influence import select_parameters


class Head(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv_cls = nn.Conv2d(2, 3, 1)
        self.conv_reg = nn.Conv2d(2, 4, 1)
        self.conv_centerness = nn.Conv2d(2, 1, 1, bias=False)


class Detector(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 2, 3), nn.BatchNorm2d(2))
        self.bbox_head = Head()


@pytest.fixture
def det():
    return Detector()


def test_exact_parameter_name(det):
    sel = select_parameters(det, ['bbox_head.conv_cls.weight'])
    assert list(sel) == ['bbox_head.conv_cls.weight']
    assert sel['bbox_head.conv_cls.weight'] is det.bbox_head.conv_cls.weight


def test_module_name_selects_its_parameters(det):
    sel = select_parameters(det, 'bbox_head.conv_cls')  # a single string is one pattern
    assert list(sel) == ['bbox_head.conv_cls.weight', 'bbox_head.conv_cls.bias']
    # A prefix must end at a dot: 'bbox_head.conv_c' is no module.
    with pytest.raises(ValueError, match='bbox_head.conv_c'):
        select_parameters(det, ['bbox_head.conv_c'])


def test_regex_fullmatch_on_names_and_modules(det):
    sel = select_parameters(det, [r'bbox_head\.conv_(cls|reg)'])
    assert list(sel) == ['bbox_head.conv_cls.weight', 'bbox_head.conv_cls.bias',
                         'bbox_head.conv_reg.weight', 'bbox_head.conv_reg.bias']
    assert list(select_parameters(det, [r'.*\.bias'])) == [
        'backbone.0.bias', 'backbone.1.bias', 'bbox_head.conv_cls.bias',
        'bbox_head.conv_reg.bias'
    ]
    # fullmatch, not search: 'conv_cls' alone matches no complete name or module name.
    with pytest.raises(ValueError, match="'conv_cls'"):
        select_parameters(det, ['conv_cls'])


def test_order_is_model_order_and_duplicates_removed(det):
    sel = select_parameters(det, [
        'bbox_head.conv_centerness', 'bbox_head.conv_cls.bias', 'backbone.0.weight',
        'bbox_head.conv_cls', r'bbox_head\.conv_cls\..*'
    ])
    assert list(sel) == ['backbone.0.weight', 'bbox_head.conv_cls.weight',
                         'bbox_head.conv_cls.bias', 'bbox_head.conv_centerness.weight']


def test_frozen_parameters_can_be_selected(det):
    det.bbox_head.conv_reg.requires_grad_(False)
    assert list(select_parameters(det, ['bbox_head.conv_reg'])) == [
        'bbox_head.conv_reg.weight', 'bbox_head.conv_reg.bias'
    ]
    assert not det.bbox_head.conv_reg.weight.requires_grad  # selecting changes nothing


def test_unmatched_pattern_is_named_with_available_names(det):
    with pytest.raises(ValueError) as err:
        select_parameters(det, ['bbox_head.conv_cls', 'bbox_head.fc_cls'])
    message = str(err.value)
    assert "'bbox_head.fc_cls'" in message
    assert 'bbox_head.conv_cls.weight' in message  # lists parameters ...
    assert 'bbox_head.conv_reg' in message  # ... and modules


def test_long_name_lists_are_abbreviated():
    model = nn.Sequential(*[nn.Linear(1, 1) for _ in range(30)])
    with pytest.raises(ValueError, match=r'more\)'):
        select_parameters(model, ['nothing'])


def test_bad_patterns(det):
    with pytest.raises(ValueError, match='empty'):
        select_parameters(det, [])
    with pytest.raises(ValueError, match='strings'):
        select_parameters(det, [3])
    with pytest.raises(ValueError, match=r"'bbox_head\[' .*regular expression"):
        select_parameters(det, ['bbox_head['])


def test_literal_match_needs_no_escaping():
    model = nn.Module()
    model.register_parameter('a+b', nn.Parameter(torch.zeros(1)))  # '+' is a regex operator
    assert list(select_parameters(model, ['a+b'])) == ['a+b']
