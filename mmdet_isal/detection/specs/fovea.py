"""FoveaBox (Kong et al., TIP 2020): ``FoveaHead``, anchor-free, boxes from fovea areas."""
from .base import BRANCH_TAPS, HeadSpec, register


@register
class FoveaSpec(HeadSpec):
    """``FoveaHead``: ``conv_cls`` and ``conv_reg`` after the towers."""
    covers = 'FoveaHead'
    preset = ('conv_cls', 'conv_reg')
    taps = BRANCH_TAPS
    tiny = dict(base='mmdet::foveabox/fovea_r50_fpn_4xb4-1x_coco.py',
                model=dict(bbox_head=dict(num_classes=8, in_channels=32, feat_channels=32,
                                          stacked_convs=2)))
