# ISAL with the tiny Faster R-CNN on the synthetic shapes pool (data/shapes, `make data`), the
# demo's fair protocol (fcos_shapes_isal.py): every step retrains from scratch with the full
# schedule of faster_rcnn_shapes.py. ISAL scores the RPN's rpn_cls/rpn_reg and the RoI head's
# fc_cls/fc_reg (mmdet_isal.detection.parameter_preset).
#   python tools/al_loop.py configs/toy/faster_rcnn_shapes_isal.py \
#       --work-dir work_dirs/faster_rcnn_shapes_isal
_base_ = './faster_rcnn_shapes.py'

# Held-out evaluation, as in fcos_shapes_al.py: graded on the test split, which no strategy
# reads; ISAL's reference set is the val split.
data_root = 'data/shapes/'  # as in faster_rcnn_shapes.py
val_dataloader = dict(dataset=dict(ann_file='annotations/instances_test.json'))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')
test_evaluator = val_evaluator

active_learning = dict(
    strategy='isal',
    initial=dict(images=100),
    budget=dict(images=100),
    steps=3,
    seed=0,
    retrain='scratch',
    reference=data_root + 'annotations/instances_val.json',
    scorer=dict(hessian_images=100, repeats=2, power_batches=5, batch_size=8))
