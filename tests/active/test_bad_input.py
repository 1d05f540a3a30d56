"""Bad input fails before any training, with one message naming the input and what to do, and
no input file is modified: malformed COCO and VOC files, missing and unreadable images, a bad
active_learning block, budgets that do not fit, a checkpoint of another model."""
import copy
import hashlib
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from mmdet.registry import MODELS

from mmdet_isal.active import ActiveLearningConfig, ActiveLearningLoop, build_pool
from mmdet_isal.active.subsets import CocoPool, VocPool
from mmdet_isal.datasets.validate import AnnotationError, check_coco, load_coco
from mmdet_isal.detection import ScorerOptions
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.utils.checkpoint_fit import CheckpointMismatchError, checkpoint_fit

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope='module')
def coco_pool(pool_coco):
    with open(osp.join(pool_coco, 'annotations', 'instances_train.json')) as f:
        return json.load(f)


def write_coco(tmp_path, coco, name='pool.json'):
    path = tmp_path / name
    path.write_text(json.dumps(coco))
    return str(path)


def _set(path, value):
    """An edit of the pool dict: ``path`` is a tuple of keys/indices, the last one is set."""
    def edit(coco):
        target = coco
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


def _pop(path):
    def edit(coco):
        target = coco
        for key in path[:-1]:
            target = target[key]
        target.pop(path[-1])
    return edit


# each: (edit of the pool, what the message must say, the offending entry it must name)
COCO_CASES = {
    'missing top-level key': (_pop(('annotations',)), '"annotations" is missing', ''),
    'images not a list': (_set(('images',), {}), '"images" is not a list', ''),
    'duplicate image id': (_set(('images', 1, 'id'), 1), 'repeated image ids', 'id 1'),
    'duplicate annotation id': (_set(('annotations', 1, 'id'), 1), 'repeated annotation ids',
                                'id 1 (2 times)'),
    'annotation on a missing image': (_set(('annotations', 0, 'image_id'), 999999),
                                      'annotations on an image id that is not in "images"',
                                      'image id 999999'),
    'box outside the image': (_set(('annotations', 0, 'bbox'), [100, 100, 60, 60]),
                              'boxes outside their image', 'bbox [100, 100, 60, 60] in a 128x128'),
    'negative width': (_set(('annotations', 0, 'bbox'), [10, 10, -5, 5]),
                       'boxes with a negative width or height', 'annotation id 1'),
    'negative height': (_set(('annotations', 2, 'bbox'), [10, 10, 5, -1]),
                        'boxes with a negative width or height', 'annotation id 3'),
    'bbox not 4 numbers': (_set(('annotations', 0, 'bbox'), [1, 2, 3]),
                           'boxes that are not 4 finite numbers', 'bbox [1, 2, 3]'),
    'undeclared category': (_set(('annotations', 0, 'category_id'), 77),
                            'category_id is not declared', 'category_id 77'),
    'annotation without area': (_pop(('annotations', 0, 'area')),
                                'annotations without', 'has no area'),
    'image without file_name': (_pop(('images', 0, 'file_name')), 'images without',
                                'has no file_name'),
    'image with zero width': (_set(('images', 0, 'width'), 0),
                              'width or height is not a positive number', 'width 0'),
    'duplicate category id': (_set(('categories', 1, 'id'), 1), 'repeated category ids', 'id 1'),
}


@pytest.mark.parametrize('case', list(COCO_CASES))
def test_malformed_coco_pool_is_refused_naming_the_entry(case, coco_pool, tmp_path):
    edit, kind, entry = COCO_CASES[case]
    coco = copy.deepcopy(coco_pool)
    edit(coco)
    path = write_coco(tmp_path, coco)
    before = digest(path)
    with pytest.raises(AnnotationError) as info:
        CocoPool(path)
    message = str(info.value)
    assert path in message and kind in message and entry in message, message
    assert digest(path) == before


def test_every_problem_is_listed_at_once(coco_pool, tmp_path):
    coco = copy.deepcopy(coco_pool)
    for edit in (_set(('annotations', 0, 'bbox'), [10, 10, -5, 5]),
                 _set(('annotations', 1, 'category_id'), 77),
                 _set(('annotations', 2, 'image_id'), 999999),
                 _set(('annotations', 3, 'bbox'), [10, 10, -1, 5])):
        edit(coco)
    with pytest.raises(AnnotationError) as info:
        CocoPool(write_coco(tmp_path, coco))
    message = str(info.value)
    assert '2 boxes with a negative width or height' in message
    assert '1 annotations whose category_id is not declared' in message
    assert '1 annotations on an image id that is not in "images"' in message


def test_tiny_and_zero_area_boxes_are_noted_not_refused(coco_pool, tmp_path):
    # COCO train2017 has two boxes of height 0: mmdet skips them in training; refusing them
    # would refuse COCO
    coco = copy.deepcopy(coco_pool)
    _set(('annotations', 0, 'bbox'), [10, 10, 4, 0])(coco)
    _set(('annotations', 1, 'area'), 0)(coco)
    pool = CocoPool(write_coco(tmp_path, coco))
    assert len(pool.notes) == 1
    assert pool.notes[0].startswith('2 annotations that mmdet skips in training')
    assert 'annotation id 1 (image id 1): bbox [10, 10, 4, 0]' in pool.notes[0]
    assert pool.num_boxes[1] == sum(a['image_id'] == 1 for a in coco_pool['annotations'])


def test_box_within_the_tolerance_is_accepted(coco_pool, tmp_path):
    coco = copy.deepcopy(coco_pool)
    _set(('annotations', 0, 'bbox'), [-0.5, 0, 128.9, 128.4])(coco)
    assert CocoPool(write_coco(tmp_path, coco)).notes == []


def test_truncated_json_names_the_place(coco_pool, tmp_path):
    path = tmp_path / 'cut.json'
    path.write_text(json.dumps(coco_pool)[:300])
    with pytest.raises(AnnotationError, match=r'cut.json is not valid JSON \(.*line 1, column'):
        load_coco(str(path))


def test_empty_pool_is_refused(coco_pool, tmp_path):
    coco = dict(coco_pool, images=[], annotations=[])
    with pytest.raises(AnnotationError, match=r'lists no images'):
        CocoPool(write_coco(tmp_path, coco))


def test_classes_of_the_config_must_be_categories_of_the_file(coco_pool, tmp_path):
    path = write_coco(tmp_path, coco_pool)
    names = [c['name'] for c in coco_pool['categories']]
    with pytest.raises(AnnotationError, match=r"classes of the config .* e.g. circel"):
        check_coco(load_coco(path), path, ['circel'] + names[1:])
    notes = check_coco(load_coco(path), path, names[:-1])
    assert notes == [f'1 categories that are not in metainfo.classes: mmdet ignores their '
                     f'annotations, e.g. {names[-1]}']


# --- images ---------------------------------------------------------------------------------
@pytest.fixture
def coco_copy(pool_coco, tmp_path):
    """A writable copy of the COCO pool (annotations and images)."""
    root = tmp_path / 'data'
    shutil.copytree(pool_coco, root)
    return root


def coco_dataset(root):
    return dict(type='CocoDataset', data_root=str(root) + '/',
                ann_file='annotations/instances_train.json', data_prefix=dict(img='images/'))


def test_missing_and_unreadable_images_are_named(coco_copy):
    images = sorted(os.listdir(coco_copy / 'images'))
    train = [f for f in images if f.startswith('train_')]
    os.remove(coco_copy / 'images' / train[0])
    (coco_copy / 'images' / train[1]).write_bytes(b'not an image')
    (coco_copy / 'images' / train[2]).write_bytes(b'')
    with pytest.raises(AnnotationError) as info:
        build_pool(coco_dataset(coco_copy))
    message = str(info.value)
    assert f'1 image files missing, e.g. {coco_copy}/images/{train[0]} (image id 1)' in message
    assert '2 image files that cannot be read as images' in message
    assert f'images/{train[1]} (image id 2)' in message
    assert f'images/{train[2]} (image id 3)' in message


def test_wrong_image_prefix_names_the_files(coco_copy):
    dataset = dict(coco_dataset(coco_copy), data_prefix=dict(img='imgs/'))
    with pytest.raises(AnnotationError, match=r'40 image files missing, e\.g\. .*/imgs/train_'):
        build_pool(dataset)


# --- VOC ------------------------------------------------------------------------------------
@pytest.fixture
def voc_copy(pool_voc, tmp_path):
    root = tmp_path / 'voc'
    shutil.copytree(pool_voc, root)
    return root / 'VOC2012'


def first_xml(voc_root):
    with open(voc_root / 'ImageSets' / 'Main' / 'train.txt') as f:
        img_id = f.readline().strip()
    return img_id, voc_root / 'Annotations' / f'{img_id}.xml'


def voc_pool(voc_root, classes=None):
    return VocPool(str(voc_root / 'ImageSets' / 'Main' / 'train.txt'),
                   str(voc_root / 'Annotations'), classes)


VOC_CASES = {
    'not well-formed': (lambda s: s[:len(s) // 2], 'XML files that are not well-formed'),
    'non-numeric coordinate': (lambda s: s.replace('<xmin>', '<xmin>abc', 1),
                               'xmin/ymin/xmax/ymax are missing or not numbers'),
    'no bndbox': (lambda s: s.replace('<bndbox>', '<box>', 1).replace('</bndbox>', '</box>', 1),
                  'objects without a <bndbox>'),
    'no name': (lambda s: s.replace('<name>', '<nom>', 1).replace('</name>', '</nom>', 1),
                'objects without a <name>'),
    'negative size': (lambda s: s.replace('<xmax>', '<xmax>-', 1),
                      'xmax < xmin or ymax < ymin'),
    'outside the image': (lambda s: s.replace('<xmax>', '<xmax>9', 1),
                          'boxes outside their image'),
    'bad size': (lambda s: s.replace('<width>', '<width>w', 1),
                 'size/width or size/height is not an integer'),
    'bad difficult': (lambda s: s.replace('<difficult>0', '<difficult>no', 1),
                      '<difficult> is not an integer'),
}


@pytest.mark.parametrize('case', list(VOC_CASES))
def test_malformed_voc_xml_is_refused_naming_the_file(case, voc_copy):
    edit, kind = VOC_CASES[case]
    img_id, xml = first_xml(voc_copy)
    xml.write_text(edit(xml.read_text()))
    before = digest(xml)
    with pytest.raises(AnnotationError) as info:
        voc_pool(voc_copy)
    message = str(info.value)
    assert kind in message and f'{img_id}.xml' in message, message
    assert digest(xml) == before


def test_voc_class_not_in_metainfo_and_missing_xml(voc_copy):
    from mmdet_isal.datasets import SHAPES_CLASSES
    img_id, xml = first_xml(voc_copy)
    xml.write_text(xml.read_text().replace('<name>', '<name>zebra', 1))
    with pytest.raises(AnnotationError, match=rf"class not in metainfo.classes.*{img_id}.xml "
                                              rf"object 0: 'zebra"):
        voc_pool(voc_copy, list(SHAPES_CLASSES))
    os.remove(xml)
    with pytest.raises(AnnotationError, match=rf'1 XML files missing, e.g. .*{img_id}.xml'):
        voc_pool(voc_copy)


def test_voc_repeated_and_empty_lists(voc_copy):
    listing = voc_copy / 'ImageSets' / 'Main' / 'train.txt'
    ids = listing.read_text().split()
    listing.write_text('\n'.join(ids + ids[:1]))
    with pytest.raises(AnnotationError, match=rf"lists image id\(s\) \['{ids[0]}'\] more than"):
        voc_pool(voc_copy)
    listing.write_text('\n')
    with pytest.raises(AnnotationError, match='lists no image ids'):
        voc_pool(voc_copy)


def test_voc_missing_jpeg(voc_copy):
    img_id, _ = first_xml(voc_copy)
    os.remove(voc_copy / 'JPEGImages' / f'{img_id}.jpg')
    dataset = dict(type='VOCDataset', data_root=str(voc_copy.parent) + '/',
                   ann_file='VOC2012/ImageSets/Main/train.txt',
                   data_prefix=dict(sub_data_root='VOC2012/'))
    with pytest.raises(AnnotationError, match=rf'1 image files missing, e.g. .*JPEGImages/'
                                              rf'{img_id}.jpg'):
        build_pool(dataset)


# --- the active_learning block ---------------------------------------------------------------
BASE = dict(initial=dict(images=5), budget=dict(images=2), steps=2)


@pytest.mark.parametrize('extra, match', [
    (dict(stepz=3), r'unknown key\(s\) in active_learning: stepz \(did you mean steps\?\); '
                    r'allowed keys: annotator, budget, check_images, cost, finetune_cfg, gallery, '
                    r'initial'),
    (dict(strategy='isal', scorer=dict(dampnig=0.1)),
     r'unknown key\(s\) in active_learning.scorer: dampnig \(did you mean damping\?\)'),
    (dict(scorer=dict(damping=-1)), r'active_learning.scorer: damping must be a finite number '
                                    r'>= 0, got -1'),
    (dict(scorer=dict(damping=float('inf'))), r'damping must be a finite number'),
    (dict(scorer=dict(scale=0)), r"active_learning.scorer: scale must be 'auto' or a finite "
                                 r"number > 0, got 0"),
    (dict(scorer=dict(scale='automatic')), r"scale must be 'auto'"),
    (dict(scorer=dict(score_thr=1.5)), r'active_learning.scorer: .*score_thr must be a number '
                                       r"in \[0, 1\) or 'auto', got 1.5"),
    (dict(scorer=dict(score_thr='automatic')), r"score_thr must be a number in \[0, 1\) or "
                                               r"'auto', got 'automatic'"),
    (dict(scorer=dict(rank_by='influence_per_second')),
     r"rank_by must be one of .*'influence_per_cost'.*did you mean 'influence_per_cost'"),
    (dict(scorer=dict(repeats=0)), r'active_learning.scorer: .*repeats must be an integer >= 1'),
    (dict(scorer=dict(solver='lisa')), r"active_learning.scorer: solver must be one of the "
                                       r"registered solvers .*'lisa' \(did you mean 'lissa'\?\)"),
    (dict(scorer=dict(include_bias='yes')), r'include_bias must be True or False'),
    (dict(scorer=[1]), r'active_learning.scorer must be a dict'),
    (dict(strategy=dict(type='random', foo=1)),
     r'unknown key\(s\) in active_learning.strategy \(random\): foo; allowed keys: none'),
    (dict(strategy=dict(type='fewest_detections', score_th=0.3)),
     r'score_th \(did you mean score_thr\?\); allowed keys: batch_size, score_thr'),
    (dict(strategy=dict(type='isal', scorer=dict(scale=-2))),
     r"active_learning.strategy.scorer: scale must be 'auto' or a finite number > 0, got -2"),
    (dict(strategy=dict(type='isal', scorer=dict(repeat=2))),
     r'unknown key\(s\) in active_learning.strategy.scorer: repeat \(did you mean repeats\?\)'),
    (dict(strategy='rnadom'), r"no strategy named 'rnadom' \(did you mean 'random'\?\); "
                              r"registered: (\w+, )*isal, (\w+, )*random"),
    (dict(target_ap='high'), r"target_ap \(on mmdet.s 0-1 scale, e.g. 0.25\) must be a number "
                             r"in \(0, 1\], got 'high'"),
    (dict(initial=dict(images=0)), r'active_learning.initial.images must be an integer >= 1, '
                                   r'got 0'),
    (dict(budget=dict(boxes=-3)), r'active_learning.budget.boxes must be an integer >= 1, '
                                  r'got -3'),
    (dict(budget=dict(imgs=3)), r'budget must be dict\(images=N\), dict\(boxes=N\) or '
                                r'dict\(seconds=S\)'),
    (dict(budget=dict(seconds=0)), r'active_learning.budget.seconds must be a finite number > 0'),
    (dict(initial=dict(seconds=float('nan'))), r'initial.seconds must be a finite number > 0'),
    (dict(cost=dict(per_imge=3)), r'unknown key\(s\) in active_learning.cost: per_imge \(did '
                                  r'you mean per_image\?\); allowed keys: per_box, per_image'),
    (dict(cost=dict(per_image=0)), r'active_learning.cost.per_image .*must be a finite number '
                                   r'> 0, got 0'),
    (dict(cost=dict(per_box=-7)), r'active_learning.cost.per_box \(seconds\) must be a finite '
                                  r'number >= 0, got -7'),
    (dict(cost=7), r'active_learning.cost must be dict\(per_image=S, per_box=S\)'),
    (dict(reference=3), r'reference must be the path'),
])
def test_active_learning_block_errors_name_the_key(extra, match):
    with pytest.raises((KeyError, ValueError), match=match):
        ActiveLearningConfig.from_dict(dict(BASE, **extra))


def test_valid_scorer_and_strategy_options_pass():
    given = dict(damping=0.0, scale=5.0, score_thr=0.0)
    al = ActiveLearningConfig.from_dict(dict(
        BASE, strategy=dict(type='fewest_detections', score_thr=0.3), scorer=given))
    # parsed once, here; the ledger keeps the flat dict of every option
    assert al.scorer == ScorerOptions.from_dict(given)
    assert al.to_dict()['scorer'] == dict(ScorerOptions().to_dict(), **given)
    assert al.to_dict()['strategy'] == dict(type='fewest_detections', score_thr=0.3)


@pytest.mark.parametrize('block', [
    dict(BASE, steps=True), dict(BASE, seed=True), dict(BASE, seed=False),
    dict(BASE, initial=dict(images=True)), dict(BASE, budget=dict(boxes=True)),
    dict(BASE, scorer=dict(repeats=True)), dict(BASE, scorer=dict(hessian_images=True)),
    dict(BASE, scorer=dict(feature_cache_mb=False)), dict(BASE, scorer=dict(depth=True)),
    dict(BASE, scorer=dict(batch_size=True)), dict(BASE, scorer=dict(score_thr=False)),
    dict(BASE, scorer=dict(damping=False)),
    dict(BASE, strategy=dict(type='isal', scorer=dict(power_iters=True))),
    dict(BASE, strategy=dict(type='coreset', max_greedy=False)),
    dict(BASE, budget=dict(seconds=True)), dict(BASE, cost=dict(per_box=True)),
])
def test_bools_are_refused_as_integers_and_numbers(block):
    # ``bool`` subclasses ``int`` in Python: True once passed as 1 for some options
    with pytest.raises(ValueError, match=r'must be .*, got (True|False)'):
        al = ActiveLearningConfig.from_dict(block)
        STRATEGIES.build(dict(al.strategy, _scope_=STRATEGIES.scope))


# --- the loop, before any training ------------------------------------------------------------
def _no_training(work_dir):
    return not osp.exists(work_dir) or not any(
        d.startswith('step_') for d in os.listdir(work_dir))


def test_loop_refuses_a_bad_val_set_before_training(al_cfg, coco_copy, tmp_path):
    val = coco_copy / 'annotations' / 'instances_val.json'
    coco = json.loads(val.read_text())
    coco['annotations'][0]['category_id'] = 99
    val.write_text(json.dumps(coco))
    cfg = al_cfg(coco_copy, tmp_path / 'run')
    with pytest.raises(AnnotationError, match=r'instances_val.json cannot be used:\n  - 1 '
                                              r'annotations whose category_id is not declared'):
        ActiveLearningLoop(cfg)
    assert _no_training(tmp_path / 'run')


@pytest.mark.parametrize('al, match', [
    (dict(initial=dict(images=41)), r"active_learning.initial=\{'images': 41\} is larger than "
                                    r"what is left in the pool \(40 images, \d+ boxes\); lower "
                                    r"active_learning.initial"),
    (dict(budget=dict(images=33)), r"1 more selection\(s\) of budget=\{'images': 33\} need 33 "
                                   r"images, but the pool .* has only 32 unlabeled images left"),
    (dict(budget=dict(boxes=100000)), r'need 100000 boxes'),
])
def test_budgets_that_do_not_fit_fail_before_training(al, match, al_cfg, pool_coco, tmp_path):
    cfg = al_cfg(pool_coco, tmp_path / 'run', **al)
    with pytest.raises(ValueError, match=match):
        ActiveLearningLoop(cfg).prepare()
    assert _no_training(tmp_path / 'run')


def run_tool(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, osp.join(REPO, 'tools', 'al_loop.py'), *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


@pytest.mark.slow  # a subprocess importing mmdet, or a Runner: seconds each
def test_al_loop_tool_prints_one_message_and_no_traceback(coco_copy, tmp_path):
    ann = coco_copy / 'annotations' / 'instances_train.json'
    coco = json.loads(ann.read_text())
    coco['annotations'][4]['bbox'] = [3, 3, -2, 8]
    ann.write_text(json.dumps(coco))
    before = digest(ann)
    work_dir = tmp_path / 'run'
    root = f'{coco_copy}/'
    proc = run_tool(osp.join(REPO, 'configs', 'toy', 'fcos_shapes_al.py'),
                    '--work-dir', str(work_dir), '--cfg-options',
                    *(f'{s}_dataloader.dataset.data_root={root}' for s in ('train', 'val', 'test')),
                    f'val_evaluator.ann_file={root}annotations/instances_val.json')
    assert proc.returncode == 1
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-3:] == [
        f'al_loop.py: error: {ann} cannot be used:',
        f'  - 1 boxes with a negative width or height, e.g. annotation id 5 (image id '
        f'{coco["annotations"][4]["image_id"]}): bbox [3, 3, -2, 8]',
        'Fix the file (this tool never modifies it) or point the config at another one, then '
        'run again.']
    assert digest(ann) == before and _no_training(work_dir)


# --- checkpoints ------------------------------------------------------------------------------
class TwoLayers(torch.nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.body = torch.nn.Linear(10, 20)  # 220 numbers
        self.head = torch.nn.Linear(20, classes)  # 21 * classes numbers


def save_state(model, path):
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), str(path))
    return str(path)


def test_checkpoint_fit_counts_numbers_that_fit(tmp_path):
    model = TwoLayers(3)
    assert checkpoint_fit(model, save_state(TwoLayers(3), tmp_path / 'same.pth')) == []
    # other classes: 220 of 283 numbers fit (78%): fine-tuning, noted
    notes = checkpoint_fit(model, save_state(TwoLayers(5), tmp_path / 'other.pth'), 'load_from')
    assert notes == [f'load_from {tmp_path}/other.pth: 2 parameter tensors keep their '
                     f'initialisation (2 of other shape, 0 missing), e.g. head.weight: '
                     f'checkpoint (5, 20), model (3, 20); head.bias: checkpoint (5,), model (3,)']
    with pytest.raises(CheckpointMismatchError, match=r'only 78% of the model'):
        checkpoint_fit(model, str(tmp_path / 'other.pth'), 'load_from', min_fit=0.8)
    # a model whose body has another width: only head.bias fits, 3 of 283 numbers
    other = torch.nn.Module()
    other.body, other.head = torch.nn.Linear(10, 30), torch.nn.Linear(30, 3)
    with pytest.raises(CheckpointMismatchError,
                       match=r"load_from .*body.pth is not a checkpoint of the config's model "
                             r"\(TwoLayers\): only 1% .*\(3 of other shape, e.g. body.weight: "
                             r"checkpoint \(30, 10\), model \(20, 10\)"):
        checkpoint_fit(model, save_state(other, tmp_path / 'body.pth'), 'load_from')
    (tmp_path / 'junk.pth').write_text('not a checkpoint')
    with pytest.raises(CheckpointMismatchError, match='junk.pth cannot be read as a checkpoint'):
        checkpoint_fit(model, str(tmp_path / 'junk.pth'), 'load_from')
    with pytest.raises(FileNotFoundError, match='load_from .*none.pth does not exist'):
        checkpoint_fit(model, str(tmp_path / 'none.pth'), 'load_from')


def test_loop_refuses_a_checkpoint_of_another_model(al_cfg, pool_coco, tmp_path):
    cfg = al_cfg(pool_coco, tmp_path / 'run', detector='fcos_shapes')
    other = al_cfg(pool_coco, tmp_path / 'x', detector='faster_rcnn_shapes')
    other.model.backbone.base_channels = 8
    other.model.neck.in_channels = [8, 16, 32, 64]
    model = MODELS.build(other.model)
    cfg.load_from = save_state(model, tmp_path / 'frcnn.pth')
    with pytest.raises(CheckpointMismatchError, match=r'load_from .*frcnn.pth is not a '
                                                      r'checkpoint of the config.s model \(FCOS\)'):
        ActiveLearningLoop(cfg)
    assert _no_training(tmp_path / 'run')


def test_resuming_with_another_model_is_refused(al_cfg, pool_coco, tmp_path):
    cfg = al_cfg(pool_coco, tmp_path)
    loop = ActiveLearningLoop(cfg)
    loop.prepare()
    os.makedirs(tmp_path / 'step_0')
    loop.ledger.finish_stage(0, 'train', 1.0, checkpoint='step_0/epoch_2.pth')
    loop.ledger.save(loop.ledger_path)
    save_state(TwoLayers(), tmp_path / 'step_0' / 'epoch_2.pth')
    with pytest.raises(CheckpointMismatchError, match=rf'the checkpoint of the run in '
                                                      rf'{tmp_path} .*epoch_2.pth is not'):
        ActiveLearningLoop(cfg)


@pytest.mark.slow  # the loop trains a detector
def test_isal_on_a_pool_without_any_pseudo_label_goes_on(al_cfg, pool_coco, tmp_path):
    # a weak step-0 detector with a high threshold: no pool image gets a pseudo box, so none is
    # ranked by influence; they are all taken in the seed's order and the run goes on
    cfg = al_cfg(pool_coco, tmp_path, strategy='isal',
                 scorer=dict(hessian_images=4, repeats=1, depth=2, power_iters=2,
                             score_thr=0.999))
    cfg.merge_from_dict({'train_cfg.max_epochs': 1})
    ledger = ActiveLearningLoop(cfg).run()
    step0 = ledger.steps[0]
    assert step0['num_scored'] == 0 and step0['num_unscored'] == 32
    assert step0['strategy_info']['num_without_pseudo_boxes'] == 32
    assert all(ledger.images[i]['scores'][0] is None for i in ledger.unlabeled_ids(0))
    assert len(ledger.selected_at(1)) == 6 and ledger.steps[1]['finished']


def test_a_missing_evaluator_file_is_named_before_training(al_cfg, pool_coco, tmp_path):
    cfg = al_cfg(pool_coco, tmp_path / 'run')
    cfg.val_evaluator.ann_file = str(tmp_path / 'instances_vall.json')
    with pytest.raises(FileNotFoundError, match=r'val_evaluator.ann_file .*instances_vall.json '
                                                 r'does not exist'):
        ActiveLearningLoop(cfg)
    assert _no_training(tmp_path / 'run')
