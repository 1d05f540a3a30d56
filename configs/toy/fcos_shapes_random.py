# Random selection with exactly the protocol of fcos_shapes_isal.py (the same seed gives the
# same initial images and the same step-0 model), the baseline ISAL is compared with.
#   python tools/al_loop.py configs/toy/fcos_shapes_random.py --work-dir work_dirs/demo/random
_base_ = './fcos_shapes_isal.py'

active_learning = dict(strategy='random')
