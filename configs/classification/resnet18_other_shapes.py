# Pretraining of the toy detector's backbone (ResNet-18, 16 base channels) on a task that is not
# the detection task, as the paper's detectors start from ImageNet weights: classifying ten
# shapes that are never detection classes (pentagon, hexagon, heart, arrow, crescent, trapezoid,
# semicircle, chevron, L-shape, hourglass; balanced, centred, 64x64 px; tools/
# make_classification_dataset.py --class-set other_shapes). `make pretrained` runs it once:
#   python tools/pretrain_backbone.py configs/classification/resnet18_other_shapes.py \
#       --out data/pretrained/other_shapes_r18c16.pth
# (89.7 % validation accuracy) and a detector starts from it with
#   model.backbone.init_cfg=dict(type='Pretrained', checkpoint='data/pretrained/other_shapes_r18c16.pth')
# 20k images, AdamW lr 1e-3 weight decay 0.01, cosine to 2e-5, batch 64, 6 epochs, random
# horizontal flips; mmdet_isal's ImageClassifier (global average pooling and one linear layer
# on the backbone). A config of its own (not inheriting the classification task's), so that
# the cached weights stay valid whatever becomes of that one: tools/pretrain_backbone.py keys
# them by this config's content.
custom_imports = dict(imports=['mmdet_isal'], allow_failed_imports=False)
default_scope = 'mmdet'

classes = ('pentagon', 'hexagon', 'heart', 'arrow', 'crescent', 'trapezoid', 'semicircle',
           'chevron', 'lshape', 'hourglass')
model = dict(
    type='ImageClassifier',
    num_classes=len(classes),
    data_preprocessor=dict(
        type='ImgDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=18,
        base_channels=16,
        out_indices=(3, ),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        # PyTorch's own initialisation of a convolution (Kaiming uniform, a = sqrt(5)): with
        # mmdet's ResNet default (Kaiming normal, residual branches ending at zero) the same
        # recipe reached 55 % instead of 90 % (configs/classification/resnet18_shapes.py)
        init_cfg=dict(type='Kaiming', layer='Conv2d', a=2.23606797749979, mode='fan_in',
                      nonlinearity='leaky_relu', distribution='uniform')))

epochs = 6
train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=epochs)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=epochs, T_max=epochs,
         eta_min=2e-5, convert_to_iter_based=True)
]

data_root = 'data/other_shapes/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClassificationInputs')
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackClassificationInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ClassificationListDataset',
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='train.txt',
        data_prefix=dict(img='images/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ClassificationListDataset',
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='val.txt',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=256,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ClassificationListDataset',
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='test.txt',
        data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=test_pipeline))
val_evaluator = dict(type='ClassificationAccuracy')
test_evaluator = val_evaluator

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=epochs, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
