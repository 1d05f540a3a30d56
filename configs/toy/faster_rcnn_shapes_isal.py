# ISAL with the tiny Faster R-CNN on the synthetic shapes pool (data/shapes, `make data`), the
# demo's fair protocol (fcos_shapes_isal.py): every step retrains from scratch with the full
# schedule of faster_rcnn_shapes.py. ISAL scores the RPN's rpn_cls/rpn_reg and the RoI head's
# fc_cls/fc_reg (mmdet_isal.detection.parameter_preset).
#   python tools/al_loop.py configs/toy/faster_rcnn_shapes_isal.py \
#       --work-dir work_dirs/faster_rcnn_shapes_isal
_base_ = './faster_rcnn_shapes.py'

active_learning = dict(
    strategy='isal',
    initial=dict(images=100),
    budget=dict(images=100),
    steps=3,
    seed=0,
    retrain='scratch',
    scorer=dict(hessian_images=100, repeats=2, power_batches=5, batch_size=8))
