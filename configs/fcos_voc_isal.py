# ISAL on PASCAL VOC 2012 with FCOS R50-caffe FPN GN-head: the paper's protocol at VOC scale.
# The pool is VOC2012 train (5717 images), evaluation on VOC2012 val. The supplementary does not
# give the VOC step sizes; 500 initial images and +500 per step for 10 steps is our choice.
# Data as mmdet expects it: data/VOCdevkit/VOC2012/{Annotations,JPEGImages,ImageSets/Main}.
#   python tools/al_loop.py configs/fcos_voc_isal.py --work-dir work_dirs/fcos_voc_isal
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['mmdet_isal'], allow_failed_imports=False)

data_root = 'data/VOCdevkit/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1000, 600), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        ann_file='VOC2012/ImageSets/Main/train.txt',
        data_prefix=dict(sub_data_root='VOC2012/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='VOCDataset',
        data_root=data_root,
        ann_file='VOC2012/ImageSets/Main/val.txt',
        data_prefix=dict(sub_data_root='VOC2012/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator

model = dict(bbox_head=dict(num_classes=20))
auto_scale_lr = dict(enable=False, base_batch_size=8)
optim_wrapper = dict(optimizer=dict(lr=0.01, momentum=0.9, weight_decay=0.0001))
train_cfg = dict(max_epochs=12, val_interval=12)
default_hooks = dict(checkpoint=dict(interval=12, max_keep_ckpts=1))

# The paper's choice, kept: ISAL's reference set is the evaluation set (reference=None: the
# val set, which is also what every step is evaluated on), so ISAL alone sees the labels it is
# graded on. The toy configs (configs/toy/*_al.py, *_isal.py) evaluate on a held-out test split
# instead, with the val split as the reference.
active_learning = dict(
    strategy='isal',
    initial=dict(images=500),
    budget=dict(images=500),
    steps=10,
    seed=0,
    retrain='scratch',
    scorer=dict(score_thr=0.1, hessian_images=500, repeats=4, damping=0.01, scale='auto'))
