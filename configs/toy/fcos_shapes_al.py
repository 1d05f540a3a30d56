# The fair active-learning protocol on the synthetic shapes pool (data/shapes, `make data`),
# the one `make experiment` runs for every strategy and seed:
#   python tools/al_experiment.py configs/toy/fcos_shapes_al.py \
#       --strategies isal random fewest_detections --seeds 1 2 3 --work-dir work_dirs/experiment
# As the paper: every step retrains the detector from scratch with the recipe's full schedule
# (configs/toy/fcos_shapes.py), and the initial random set depends on the seed only, so every
# strategy of one seed starts from the same images (and, in the experiment runner, from one
# step-0 model trained once per seed).
_base_ = './fcos_shapes.py'

# Held-out evaluation: every strategy is graded on the test split (500 images, `make data`),
# which no strategy reads; ISAL's reference set is the val split, labeled data of its own.
# (The paper configs keep the paper's choice: the reference set is the evaluation set.)
data_root = 'data/shapes/'  # as in fcos_shapes.py
val_dataloader = dict(dataset=dict(ann_file='annotations/instances_test.json'))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')
test_evaluator = val_evaluator

active_learning = dict(
    strategy='isal',
    initial=dict(images=300),
    budget=dict(images=150),
    steps=3,
    seed=1,
    retrain='scratch',
    reference=data_root + 'annotations/instances_val.json',
    # as the paper: pseudo-labels above 0.1; H from at most 200 labeled images in batches of 8,
    # 2 LiSSA repeats, a cheaper power iteration.
    scorer=dict(hessian_images=200, repeats=2, power_batches=5, batch_size=8))
