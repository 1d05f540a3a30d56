# ISAL with the tiny FCOS on the synthetic shapes pool (data/shapes, `make data`): the demo's
# protocol, sized so that ISAL and random together run in `make demo` on 2 CPU cores.
#   python tools/al_loop.py configs/toy/fcos_shapes_isal.py --work-dir work_dirs/demo/isal
# Differences from the paper's protocol (configs/fcos_coco_isal.py), all for CPU time:
# each step fine-tunes the previous step's model for a few epochs instead of retraining from
# scratch for 12, and s_test uses a small Hessian sample and two LiSSA repeats.
_base_ = './fcos_shapes.py'

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
    # ISAL.md: pseudo-labels above 0.1; reference set = val_dataloader's set (the default).
    scorer=dict(score_thr=0.1, hessian_images=128, hessian_batch_size=8, repeats=2, batch_size=8))
