# The annotation-cost protocol on the shapes set (`make experiment`), in a regime like the
# paper's: its COCO FCOS runs start at 33 % of the detector's full-data AP and end at 43 %.
#   python tools/al_experiment.py configs/toy/fcos_shapes_cost_al.py --seeds 1 2 3 \
#       --strategies random isal ... --work-dir work_dirs/experiment
# - The detector: configs/toy/fcos_shapes_pretrained.py (backbone pretrained on other shapes,
#   14 epochs of at least 1500 iterations). Step 0, 400 random images, is trained with that
#   recipe once per seed and shared by every strategy of the seed (the experiment runner).
# - Every later step starts from that step-0 model and trains 400 iterations on its labeled
#   set (retrain='step0', finetune_cfg): the same training for every strategy and step, which
#   keeps each step's model a function of the step-0 model and that step's labeled set only.
#   Retraining every step with the full recipe would take about 3 hours on 2 CPU cores for the
#   main comparison, against the 2 hours it is meant to take.
# - Cost in annotator seconds (the default cost model: 1 s per class per image, 7 s per box);
#   each selection spends at most 4800 s (1.33 h), about 100 images of the pool's average.
# - Graded on the test split, which no strategy reads; ISAL's reference is the val split.
_base_ = './fcos_shapes_pretrained.py'

data_root = 'data/shapes/'  # as in fcos_shapes.py
val_dataloader = dict(dataset=dict(ann_file='annotations/instances_test.json'))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_test.json')
test_evaluator = val_evaluator

finetune_iters = 400
active_learning = dict(
    strategy='isal',
    initial=dict(images=400),
    budget=dict(seconds=4800),
    steps=5,
    seed=1,
    retrain='step0',
    finetune_cfg=dict(
        train_cfg=dict(_delete_=True, type='IterBasedTrainLoop', max_iters=finetune_iters,
                       val_interval=finetune_iters),
        optim_wrapper=dict(optimizer=dict(lr=1e-3)),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=40),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=finetune_iters,
                 T_max=finetune_iters, eta_min_ratio=0.01)
        ],
        default_hooks=dict(checkpoint=dict(by_epoch=False, interval=finetune_iters))),
    reference=data_root + 'annotations/instances_val.json',
    # as the paper: H from at most 200 labeled images in batches of 8 (the paper: 500), 2 LiSSA
    # repeats, a cheaper power iteration; pseudo-labels above 0.1.
    scorer=dict(hessian_images=200, repeats=2, power_batches=5, batch_size=8))
