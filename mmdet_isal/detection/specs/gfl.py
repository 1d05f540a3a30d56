"""Generalized focal loss (Li et al., NeurIPS 2020): ``GFLHead``, a joint quality-class score
and a distribution over box sides."""
from .base import BRANCH_TAPS, GN8, HeadSpec, register


@register
class GFLSpec(HeadSpec):
    """``GFLHead``: ``gfl_cls`` and ``gfl_reg`` after the towers."""
    covers = 'GFLHead'
    preset = ('gfl_cls', 'gfl_reg')
    taps = BRANCH_TAPS
    tiny = dict(base='mmdet::gfl/gfl_r50_fpn_1x_coco.py',
                model=dict(bbox_head=dict(num_classes=8, in_channels=32, feat_channels=32,
                                          stacked_convs=2, norm_cfg=GN8)))
