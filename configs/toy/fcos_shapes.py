# Tiny FCOS for the synthetic shapes set, and the recipe that makes it strong enough to tell
# active-learning strategies apart: trained by mmdet's own tools/train.py on the whole pool,
#   OMP_NUM_THREADS=2 python tools/train.py configs/toy/fcos_shapes.py
# it reaches the bbox mAP of the README's table on the val split in under 10 minutes on 2 CPU
# cores.
# ResNet-18 with 16 base channels, an FPN on strides 4..64 (P2-P6) for 128-pixel images, a
# 2-conv head with FCOS's improvements (centre sampling, normalised boxes, centerness on the
# regression branch, GIoU), AdamW with a cosine schedule. Trains from scratch, no downloaded
# weights. Inherits the paper's FCOS config and changes only what the size and the CPU need.
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['mmdet_isal'], allow_failed_imports=False)

num_classes = 8
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        depth=18,
        base_channels=16,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=None),
    neck=dict(
        in_channels=[16, 32, 64, 128],
        out_channels=32,
        start_level=0,
        num_outs=5),
    bbox_head=dict(
        num_classes=num_classes,
        in_channels=32,
        feat_channels=32,
        stacked_convs=2,
        norm_cfg=dict(type='GN', num_groups=8, requires_grad=True),
        strides=[4, 8, 16, 32, 64],
        regress_ranges=((-1, 16), (16, 32), (32, 64), (64, 128), (128, 1e8)),
        # the "center-normbbox-centeronreg-giou" FCOS of mmdet's model zoo
        norm_on_bbox=True,
        centerness_on_reg=True,
        center_sampling=True,
        center_sample_radius=1.5,
        conv_bias=True,
        loss_bbox=dict(type='GIoULoss', loss_weight=1.0)),
    test_cfg=dict(nms_pre=300, score_thr=0.05, nms=dict(type='nms', iou_threshold=0.6),
                  max_per_img=100))

# AdamW and a cosine decay: with SGD (lr 0.02, steps at 8 and 11) the same 12 epochs reached
# bbox mAP 0.12, with this recipe 0.32 at 12 epochs and 0.42 at 16 (README, "The toy recipe").
epochs = 14
train_cfg = dict(max_epochs=epochs, val_interval=epochs)
param_scheduler = [
    # warm-up over the first epoch, whatever the size of the training set: the active-learning
    # steps train the same epochs on a few hundred images, where a fixed 200 iterations would
    # be most of the training
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=epochs, T_max=epochs,
         eta_min_ratio=0.01, convert_to_iter_based=True)
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(bias_decay_mult=0., norm_decay_mult=0.),
    clip_grad=dict(max_norm=35, norm_type=2))
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=epochs, max_keep_ckpts=1),
    visualization=dict(draw=False))
auto_scale_lr = dict(enable=False, base_batch_size=8)

# ---- data: the synthetic shapes set (tools/make_toy_dataset.py), COCO layout, 128x128 images.
# mmengine refuses the same key from two sibling bases, so this block is repeated in each tiny
# detector config; tests/test_configs.py checks the copies agree.
data_root = 'data/shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle', 'cross', 'ring', 'star', 'diamond',
                         'ellipse'))  # == mmdet_isal.datasets.SHAPES_CLASSES (tested)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
# No loader worker processes: decoding 128-px images costs little, and a worker would take the
# core torch's second thread needs (OMP_NUM_THREADS=2 for one training on 2 cores; two
# trainings side by side, as the experiment runs them, use one thread each).
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
