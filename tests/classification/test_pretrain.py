"""Training the classifier with mmengine's Runner (tools/train.py), evaluating it
(tools/test.py, tools/refit_check.py), and the cached pretraining of a backbone (tools/pretrain_backbone.py); both
train, so they are slow."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmdet_isal.classification.pretrain import pretrain_backbone, pretrained_record, record_path
from mmdet_isal.datasets import make_shapes_classification

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def other_shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('other_shapes')
    make_shapes_classification(root, class_set='other_shapes', num_train=24, num_val=8,
                               num_test=8)
    return str(root) + '/'


def _tiny(cfg_name, data_root):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'classification', f'{cfg_name}.py'))
    options = {'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1,
               'train_dataloader.batch_size': 8, 'default_hooks.checkpoint.interval': 1,
               'default_hooks.logger.interval': 1,
               'param_scheduler': [dict(type='ConstantLR', factor=1.0, by_epoch=False)]}
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.dataset.data_root'] = data_root
    cfg.merge_from_dict(options)
    return cfg


@pytest.mark.slow
def test_pretrain_writes_backbone_weights_once(other_shapes, tmp_path):
    cfg = _tiny('resnet18_other_shapes', other_shapes)
    out = str(tmp_path / 'pretrained' / 'r18c16.pth')
    record = pretrain_backbone(cfg, out, command='the command')
    assert record['status'] == 'trained' and record['command'] == 'the command'
    assert 0.0 <= record['val_accuracy'] <= 1.0 and record['seconds'] > 0
    state = torch.load(out, map_location='cpu', weights_only=True)['state_dict']
    assert 'conv1.weight' in state and 'layer4.1.bn2.running_var' in state
    assert record['state_dict_keys'] == len(state)
    with open(record_path(out)) as f:
        assert json.load(f)['sha256'] == record['sha256']
    mtime = os.path.getmtime(out)
    again = pretrain_backbone(cfg, out)
    assert again['status'] == 'up-to-date' and os.path.getmtime(out) == mtime
    # another config (one more epoch) is not the same weights
    longer = _tiny('resnet18_other_shapes', other_shapes)
    longer.train_cfg.max_epochs = 2
    assert pretrained_record(longer, out) is None
    # a damaged file is made again
    with open(out, 'ab') as f:
        f.write(b'x')
    assert pretrained_record(cfg, out) is None
    assert pretrain_backbone(cfg, out)['status'] == 'trained'


def test_pretrain_without_data_names_the_tool(tmp_path):
    cfg = _tiny('resnet18_other_shapes', str(tmp_path / 'nothing') + '/')
    with pytest.raises(FileNotFoundError, match='make_classification_dataset.py'):
        pretrain_backbone(cfg, str(tmp_path / 'w.pth'))


@pytest.mark.slow
def test_train_tool_trains_the_classifier(tmp_path, tmp_path_factory):
    """tools/train.py (mmdet's flags) trains a classification config as it trains a detector."""
    root = tmp_path_factory.mktemp('shapes_cls')
    make_shapes_classification(root, class_set='shapes', num_train=16, num_val=8, num_test=8)
    data_root = str(root) + '/'
    options = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
               'train_dataloader.batch_size=8', 'default_hooks.checkpoint.interval=1'] + [
        f'{s}_dataloader.dataset.data_root={data_root}' for s in ('train', 'val', 'test')]
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train.py'),
         osp.join(ROOT, 'configs', 'classification', 'resnet18_shapes.py'), '--work-dir',
         str(tmp_path), '--cfg-options'] + options,
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT,
                                                 OMP_NUM_THREADS='1'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    assert 'classification/accuracy' in result.stdout + result.stderr

    # tools/test.py grades the checkpoint with the test split, here also corrected to equal
    # class shares: the numbers of the classifier's logits, corrected by hand
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmdet_isal.apis import load_config
    from mmdet_isal.classification.outputs import classify_list
    register_all_modules()
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    config, checkpoint = str(tmp_path / 'resnet18_shapes.py'), str(tmp_path / 'epoch_1.pth')
    uniform = 'test_evaluator.target_prior=[1,1,1,1,1,1,1,1]'
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'), config, checkpoint, '--work-dir',
         str(tmp_path / 'test'), '--cfg-options', uniform],
        capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout[result.stdout.rindex('\n{\n'):])  # printed last
    cfg = load_config(config)
    model = MODELS.build(cfg.model)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)['state_dict'])
    assert model.train_class_counts.sum() == 16  # one epoch of the 16 images
    out = classify_list(model, cfg, osp.join(data_root, 'test.txt'))
    log_train = ((model.train_class_counts + 1) / (model.train_class_counts + 1).sum()).log()
    for key, logits in (('accuracy', out.logits),
                        ('prior_corrected_accuracy', out.logits.double() - log_train)):
        expected = (logits.argmax(1) == out.labels).double().mean().item()
        assert metrics[f'classification/{key}'] == pytest.approx(expected)
    assert metrics['classification/cross_entropy'] == pytest.approx(
        torch.nn.functional.cross_entropy(out.logits.double(), out.labels).item(), rel=1e-5)

    # tools/refit_check.py on the same classifier: its rows, and a config without a reference
    refit = [sys.executable, osp.join(ROOT, 'tools', 'refit_check.py'), config, checkpoint,
             '--unlabeled', 'val.txt', '--sizes', '1', '3', '--random-draws', '2']
    result = subprocess.run(refit + ['--reference', 'test.txt', '--out',
                                     str(tmp_path / 'refit.json')],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / 'refit.json') as f:
        rows = json.load(f)['rows']
    assert [(r['name'], r['size'], r['draws']) for r in rows] == [
        ('isal', 1, 1), ('isal_true_labels', 1, 1), ('random', 1, 2),
        ('isal', 3, 1), ('isal_true_labels', 3, 1), ('random', 3, 2)]
    assert 'isal_true_labels' in result.stdout and 'first-order' in result.stdout
    result = subprocess.run(refit, capture_output=True, text=True, env=env)
    assert result.returncode != 0 and 'give the reference list with --reference' in \
        result.stderr
    result = subprocess.run(refit[:-6] + ['train.txt', '--reference', 'test.txt'],
                            capture_output=True, text=True, env=env)
    assert result.returncode != 0 and '16 images of the unlabeled list are also in the ' \
        'labeled list' in result.stderr
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'), config, checkpoint, '--work-dir',
         str(tmp_path / 'test'), '--cfg-options', 'test_evaluator.target_prior=[1,1]'],
        capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert 'test.py: error: ClassificationAccuracy: target_prior has 2 classes, the ' \
           'classifier 8' in result.stderr
    result = subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), config,
                             str(tmp_path / 'none.pth')], capture_output=True, text=True, env=env)
    assert result.returncode != 0 and 'checkpoint' in result.stderr and 'does not exist' in \
        result.stderr
