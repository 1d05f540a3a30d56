"""RetinaNet (Lin et al., ICCV 2017): ``RetinaHead``, anchors with two conv towers."""
from .base import BRANCH_TAPS, HeadSpec, register


@register
class RetinaSpec(HeadSpec):
    """``RetinaHead``: ``retina_cls`` and ``retina_reg`` after the towers."""
    covers = 'RetinaHead'
    preset = ('retina_cls', 'retina_reg')
    taps = BRANCH_TAPS
    tiny = dict(base='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
                model=dict(bbox_head=dict(num_classes=8, in_channels=32, feat_channels=32,
                                          stacked_convs=2)))
