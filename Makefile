# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# everything on first use (about 15 minutes, most of it building mmcv's CPU ops once; pip's
# wheel cache makes later installs take seconds).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
DATA := data/shapes
# The classification set of the loop's classification task (issue 21), and the backbone
# pretrained on shapes that are no detection class (for the detectors, as the paper's start from
# ImageNet weights).
CLS_DATA := data/shapes_cls
PRETRAIN_DATA := data/other_shapes
PRETRAINED := data/pretrained/other_shapes_r18c16.pth
DEMO := work_dirs/demo
EXP := work_dirs/experiment
EXP_JOBS ?= 2
# torch's OpenMP threads spin-wait: with a data loader worker on the other core, 2 threads make
# a training step ~50x slower than 1 thread on this 2-core machine.
export OMP_NUM_THREADS ?= 1

.PHONY: install demo experiment experiment-heldout experiment-boxes experiment-classification \
	experiment-classification-true-labels experiment-classification-class-matched \
	experiment-classification-seeds-4-5 experiment-classification-small-steps \
	experiment-classification-test-reference test data \
	data-classification pretrained clean

install: $(STAMP)

# Order matters: the pinned CPU torch first (a bare "torch" pulls a CUDA build), then mmcv
# built against it with the old setuptools its setup.py needs, then the rest.
$(STAMP): setup.py requirements/*.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements/cpu.txt
	$(PIP) install -r requirements/build.txt
	MMCV_WITH_OPS=1 MAX_JOBS=2 $(PIP) install --no-build-isolation "mmcv==2.1.0"
	$(PIP) install -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install --no-build-isolation --no-deps -e .
	$(PY) -c "import mmdet_isal, mmcv.ops; print('mmdet-isal', mmdet_isal.__version__, 'installed')"
	touch $(STAMP)

# instances_test.json is the last file written (also when a test split is added to a set made
# without one), so its presence means the whole set is there.
data: $(STAMP)
	test -f $(DATA)/annotations/instances_test.json || \
		$(PY) tools/make_toy_dataset.py --out $(DATA) --seed 0 --num-test 500

# The classification sets: the classification task's (`make experiment-classification`), and
# the other shapes the detectors' backbone is pretrained on. Checked (SHA-256 of every file),
# made once: about 1 minute each. The demo needs none of it.
data-classification: data
	$(PY) tools/make_classification_dataset.py --out $(CLS_DATA) --class-set shapes
	$(PY) tools/make_classification_dataset.py --out $(PRETRAIN_DATA) --class-set other_shapes \
		--num-test 1000

# The backbone pretrained on other shapes, which the cost protocol's detectors start from
# (`make experiment`). Skipped when its weights are there, intact and made from the same config
# and data; once: about 7 minutes of training on a free core (6 epochs of 20k 64-px images).
pretrained: data-classification
	$(PY) tools/pretrain_backbone.py configs/classification/resnet18_other_shapes.py \
		--out $(PRETRAINED)

# The fair protocol on a small scale (configs/toy/fcos_shapes_isal.py: every step retrained
# from scratch), one seed: ISAL, random and the fewest_detections control, two runs at a time;
# rerunning continues an interrupted demo. Writes $(DEMO)/experiment.{csv,json,png}.
demo: data
	$(PY) tools/al_experiment.py configs/toy/fcos_shapes_isal.py --work-dir $(DEMO) --seeds 0 \
		--strategies isal random fewest_detections --jobs 2

# The annotation-cost protocol (configs/toy/fcos_shapes_cost_al.py; README "Does it save
# annotation cost?"): random, cost-aware ISAL, the random control matched to its picks' box
# counts, entropy, ISAL as the paper ranks and the fewest-detections control, seeds 1 2 3,
# every strategy of a seed starting from one shared step-0 model, two runs at a time; rerunning
# continues unfinished runs. Writes $(EXP)/experiment.{csv,json,png} and report.txt.
# `make experiment-heldout` runs the same on seeds 4 5 6, which chose nothing.
COST_STRATEGIES := random 'isal_cost=isal(scorer.rank_by=influence_per_cost, scorer.score_thr=auto)' \
	'matched_cost=matched_random(strategy.type=isal, strategy.scorer.rank_by=influence_per_cost, strategy.scorer.score_thr=auto)' \
	entropy isal fewest_detections
experiment: pretrained
	$(PY) tools/al_experiment.py configs/toy/fcos_shapes_cost_al.py --work-dir $(EXP) \
		--seeds 1 2 3 --strategies $(COST_STRATEGIES) --jobs $(EXP_JOBS)

experiment-heldout: pretrained
	$(PY) tools/al_experiment.py configs/toy/fcos_shapes_cost_al.py --work-dir $(EXP)_heldout \
		--seeds 4 5 6 --strategies $(COST_STRATEGIES) --jobs $(EXP_JOBS)

# The earlier box-count protocol (configs/toy/fcos_shapes_al.py, evaluated since on the test
# split): every strategy, seeds 1 2 3; docs/results/baselines/ holds its runs of that time.
experiment-boxes: data
	$(PY) tools/al_experiment.py configs/toy/fcos_shapes_al.py --work-dir $(EXP)_boxes --seeds 1 2 3 \
		--strategies isal 'isal_labeled_mean=isal(scorer.loss_normalizer=labeled_mean)' random \
		fewest_detections 'isal_per_box=isal(scorer.loss_normalizer=labeled_mean,scorer.rank_by=influence_per_box)' \
		entropy least_confidence coreset localization_stability --jobs $(EXP_JOBS)
	$(PY) tools/al_experiment.py configs/toy/fcos_shapes_learning_loss_al.py \
		--work-dir $(EXP)_learning_loss --seeds 1 2 3 --strategies learning_loss --jobs $(EXP_JOBS)

# Issue 21: ISAL on image classification, the paper's CIFAR protocol (Table 1) on the
# single-object shapes set (configs/classification/resnet18_shapes_al.py: 10 % of the 20000-image
# pool at random, +10 % per step, 6 steps, every step retrained from scratch), ISAL, random,
# core-set and entropy with seeds 1 2 3, two runs at a time; rerunning continues unfinished
# runs. Writes $(CLS_EXP)/experiment.{csv,json,png} and report.txt (accuracy on the test split
# against labeled images, mean ± std over seeds). CLS_EPOCHS scales the schedule (the recipe's
# 12 epochs of at least 8000 samples, i.e. at least 1500 iterations, by default); 87 minutes on
# one 2-core machine, 39 on a faster one (a run of 5 steps takes 11-18 minutes beside another
# there, 5-9 here; README "Classification").
# Core-set's greedy orders the budget's 2000 picks (all the loop takes); ordering the whole
# 18000-image pool would cost about 6 minutes per step.
CLS_EXP := work_dirs/experiment_classification
CLS_EPOCHS ?= 12
CLS_SCHEDULE = --cfg-options train_cfg.max_epochs=$(CLS_EPOCHS) \
		train_cfg.val_interval=$(CLS_EPOCHS) param_scheduler.0.end=$(CLS_EPOCHS) \
		param_scheduler.0.T_max=$(CLS_EPOCHS) default_hooks.checkpoint.interval=$(CLS_EPOCHS)
experiment-classification: data-classification
	$(PY) tools/al_experiment.py configs/classification/resnet18_shapes_al.py \
		--work-dir $(CLS_EXP) --seeds 1 2 3 \
		--strategies isal random 'coreset=coreset(max_greedy=2000)' entropy \
		--jobs $(EXP_JOBS) $(CLS_SCHEDULE)

# A diagnostic added to the same experiment (its report then has one more row): ISAL with each
# pool image's true class instead of its predicted one (isal(labels=true), simulation only),
# which tells the influence ranking's worth apart from the pseudo-labels'. 3 more runs.
experiment-classification-true-labels: data-classification
	$(PY) tools/al_experiment.py configs/classification/resnet18_shapes_al.py \
		--work-dir $(CLS_EXP) --seeds 1 2 3 \
		--strategies 'isal_true_labels=isal(labels=true)' --jobs $(EXP_JOBS) $(CLS_SCHEDULE)

# The control that tells ISAL's class mix apart from its choice of images: each of ISAL's picks
# replaced by a random unlabeled image of the same true class (simulation only). 3 more runs.
experiment-classification-class-matched: data-classification
	$(PY) tools/al_experiment.py configs/classification/resnet18_shapes_al.py \
		--work-dir $(CLS_EXP) --seeds 1 2 3 \
		--strategies 'isal_class_matched=matched_random(strategy=isal, match=class)' \
		--jobs $(EXP_JOBS) $(CLS_SCHEDULE)

# All of the above on seeds 4 and 5 as well (the paper's 5 runs); its report covers seeds 1-5.
# 2 step-0 runs and 12 runs of 5 steps: 40 minutes on the faster 2-core machine.
experiment-classification-seeds-4-5: data-classification
	$(PY) tools/al_experiment.py configs/classification/resnet18_shapes_al.py \
		--work-dir $(CLS_EXP) --seeds 1 2 3 4 5 \
		--strategies isal random 'isal_class_matched=matched_random(strategy=isal, match=class)' \
		'coreset=coreset(max_greedy=2000)' entropy 'isal_true_labels=isal(labels=true)' \
		--jobs $(EXP_JOBS) $(CLS_SCHEDULE)

# The paper's CIFAR-10 step sizes (2 % of the pool per step, 10 steps: 400 ... 4000 images;
# configs/classification/resnet18_shapes_al_small_steps.py): ISAL, random and the class-matched
# control, seeds 1 2 3. 3 step-0 runs and 9 runs of 9 steps.
CLS_SMALL_EXP := work_dirs/experiment_classification_small_steps
experiment-classification-small-steps: data-classification
	$(PY) tools/al_experiment.py configs/classification/resnet18_shapes_al_small_steps.py \
		--work-dir $(CLS_SMALL_EXP) --seeds 1 2 3 \
		--strategies isal random 'isal_class_matched=matched_random(strategy=isal, match=class)' \
		--jobs $(EXP_JOBS) $(CLS_SCHEDULE)

# ISAL graded on its own reference set, as the paper's CIFAR-10 runs may have been (its test split
# is its benchmark): the test split as active_learning.reference, seeds 1 2 3. Its step-0 models
# are the main experiment's (same seeds, same training), so its runs pair with that experiment's
# random runs (README "Classification": how the pairs were compared).
experiment-classification-test-reference: data-classification
	$(PY) tools/al_experiment.py configs/classification/resnet18_shapes_al.py \
		--work-dir work_dirs/experiment_classification_test_reference --seeds 1 2 3 \
		--strategies isal --jobs $(EXP_JOBS) $(CLS_SCHEDULE) \
		active_learning.reference=$(CLS_DATA)/test.txt

test: $(STAMP)
	$(PY) -m pytest tests -q

clean:
	rm -rf $(VENV) $(DEMO)
