"""The three defects of a messy pool (a file truncated after its header, two entries on one file
name, a JSON size that is not the file's) are refused before any training, naming the image:
by the loop, by the checks of the hook and tools/score.py, and by tools/al_loop.py in one line;
an image that fails to load during training is named by id and path, not a traceback."""
import json
import os
import os.path as osp
import shutil

import pytest

import mmdet_isal.active.task as task_module  # the default trainer of a detection run
from mmdet_isal.active import ActiveLearningLoop
from mmdet_isal.datasets import AnnotationError, ImageLoadError
from mmdet_isal.detection import check_isal_inputs
from tests.active.conftest import al_config
from tests.active.fake_trainer import FakeTrainer


@pytest.fixture
def messy(pool_coco, tmp_path):
    """``messy(defect)``: a copy of the test pool with one defect; returns (data root, the
    image id and file name at fault)."""
    def make(defect):
        root = tmp_path / 'data'
        shutil.copytree(pool_coco, root)
        ann = root / 'annotations' / 'instances_train.json'
        coco = json.loads(ann.read_text())
        img = coco['images'][5]
        if defect == 'truncated':
            path = root / 'images' / img['file_name']
            path.write_bytes(path.read_bytes()[:150])
        elif defect == 'same_name':
            coco['images'][6]['file_name'] = img['file_name']
        elif defect == 'size':
            img['width'], img['height'] = 1024, 768
        ann.write_text(json.dumps(coco))
        return root, img['id'], img['file_name']
    return make


EXPECTED = {
    'truncated': r'1 image files that are truncated or corrupt .* e\.g\. .*/images/{name} '
                 r'\(image id {id}\)',
    'same_name': r"1 images sharing one file_name \(one image would be labeled twice\), e\.g\. "
                 r"file_name '{name}': image ids {id}, ",
    'size': r'1 images whose width/height in the annotation file disagree with the file .* '
            r'e\.g\. .*/images/{name} \(image id {id}\): the annotation file says 1024x768, the '
            r'file is 128x128',
}


@pytest.mark.parametrize('defect', sorted(EXPECTED))
def test_the_loop_refuses_a_messy_pool_before_any_training(defect, messy, fake_strategy,
                                                           tmp_path):
    root, image_id, name = messy(defect)
    cfg = al_config(root, tmp_path / 'run', strategy='fake_by_id')
    trainer = FakeTrainer()
    with pytest.raises(AnnotationError, match=EXPECTED[defect].format(name=name, id=image_id)):
        ActiveLearningLoop(cfg, trainer=trainer)
    assert trainer.calls == [] and not osp.exists(tmp_path / 'run')


@pytest.mark.parametrize('defect', sorted(EXPECTED))
def test_the_hook_and_score_py_refuse_a_messy_pool(defect, messy, tmp_path):
    root, image_id, name = messy(defect)
    cfg = al_config(root, tmp_path / 'run')
    # ISALHook.before_train and tools/score.py check their inputs with this
    with pytest.raises(AnnotationError, match=EXPECTED[defect].format(name=name, id=image_id)):
        check_isal_inputs(cfg, 'annotations/instances_train.json', owner='ISALHook')


def test_al_loop_names_the_truncated_image_in_one_line(messy, fake_strategy, tmp_path,
                                                       monkeypatch):
    import tools.al_loop as al_loop
    root, image_id, name = messy('truncated')
    cfg_file = str(tmp_path / 'cfg.py')
    al_config(root, tmp_path / 'run', strategy='fake_by_id').dump(cfg_file)
    monkeypatch.setattr(task_module, 'MMEngineTrainer', lambda cfg, seed, launcher, **_: FakeTrainer())
    with pytest.raises(SystemExit) as err:
        al_loop.main([cfg_file])
    message = str(err.value.code)
    assert message.startswith('al_loop.py: error: ') and 'Traceback' not in message
    assert f'/images/{name} (image id {image_id}): ' in message


class FailsToLoad(FakeTrainer):
    """Training step 1 meets an image whose data does not decode (mmcv's assertion)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def train(self, job):
        if job.step == 1:
            raise AssertionError(f'failed to load image: {self.path}')
        return super().train(job)


@pytest.mark.slow
def test_an_image_failing_during_training_is_named_with_the_command_that_continues(
        pool_coco, fake_strategy, tmp_path, monkeypatch):
    import tools.al_loop as al_loop
    cfg = al_config(pool_coco, tmp_path / 'run', strategy='fake_by_id')
    with open(osp.join(pool_coco, 'annotations', 'instances_train.json')) as f:
        img = json.load(f)['images'][3]
    path = osp.join(pool_coco, 'images', img['file_name'])
    with pytest.raises(ImageLoadError) as err:
        ActiveLearningLoop(cfg, trainer=FailsToLoad(path)).run()
    assert str(err.value).startswith(f'step_1 train: image id {img["id"]} ({path}) could not '
                                     f'be loaded')
    cfg_file = str(tmp_path / 'cfg.py')
    cfg.dump(cfg_file)
    monkeypatch.setattr(task_module, 'MMEngineTrainer',
                        lambda cfg, seed, launcher, **_: FailsToLoad(path))
    with pytest.raises(SystemExit) as err:
        al_loop.main([cfg_file, '--work-dir', str(tmp_path / 'cli'), '--resume'])
    message = str(err.value.code)
    assert message.startswith(f'al_loop.py: error: step_1 train: image id {img["id"]} ({path})')
    assert message.endswith(f'After the fix, continue with:\n  python tools/al_loop.py '
                            f'{cfg_file} --work-dir {tmp_path / "cli"} --resume')
    assert os.path.isfile(tmp_path / 'cli' / 'ledger.json')  # step 0 is kept
