# ISAL with the tiny Faster R-CNN on the synthetic shapes pool (data/shapes, `make data`), the
# protocol of fcos_shapes_isal.py. ISAL scores the RPN's rpn_cls/rpn_reg and the RoI head's
# fc_cls/fc_reg (mmdet_isal.detection.parameter_preset).
#   python tools/al_loop.py configs/toy/faster_rcnn_shapes_isal.py \
#       --work-dir work_dirs/faster_rcnn_shapes_isal
_base_ = './faster_rcnn_shapes.py'

epochs_per_step = 3
train_cfg = dict(max_epochs=epochs_per_step, val_interval=epochs_per_step)
# Each step restarts at the full lr and decays it for its last epoch.
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=epochs_per_step, by_epoch=True,
         milestones=[epochs_per_step - 1], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))

active_learning = dict(
    strategy='isal',
    initial=dict(images=400),
    budget=dict(images=200),
    steps=4,
    seed=0,
    retrain='finetune',
    scorer=dict(score_thr=0.1, hessian_images=128, hessian_batch_size=8, repeats=2, batch_size=8))
