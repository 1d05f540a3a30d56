"""Manual mode end to end, as a person runs it: tools/al_loop.py on a pool without boxes, the tiny
FCOS trained for real (1 epoch on 64-px images), ISAL selecting, a scripted annotator exporting
the true boxes of each selection (from a file the loop never reads) as a tool would, and two
manual steps: pause, import, continue. test_manual_loop.py runs the same protocol with a fake
trainer."""
import json
import os.path as osp

import pytest

from mmdet_isal.active import PoolLedger
from tests.active.annotator import manual_files, scripted_export, selection, true_boxes
from tests.active.conftest import al_config

TINY_SCORER = dict(hessian_images=4, repeats=1, depth=2, power_iters=2, batch_size=4,
                   score_thr=0.0)


@pytest.mark.slow
def test_two_manual_steps_through_the_command_line(shapes_coco, tmp_path, capsys):
    import tools.al_loop as al_loop
    pool, labeled, truth = manual_files(shapes_coco, tmp_path / 'data')
    cfg = al_config(shapes_coco, tmp_path / 'unused', strategy='isal', scorer=TINY_SCORER,
                    annotator='manual', labeled=labeled, initial=None, steps=3,
                    budget=dict(images=4), gallery=4, prelabel_thr=0.0)
    cfg.merge_from_dict({'train_dataloader.dataset.ann_file': pool, 'train_cfg.max_epochs': 1,
                         'model.test_cfg.score_thr': 0.0})
    cfg_file, work = str(tmp_path / 'manual.py'), str(tmp_path / 'run')
    cfg.dump(cfg_file)
    al_loop.main([cfg_file, '--work-dir', work])  # trains step 0, selects, pauses: returns
    printed = capsys.readouterr().out
    for step in (0, 1):
        to_annotate = osp.join(work, f'step_{step}', 'to_annotate')
        assert f'step_{step} selected 4 images to annotate, in {to_annotate}/' in printed
        picks = selection(to_annotate)
        with open(osp.join(to_annotate, 'prelabels.coco.json')) as f:
            prelabels = json.load(f)
        # the pre-labels are the step's model's detections (threshold 0: every one of them)
        assert {a['image_id'] for a in prelabels['annotations']} <= {p['id'] for p in picks}
        assert sum(p['prelabels'] for p in picks) == len(prelabels['annotations']) > 0
        assert osp.isfile(osp.join(work, f'step_{step}', 'strategy', 'gallery.jpg'))
        export = scripted_export(to_annotate, truth, str(tmp_path / f'export{step}.json'))
        al_loop.main([cfg_file, '--work-dir', work, '--resume', '--annotations', export])
        printed = capsys.readouterr().out
        assert f'merged {export} into round {step + 1}: 4 images' in printed
    assert 'annotate' not in printed.split('merged')[-1]  # the last step ends the run
    ledger = PoolLedger.load(osp.join(work, 'ledger.json'))
    assert ledger.finished(3)
    for step in range(3):  # every step trained and evaluated for real
        rec = ledger.steps[step]
        assert osp.isfile(osp.join(work, rec['checkpoint']))
        assert rec['bbox_mAP'] == rec['metrics'].get('coco/bbox_mAP', 0.0)
    with open(osp.join(work, 'step_2', 'labeled.json')) as f:
        trained = json.load(f)
    names = {c['id']: c['name'] for c in trained['categories']}
    files = {im['id']: im['file_name'] for im in trained['images']}
    got = {n: [] for n in files.values()}
    for ann in trained['annotations']:
        got[files[ann['image_id']]].append((ann['bbox'], names[ann['category_id']]))
    assert len(got) == 8 + 4 + 4
    assert {n: sorted(b) for n, b in got.items()} == true_boxes(truth, set(got))
    with open(osp.join(work, 'summary.json')) as f:
        rows = json.load(f)
    assert [r['num_boxes'] for r in rows][-1] == sum(len(b) for b in got.values())
