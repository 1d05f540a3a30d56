# The fair active-learning protocol on the synthetic shapes pool (data/shapes, `make data`),
# the one `make experiment` runs for every strategy and seed:
#   python tools/al_experiment.py configs/toy/fcos_shapes_al.py \
#       --strategies isal random fewest_detections --seeds 1 2 3 --work-dir work_dirs/experiment
# As the paper: every step retrains the detector from scratch with the recipe's full schedule
# (configs/toy/fcos_shapes.py), and the initial random set depends on the seed only, so every
# strategy of one seed starts from the same images and the same step-0 model.
_base_ = './fcos_shapes.py'

active_learning = dict(
    strategy='isal',
    initial=dict(images=300),
    budget=dict(images=150),
    steps=3,
    seed=1,
    retrain='scratch',
    # ISAL.md: pseudo-labels above 0.1, reference set = the val set (the default); H from at
    # most 200 labeled images in batches of 8, 2 LiSSA repeats, a cheaper power iteration.
    scorer=dict(hessian_images=200, repeats=2, power_batches=5, batch_size=8))
