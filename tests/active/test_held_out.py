"""Held-out evaluation: the toy active-learning configs grade every strategy on the test split,
which shares no image with the pool or with ISAL's reference set (val), and no strategy reads
it: every file opened while each registered strategy ranks a pool is recorded (an audit hook on
``open``) and none is the test split's. The paper configs keep the paper's choice (reference =
val = evaluation)."""
import copy
import glob
import json
import os
import os.path as osp
import sys

import pytest
from mmengine.config import Config

from mmdet_isal.active import ActiveLearningLoop, resolve_ann_file
from mmdet_isal.cost import Budget, CostModel
from mmdet_isal.datasets import make_shapes_dataset
from mmdet_isal.detection import ScorerOptions, build_scoring_dataset
from mmdet_isal.detection.data import base_dataset_cfg
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.strategies.base import SelectionContext
from tests.active.fake_trainer import FakeTrainer
from tests.detection.test_losses import build_model

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: the toy configs with an active_learning block: evaluated on the held-out test split
TOY_AL = sorted(osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', 'toy', '*.py'))
                if 'active_learning' in open(p).read())
PAPER = ['configs/fcos_coco_isal.py', 'configs/faster_rcnn_coco_isal.py',
         'configs/fcos_voc_isal.py']
TEST_ANN = 'annotations/instances_test.json'
VAL_ANN = 'annotations/instances_val.json'


@pytest.fixture(scope='module')
def held_out_set(tmp_path_factory):
    """A shapes set with a pool of 16, a val split of 6 and a test split of 6 images."""
    root = tmp_path_factory.mktemp('held_out')
    make_shapes_dataset(root, seed=0, num_train=16, num_val=6, num_test=6, image_size=64)
    return str(root) + '/'


def on_set(path, root):
    """A toy config moved to ``root``: every data_root, and the evaluator and reference files
    (the same file names, under ``root``)."""
    cfg = Config.fromfile(osp.join(REPO, path))
    options = {}
    for split in ('train', 'val', 'test'):
        dataset, key = cfg[f'{split}_dataloader'].dataset, f'{split}_dataloader.dataset'
        while 'ann_file' not in dataset and 'dataset' in dataset:  # through wrappers
            dataset, key = dataset.dataset, key + '.dataset'
        options[key + '.data_root'] = root
        options[f'{split}_dataloader.num_workers'] = 0
        options[f'{split}_dataloader.persistent_workers'] = False
    for split in ('val', 'test'):
        options[f'{split}_evaluator.ann_file'] = root + 'annotations/' + osp.basename(
            cfg[f'{split}_evaluator'].ann_file)
    options['active_learning.reference'] = root + 'annotations/' + osp.basename(
        cfg.active_learning.reference)
    cfg.merge_from_dict(options)
    return cfg


def _coco(path):
    with open(path) as f:
        return json.load(f)


def test_the_toy_al_configs_cover_the_demo_and_the_experiment():
    assert {'configs/toy/fcos_shapes_al.py', 'configs/toy/fcos_shapes_isal.py',
            'configs/toy/fcos_shapes_random.py', 'configs/toy/faster_rcnn_shapes_isal.py',
            'configs/toy/fcos_shapes_learning_loss_al.py',
            'configs/toy/fcos_shapes_cost_al.py'} == set(TOY_AL)


@pytest.mark.parametrize('path', TOY_AL)
def test_toy_configs_evaluate_on_the_test_split_disjoint_from_pool_and_reference(path,
                                                                                held_out_set):
    cfg = Config.fromfile(osp.join(REPO, path))
    for split in ('val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.ann_file == TEST_ANN
        assert cfg[f'{split}_evaluator'].ann_file.endswith(TEST_ANN)
    assert cfg.active_learning.reference.endswith(VAL_ANN)
    assert base_dataset_cfg(cfg.train_dataloader, 'train').ann_file == \
        'annotations/instances_train.json'
    # as the loop resolves them, on a generated set: three files, no image in two of them
    loop = ActiveLearningLoop(on_set(path, held_out_set), work_dir=held_out_set + 'run',
                              trainer=FakeTrainer())
    evaluation = resolve_ann_file(loop.cfg.val_dataloader.dataset)
    assert evaluation == osp.abspath(held_out_set + TEST_ANN)
    assert loop.cfg.val_evaluator.ann_file == evaluation
    assert loop.reference_ann_file == osp.abspath(held_out_set + VAL_ANN)
    splits = {name: _coco(f) for name, f in (('pool', loop.pool.ann_file),
                                             ('reference', loop.reference_ann_file),
                                             ('test', evaluation))}
    ids = {k: {im['id'] for im in v['images']} for k, v in splits.items()}
    files = {k: {im['file_name'] for im in v['images']} for k, v in splits.items()}
    assert len(ids['test']) == 6 and len(ids['pool']) == 16 and len(ids['reference']) == 6
    for other in ('pool', 'reference'):
        assert not ids['test'] & ids[other] and not files['test'] & files[other]
    # (pool and val number their images from 1 each, as separate COCO files do; their images
    # are other files)
    assert not files['pool'] & files['reference']


@pytest.mark.parametrize('path', PAPER)
def test_paper_configs_keep_reference_equal_to_evaluation(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    assert cfg.active_learning.get('reference') is None  # the validation set
    text = open(osp.join(REPO, path)).read()
    assert "ISAL's reference set is the evaluation set" in text


# --- no strategy reads the test split ---------------------------------------------------------
_OPENED = []
_RECORDING = []


def _audit(event, args):
    if _RECORDING and event == 'open' and args and isinstance(args[0], (str, bytes,
                                                                         os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


@pytest.fixture(scope='module')
def recorder():
    """A context that records the path of every file opened inside it (an audit hook: it
    cannot be removed, so it records only while asked to)."""
    if not getattr(sys, '_mmdet_isal_open_audit', False):
        sys.addaudithook(_audit)
        sys._mmdet_isal_open_audit = True

    class Record:
        def __enter__(self):
            _OPENED.clear()
            _RECORDING.append(True)
            return _OPENED

        def __exit__(self, *exc):
            _RECORDING.clear()
    return Record


def package_strategies():
    return sorted(name for name, cls in STRATEGIES.module_dict.items()
                  if cls.__module__.startswith('mmdet_isal.strategies'))


def test_the_strategies_checked_are_every_registered_one():
    assert set(package_strategies()) == {
        'random', 'isal', 'fewest_detections', 'entropy', 'least_confidence', 'coreset',
        'localization_stability', 'learning_loss', 'matched_random'}


def reads_test(paths, root):
    test_files = {osp.abspath(root + TEST_ANN)} | {
        osp.abspath(p) for p in glob.glob(root + 'images/test_*.png')}
    return sorted(p for p in paths if osp.abspath(p) in test_files or 'test_0' in
                  osp.basename(p) or 'instances_test' in p)


@pytest.mark.slow
@pytest.mark.parametrize('name', package_strategies())
def test_no_strategy_reads_the_test_split(name, held_out_set, recorder, tmp_path):
    path = ('configs/toy/fcos_shapes_learning_loss_al.py' if name == 'learning_loss'
            else 'configs/toy/fcos_shapes_al.py')
    cfg = on_set(path, held_out_set)
    cfg.merge_from_dict({'model.test_cfg.score_thr': 0.0} if name != 'learning_loss' else
                        {'model.detector.test_cfg.score_thr': 0.0})
    loop = ActiveLearningLoop(cfg, work_dir=str(tmp_path / 'run'), trainer=FakeTrainer())
    labeled_ids = loop.pool.image_ids[:8]
    labeled, unlabeled = loop.pool.write_split(labeled_ids, str(tmp_path / 'step_0'))
    step_cfg = copy.deepcopy(loop.cfg)
    step_cfg.pop('active_learning')
    step_cfg.train_dataloader.dataset.ann_file = labeled
    model = build_model(step_cfg)
    strategy = STRATEGIES.build(dict(type=name, _scope_=STRATEGIES.scope))
    unlabeled_ids = loop.pool.image_ids[8:]
    context = SelectionContext(
        model=model, cfg=step_cfg, unlabeled_ann_file=unlabeled, labeled_ann_file=labeled,
        reference_ann_file=loop.reference_ann_file, work_dir=str(tmp_path / 'strategy'),
        step=0, seed=0, unlabeled_ids=unlabeled_ids,
        scorer=ScorerOptions.from_dict(dict(hessian_images=4, repeats=1, depth=2,
                                            power_iters=2, power_batches=2, batch_size=4,
                                            score_thr='auto')),
        budget=Budget('images', 3), cost=CostModel(8.0, 7.0),
        pool_boxes={i: loop.pool.num_boxes[i] for i in unlabeled_ids})
    with recorder() as opened:
        ranking = strategy.rank(context)
    assert sorted(ranking.order) == sorted(unlabeled_ids)
    assert reads_test(opened, held_out_set) == []
    if name != 'random':  # the recorder sees what the strategies do read: the pool's images
        assert any(osp.basename(p).startswith('train_0') for p in opened)
    # and it would see the test split if a strategy read it: e.g. the config's evaluation set
    with recorder() as opened:
        build_scoring_dataset(step_cfg, step_cfg.val_dataloader.dataset.ann_file, True)[0]
    assert reads_test(opened, held_out_set)
