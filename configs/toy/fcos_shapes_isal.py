# The demo's protocol (`make demo`): the fair protocol of fcos_shapes_al.py (retrain from
# scratch with the full recipe every step, one initial set per seed), on fewer images so that
# ISAL, random and the fewest_detections control run in about 10 minutes on 2 CPU cores.
#   python tools/al_loop.py configs/toy/fcos_shapes_isal.py --work-dir work_dirs/demo/isal
_base_ = './fcos_shapes_al.py'

active_learning = dict(
    initial=dict(images=100),
    budget=dict(images=100),
    steps=3,
    seed=0,
    scorer=dict(hessian_images=100))
