# ISAL on COCO with FCOS R50-caffe FPN GN-head, the paper's protocol (ICCV 2021, Sec. 4):
# 5000 random initial images, +1000 per step, 20 steps; each step retrains from scratch for
# 12 epochs, batch 8, lr 0.01, x0.1 after epochs 8 and 11, momentum 0.9, weight decay 1e-4.
# Data as mmdet expects it: data/coco/annotations/instances_{train,val}2017.json, train2017/.
#   python tools/al_loop.py configs/fcos_coco_isal.py --work-dir work_dirs/fcos_coco_isal
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['mmdet_isal'], allow_failed_imports=False)

# The paper's batch of 8 is 4 GPUs x 2 images. On another number of GPUs, pass --auto-scale-lr
# to mmdet's tools/train.py (or set auto_scale_lr.enable) to keep lr / batch as in the paper.
train_dataloader = dict(batch_size=2)
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
    initial=dict(images=5000),
    budget=dict(images=1000),
    steps=20,
    seed=0,
    retrain='scratch',
    # s_test from at most 500 labeled images, 4 LiSSA repeats averaged, damping 0.01,
    # pseudo-labels above score 0.1; the LiSSA scale is chosen automatically.
    scorer=dict(score_thr=0.1, hessian_images=500, repeats=4, damping=0.01, scale='auto'))
