# The fair active-learning protocol of fcos_shapes_al.py with a learning-loss module
# (Yoo & Kweon, CVPR 2019) on the FPN maps, for the `learning_loss` strategy:
#   python tools/al_experiment.py configs/toy/fcos_shapes_learning_loss_al.py \
#       --strategies learning_loss --seeds 1 2 3 --work-dir work_dirs/experiment_learning_loss
# The module trains with the detector (margin ranking loss, lambda = 1, margin 1) on detached
# FPN maps, so the detector's own training is unchanged. Only the model differs from
# fcos_shapes_al.py, so the experiment runner keeps its runs apart (another protocol).
_base_ = './fcos_shapes_al.py'

model = dict(
    _delete_=True,
    type='LossPredictionDetector',
    detector={{_base_.model}},
    loss_module=dict(hidden=128),
    loss_weight=1.0,
    margin=1.0)
active_learning = dict(strategy='learning_loss')
