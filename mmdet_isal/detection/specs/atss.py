"""ATSS (Zhang et al., CVPR 2020): ``ATSSHead``, adaptive training sample selection, with a
centerness branch."""
from .base import BRANCH_TAPS, GN8, HeadSpec, register


@register
class ATSSSpec(HeadSpec):
    """``ATSSHead``: ``atss_cls``, ``atss_reg`` and ``atss_centerness`` after the towers."""
    covers = 'ATSSHead'
    preset = ('atss_cls', 'atss_reg', 'atss_centerness')
    taps = BRANCH_TAPS
    tiny = dict(base='mmdet::atss/atss_r50_fpn_1x_coco.py',
                model=dict(bbox_head=dict(num_classes=8, in_channels=32, feat_channels=32,
                                          stacked_convs=2, norm_cfg=GN8)))
