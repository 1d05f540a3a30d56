# The paper's CIFAR-10 step sizes (Table 1: 1000 of the 50000 train images at random, +1000 per
# step, 10 steps, i.e. 2 % of the pool each) on the single-object shapes set: 400 of the 20000
# pool images at random, +400 per step, 10 steps (400 ... 4000 images). Everything else is the
# classification protocol's (resnet18_shapes_al.py: the recipe, retrained from scratch every
# step with at least 1500 iterations, ISAL on the last layer with the val split as reference,
# graded on the test split). `make experiment-classification-small-steps` runs ISAL, random and
# the class-matched control on seeds 1 2 3 (README "Classification").
_base_ = './resnet18_shapes_al.py'

active_learning = dict(initial=dict(images=400), budget=dict(images=400), steps=10)
