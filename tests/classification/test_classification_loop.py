"""Image classification through the active-learning loop: the task looked up from the config,
the list-file pool and subsets, and two steps of every strategy by name (a tiny untrained
classifier stands in for training, so that the strategies rank with a real model quickly); the
real trainer and the tools in the slow tests."""
from collections import Counter
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from mmdet_isal.active import ActiveLearningLoop, PoolLedger
from mmdet_isal.active.config import ActiveLearningConfig
from mmdet_isal.active.strategy_specs import parse_strategy_specs
from mmdet_isal.active.subsets import pool_dataset_cfg
from mmdet_isal.active.task import TASKS, DetectionTask, task_of
from mmdet_isal.active.trainer import TrainedModel
from mmdet_isal.classification.outputs import classify_list
from mmdet_isal.classification.pool import ListPool
from mmdet_isal.classification.strategies import (ClassifierCoreset, ClassifierEntropy,
                                                  ClassifierISAL, ClassifierLeastConfidence,
                                                  categorical_entropy)
from mmdet_isal.classification.task import ClassificationTask, translate
from mmdet_isal.classification.trainer import ClassifierTrainer
from mmdet_isal.datasets import make_shapes_classification
from mmdet_isal.strategies import MatchedRandomStrategy, RandomStrategy

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'classification', 'resnet18_shapes_al.py')
STRATEGIES = dict(isal=ClassifierISAL, random=RandomStrategy, coreset=ClassifierCoreset,
                  entropy=ClassifierEntropy, least_confidence=ClassifierLeastConfidence,
                  matched_random=MatchedRandomStrategy)


@pytest.fixture(scope='module')
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes_cls')
    make_shapes_classification(root, num_train=48, num_val=16, num_test=16)
    return str(root)


def tiny_cfg(root, strategy='isal', **al):
    """The experiment's config on the tiny set: a ResNet-18 of 4 base channels, one epoch."""
    cfg = Config.fromfile(CONFIG)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        pool_dataset_cfg(loader.dataset).data_root = root
        loader.batch_size = 16
    cfg.train_dataloader.sampler.min_length = 1  # no floor of iterations on the tiny set
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.target_prior = osp.join(root, 'val.txt')
    cfg.model.backbone.base_channels = 4
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler[0].update(end=1, T_max=1)
    cfg.default_hooks.checkpoint.interval = 1
    cfg.active_learning.update(dict(dict(strategy=strategy, initial=dict(images=12),
                                         budget=dict(images=8), steps=2,
                                         reference=osp.join(root, 'val.txt')), **al))
    cfg.active_learning.scorer.update(hessian_batch_size=4)
    return cfg


class UntrainedTrainer(ClassifierTrainer):
    """The classification trainer without training: step K's model is the config's classifier
    initialised with seed K (saved as its checkpoint), evaluated by its accuracy on the
    evaluation set. Strategies rank with a real (if untrained) classifier."""

    def _model(self, step):
        torch.manual_seed(step)
        return MODELS.build(self.cfg.model).eval()

    def train(self, job):
        path = osp.join(job.work_dir, 'model.pth')
        torch.save(self._model(job.step).state_dict(), path)
        return path

    def model_of(self, job):
        model = self._model(job.step)
        model.load_state_dict(torch.load(job.checkpoint or osp.join(job.work_dir, 'model.pth')))
        return TrainedModel(model.eval(), self.step_cfg(job))

    def evaluate(self, job):
        trained = self.model_of(job)
        val = trained.cfg.val_dataloader.dataset
        out = classify_list(trained.model, trained.cfg, osp.join(val.data_root, val.ann_file))
        hit = (out.logits.argmax(1) == out.labels).double()
        per_class = [float(hit[out.labels == k].mean()) for k in out.labels.unique()]
        return dict(metrics={}, accuracy=float(hit.mean()),
                    mean_class_accuracy=float(np.mean(per_class)))


def test_the_task_is_looked_up_from_the_training_data_set(tiny_set):
    cfg = tiny_cfg(tiny_set)
    assert isinstance(task_of(cfg), ClassificationTask)
    assert TASKS['ClassificationListDataset'] is task_of(cfg)
    det = Config.fromfile(osp.join(ROOT, 'configs', 'toy', 'fcos_shapes_al.py'))
    assert isinstance(task_of(det), DetectionTask)
    cfg.train_dataloader.dataset.type = 'mmdet.ClassificationListDataset'
    assert isinstance(task_of(cfg), ClassificationTask)
    cfg.train_dataloader.dataset = dict(type='RepeatToMinLength', min_length=100,
                                        dataset=cfg.train_dataloader.dataset)  # wrapped
    assert isinstance(task_of(cfg), ClassificationTask)
    # names map to the classifier's strategies, also inside matched_random
    assert translate('entropy') == dict(type='classifier_entropy')
    assert translate(dict(type='matched_random', strategy='coreset')) == dict(
        type='matched_random', strategy=dict(type='classifier_coreset'))
    with pytest.raises(ValueError, match="'fewest_detections' has no classification version"):
        translate('fewest_detections')
    with pytest.raises(ValueError, match="annotator='manual' is for detection"):
        ActiveLearningLoop(tiny_cfg(tiny_set, annotator='manual'),
                           work_dir=osp.join(tiny_set, '..', 'manual'))


def test_list_pool_and_its_subsets(tiny_set, tmp_path):
    lines = open(osp.join(tiny_set, 'train.txt')).read().split('\n')[:-1]
    classes = Config.fromfile(CONFIG).classes
    pool = ListPool(osp.join(tiny_set, 'train.txt'), classes)
    assert pool.image_ids == [line.split()[0] for line in lines]
    assert set(pool.num_boxes.values()) == {1}
    first = pool.image_ids[0]
    assert pool.box_classes[first] == {classes[int(lines[0].split()[1])]: 1}
    labeled = pool.image_ids[5:9] + pool.image_ids[:2]
    a, b = pool.write_split(labeled, str(tmp_path))
    assert (a, b) == (str(tmp_path / 'labeled.txt'), str(tmp_path / 'unlabeled.txt'))
    got_a, got_b = (open(p).read().split('\n')[:-1] for p in (a, b))
    # pool order, the list file's own lines (labels kept), disjoint, together the pool
    assert got_a == lines[:2] + lines[5:9]
    assert got_b == lines[2:5] + lines[9:]
    with pytest.raises(KeyError, match="image id"):
        pool.write_split(['nope.png'], str(tmp_path))


def test_a_wrapped_pool_is_read_through_its_wrapper(tiny_set, tmp_path):
    """A training set in a wrapper (RepeatToMinLength, a floor of iterations by whole
    copies, as the detection configs use): the loop finds the pool and checks the reference set
    inside it."""
    cfg = tiny_cfg(tiny_set)
    cfg.train_dataloader.dataset = dict(type='RepeatToMinLength', min_length=100,
                                        dataset=cfg.train_dataloader.dataset)
    loop = ActiveLearningLoop(cfg, work_dir=str(tmp_path / 'run'))
    assert loop.pool.ann_file == osp.join(tiny_set, 'train.txt') and len(loop.pool.image_ids) == 48
    assert loop.reference_ann_file == osp.join(tiny_set, 'val.txt')


@pytest.mark.slow
@pytest.mark.parametrize('name', list(STRATEGIES))
def test_two_steps_of_each_strategy_by_name(tiny_set, tmp_path, name):
    cfg = tiny_cfg(tiny_set, strategy=name)
    loop = ActiveLearningLoop(cfg, work_dir=str(tmp_path / name),
                              trainer=UntrainedTrainer(cfg, seed=1))
    assert isinstance(loop.task, ClassificationTask)
    assert type(loop.strategy) is STRATEGIES[name]
    loop.run()
    ledger = PoolLedger.load(loop.ledger_path)
    assert ledger.meta['task'] == 'classification'
    assert len(ledger.labeled_ids(0)) == 12 and len(ledger.labeled_ids(1)) == 20
    ranking = ledger.ranking(0)
    assert ledger.selected_at(1) and set(ledger.selected_at(1)) == set(ranking[:8])
    labeled, unlabeled = loop.subset_files(1)
    ids = [line.split()[0] for line in open(labeled)]
    assert sorted(ids) == sorted(ledger.labeled_ids(1))
    assert not set(ids) & {line.split()[0] for line in open(unlabeled)}
    rows = json.load(open(osp.join(loop.work_dir, 'summary.json')))
    assert [r['num_images'] for r in rows] == [12, 20]
    assert all(0 <= r['accuracy'] <= 1 and 'bbox_mAP' not in r for r in rows)
    # the class mix of the 8 picks and of the 36 images they were picked from: their labels
    picked, pool = Counter(), Counter()
    for i in ledger.selected_at(1):
        picked.update(loop.pool.box_classes[i])
    for i in ranking:
        pool.update(loop.pool.box_classes[i])
    assert rows[0]['picked_class_histogram'] == dict(picked) and sum(picked.values()) == 8
    assert rows[0]['pool_class_histogram'] == dict(pool) and sum(pool.values()) == 36
    header = open(osp.join(loop.work_dir, 'summary.csv')).readline()
    assert 'accuracy,mean_class_accuracy' in header and 'bbox_mAP' not in header
    # the log counts labeled images only: one label each, no boxes
    log = open(osp.join(loop.work_dir, 'al_loop.log')).read()
    assert 'step 2/2 (step_1): 20 labeled images, 28 unlabeled' in log and ' boxes' not in log
    if name in ('entropy', 'least_confidence'):
        # the recorded scores are the step-0 model's uncertainty of each unlabeled image
        trained = loop.trainer.model_of(loop.job(0))
        out = classify_list(trained.model, trained.cfg, loop.subset_files(0)[1])
        probs = out.probs
        expected = (categorical_entropy(probs) if name == 'entropy'
                    else 1 - probs.max(1).values)
        scores = [ledger.images[i]['scores'][0] for i in out.ids]
        np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-12)
        assert ranking[0] == out.ids[int(expected.argmax())]
    if name == 'isal':
        scores = [ledger.images[i]['scores'][0] for i in ranking]
        assert scores == sorted(scores)  # the most negative influence first
        info = ledger.steps[0]['strategy_info']
        assert info['hessian_images'] == 12 and info['parameters'] == 8 * (32 + 1)
        assert osp.isfile(osp.join(loop.step_dir(0), 'strategy', 'scores.json'))
        # its pseudo-labels are the step-0 model's predicted classes; the selection records how
        # often they are the true labels, for the picks and the pool
        trained = loop.trainer.model_of(loop.job(0))
        out = classify_list(trained.model, trained.cfg, loop.subset_files(0)[1], batch_size=7)
        predicted = dict(zip(out.ids, out.logits.argmax(1).tolist()))
        assert all(ledger.images[i]['details'][0]['pseudo_label'] == predicted[i]
                   for i in ranking)

        def right(ids):
            return np.mean([predicted[i] == loop.pool.labels[i] for i in ids])

        assert rows[0]['picked_pseudo_label_accuracy'] == pytest.approx(
            right(ledger.selected_at(1)), abs=1e-12)
        assert rows[0]['pool_pseudo_label_accuracy'] == pytest.approx(right(ranking), abs=1e-12)
        assert 'with their pseudo-label right (pool' in log
    else:
        assert rows[0]['picked_pseudo_label_accuracy'] is None


@pytest.mark.slow
@pytest.mark.parametrize('params', [None, ['backbone.layer4.1', 'fc']])
def test_isal_with_the_true_labels_scores_with_the_pool_labels(tiny_set, tmp_path, params):
    """isal(labels='true'), the diagnostic: every pool image scored with its list-file label,
    through the last layer and through the images; its picks' labels are then all 'right'."""
    scorer = dict(params=params, solver='cg', depth=10, damping=1.0) if params else {}
    cfg = tiny_cfg(tiny_set, strategy=dict(type='isal', labels='true', scorer=scorer))
    loop = ActiveLearningLoop(cfg, work_dir=str(tmp_path / 'run'),
                              trainer=UntrainedTrainer(cfg, seed=1))
    loop.run()
    ledger = PoolLedger.load(loop.ledger_path)
    ranking = ledger.ranking(0)
    assert ledger.steps[0]['strategy_info']['labels'] == 'true'
    assert all(ledger.images[i]['details'][0]['pseudo_label'] == loop.pool.labels[i]
               for i in ranking) and len(ranking) == 36
    rows = json.load(open(osp.join(loop.work_dir, 'summary.json')))
    assert rows[0]['picked_pseudo_label_accuracy'] == 1.0
    with pytest.raises(ValueError, match=r"isal: labels must be one of \('predicted', 'true'\)"):
        ClassifierISAL(labels='oracle')
    # the option is checked against the task's class: the detection ISAL has none
    block = dict(cfg.active_learning.to_dict(), strategy=dict(type='isal', labels='true'))
    ActiveLearningConfig.from_dict(block, loop.task.strategy_class)
    with pytest.raises(ValueError, match=r'unknown key\(s\) in active_learning.strategy '
                                         r'\(isal\): labels'):
        ActiveLearningConfig.from_dict(block)
    # and tools/al_experiment.py's --strategies entries are built as the task builds them
    entry = 'isal_true_labels=isal(labels=true)'
    spec, = parse_strategy_specs([entry], loop.task.build_strategy)
    assert spec.strategy == dict(type='isal', labels='true')
    with pytest.raises(ValueError, match="unexpected keyword argument 'labels'"):
        parse_strategy_specs([entry])


def test_class_matched_random_picks_isals_class_mix_at_random(tiny_set, tmp_path):
    """matched_random(match='class'): the loop hands the pool's true classes to the control,
    whose picks have the class histogram of ISAL's, drawn at random within each class."""
    cfg = tiny_cfg(tiny_set, strategy=dict(type='matched_random', strategy='isal',
                                           match='class'))
    loop = ActiveLearningLoop(cfg, work_dir=str(tmp_path / 'run'),
                              trainer=UntrainedTrainer(cfg, seed=1))
    loop.run()
    ledger = PoolLedger.load(loop.ledger_path)
    info = ledger.steps[0]['strategy_info']
    assert info['match'] == 'class' and info['strategy'] == dict(type='classifier_isal')
    picked = ledger.selected_at(1)
    inner = info['inner_picks']
    assert len(picked) == len(inner) == 8 and set(picked) != set(inner)
    assert Counter(loop.pool.labels[i] for i in picked) == Counter(
        loop.pool.labels[i] for i in inner)
    assert info['inner_class_histogram'] == {
        str(k): v for k, v in sorted(Counter(loop.pool.labels[i] for i in inner).items())}


@pytest.mark.slow
def test_isal_through_the_last_block(tiny_set, tmp_path):
    """scorer.params: ISAL through the last block and the last layer, on the images (CG)."""
    # the cross-entropy's Hessian in the block's parameters need not be positive definite: a
    # damping large enough for CG
    strategy = dict(type='isal', scorer=dict(params=['backbone.layer4.1', 'fc'], solver='cg',
                                             depth=10, damping=1.0))
    cfg = tiny_cfg(tiny_set, strategy=strategy)
    loop = ActiveLearningLoop(cfg, work_dir=str(tmp_path / 'run'),
                              trainer=UntrainedTrainer(cfg, seed=1))
    loop.run()
    ledger = PoolLedger.load(loop.ledger_path)
    info = ledger.steps[0]['strategy_info']
    model = loop.trainer.model_of(loop.job(0)).model
    expected = sum(p.numel() for n, p in model.named_parameters()
                   if n.startswith(('backbone.layer4.1.', 'fc.')))
    assert info['params'] == ['backbone.layer4.1', 'fc'] and info['parameters'] == expected
    scores = [ledger.images[i]['scores'][0] for i in ledger.ranking(0)]
    assert len(scores) == 36 and scores == sorted(scores)
    assert len(ledger.labeled_ids(1)) == 20


@pytest.mark.slow
def test_al_loop_and_al_experiment_tools_train_a_classifier(tiny_set, tmp_path):
    """tools/al_loop.py and tools/al_experiment.py with the classification config, mmengine's
    Runner training each step (one epoch on the tiny set)."""
    options = [f'{k}={v}' for k, v in (
        ('train_dataloader.dataset.data_root', tiny_set),
        ('train_dataloader.sampler.min_length', 1),
        ('val_dataloader.dataset.data_root', tiny_set),
        ('model.backbone.base_channels', 4), ('train_cfg.max_epochs', 1),
        ('param_scheduler.0.end', 1), ('param_scheduler.0.T_max', 1),
        ('default_hooks.checkpoint.interval', 1),
        ('active_learning.initial.images', 12), ('active_learning.budget.images', 8),
        ('active_learning.steps', 2), ('active_learning.scorer.hessian_batch_size', 4),
        ('active_learning.reference', osp.join(tiny_set, 'val.txt')),
        ('val_evaluator.target_prior', osp.join(tiny_set, 'val.txt')))]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    run = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'al_loop.py'), CONFIG,
                          '--work-dir', str(tmp_path / 'loop'), '--cfg-options', *options],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    ledger = PoolLedger.load(str(tmp_path / 'loop' / 'ledger.json'))
    assert ledger.finished(2) and len(ledger.labeled_ids(1)) == 20
    assert 0 <= ledger.steps[1]['accuracy'] <= 1
    run = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'al_experiment.py'), CONFIG,
                          '--strategies', 'isal', 'random', '--seeds', '1', '--work-dir',
                          str(tmp_path / 'exp'), '--cfg-options', *options],
                         env=env, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    table = open(tmp_path / 'exp' / 'experiment.csv').read().split('\n')
    assert table[0].startswith('strategy,step,seeds,images_mean') and 'accuracy_mean' in table[0]
    assert len([line for line in table[1:] if line]) == 4  # 2 strategies x 2 steps
    assert 'accuracy per strategy and step' in open(tmp_path / 'exp' / 'report.txt').read()
