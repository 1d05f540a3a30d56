"""The generic anchor head (``AnchorHead``): one classification and one regression conv on
every FPN level, no towers. Its subclasses without a spec of their own (``SSDHead``'s layers
differ: they need one) get its preset."""
from .base import HeadSpec, register


@register
class AnchorHeadSpec(HeadSpec):
    """``AnchorHead``: ``conv_cls`` and ``conv_reg``; no pooled features (no towers)."""
    covers = 'AnchorHead'
    preset = ('conv_cls', 'conv_reg')
    # RetinaNet with its head replaced by a bare AnchorHead (mmdet ships no config of one)
    tiny = dict(
        base='mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
        model=dict(bbox_head=dict(
            _delete_=True, type='AnchorHead', num_classes=8, in_channels=32, feat_channels=32,
            anchor_generator=dict(type='AnchorGenerator', scales=[4], ratios=[0.5, 1.0, 2.0],
                                  strides=[8, 16, 32, 64, 128]))))
