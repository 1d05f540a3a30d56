"""Manual mode with a fake trainer (no detector): the loop on a pool without boxes, paused after
each selection, labeled by a scripted annotator whose ground truth the loop never reads, and the
refusals of a bad export (each naming what is wrong and leaving the ledger unchanged)."""
import hashlib
import json
import os.path as osp

import pytest

import mmdet_isal.active.task as task_module  # the default trainer of a detection run
from mmdet_isal.active import ActiveLearningLoop, PoolLedger, apply_budget
from mmdet_isal.active.config import Budget
from mmdet_isal.strategies.random import random_order
from tests.active.annotator import manual_files, scripted_export, selection, true_boxes
from tests.active.conftest import al_config
from tests.active.fake_trainer import FakeTrainer, fake_prediction

TO_ANNOTATE = ('selection.json', 'images.txt', 'prelabels.coco.json', 'label_studio_tasks.json',
               'label_studio_config.xml', 'gallery.jpg', 'gallery.json')


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def manual(pool_coco, fake_strategy, tmp_path):
    """``manual(name='run', trainer=None, **active_learning)``: a loop of a manual run on an
    images-only copy of the test pool (32 images) with 8 labeled images, the fake strategy,
    +6 images per step, 3 steps; and ``manual.truth``, the ground truth it never reads."""
    pool, labeled, truth = manual_files(pool_coco, tmp_path / 'data')

    def make(name='run', trainer=None, **active_learning):
        options = dict(strategy='fake_by_id', steps=3, annotator='manual', labeled=labeled,
                       initial=None, gallery=4)
        options.update(active_learning)
        cfg = al_config(pool_coco, tmp_path / name, **options)
        cfg.merge_from_dict({'train_dataloader.dataset.ann_file': pool})
        return ActiveLearningLoop(cfg, trainer=trainer or FakeTrainer())
    make.truth, make.pool, make.labeled = truth, pool, labeled
    return make


def paused_run(manual, name='run', **active_learning):
    """A manual run after its first ``run()``: step 0 trained and selected, waiting."""
    loop = manual(name, **active_learning)
    loop.run()
    assert loop.pending is not None
    return loop


@pytest.mark.slow
def test_two_manual_steps_with_a_scripted_annotator(manual, tmp_path):
    loop = paused_run(manual)
    work = loop.work_dir
    # step 0 trained on the 8 labeled images, then the loop stopped for the labels of its picks
    assert loop.trainer.calls == [('train', 0), ('evaluate', 0), ('model_of', 0)]
    assert (loop.pending.round, loop.pending.step, loop.pending.num_images) == (1, 0, 6)
    to_annotate = osp.join(work, 'step_0', 'to_annotate')
    assert loop.pending.directory == to_annotate
    assert all(osp.isfile(osp.join(to_annotate, f)) for f in TO_ANNOTATE)
    picks = selection(to_annotate)
    ledger = PoolLedger.load(loop.ledger_path)
    assert [p['id'] for p in picks] == sorted(ledger.selected_at(1),
                                              key=lambda i: ledger.images[i]['ranks'][0])
    assert [p['rank'] for p in picks] == [ledger.images[p['id']]['ranks'][0] + 1 for p in picks]
    # the budget of 6 images; the predicted boxes are the strategy's pseudo boxes (id % 3)
    assert ledger.steps[0]['num_selected_boxes'] == sum(p['id'] % 3 for p in picks)
    message = loop.pending.message('python tools/al_loop.py CFG --work-dir W --resume')
    assert to_annotate in message and 'prelabels.coco.json' in message
    assert 'python tools/al_loop.py CFG --work-dir W --resume --annotations EXPORT' in message

    # round 1, as a COCO export (ids renumbered, paths rewritten, other category ids)
    export1 = scripted_export(to_annotate, manual.truth, str(tmp_path / 'export1.json'))
    loop = manual()
    loop.prepare(resume=True)
    assert 'merged' in loop.import_annotations(export1)
    loop.run()
    assert loop.trainer.calls == [('train', 1), ('evaluate', 1), ('model_of', 1)]
    assert loop.pending.round == 2
    export2 = scripted_export(loop.pending.directory, manual.truth, str(tmp_path / 'export2'),
                              fmt='voc')
    # round 2, as a folder of VOC files; the last step trains and the run ends
    loop = manual()
    loop.prepare(resume=True)
    loop.import_annotations(export2)
    ledger = loop.run()
    assert loop.pending is None and ledger.finished(3)
    assert loop.trainer.calls == [('train', 2), ('evaluate', 2)]

    # what step 2 trained on is the truth of every labeled image, in the pool's ids
    with open(osp.join(work, 'step_2', 'labeled.json')) as f:
        trained = json.load(f)
    names = {c['id']: c['name'] for c in trained['categories']}
    files = {im['id']: im['file_name'] for im in trained['images']}
    assert len(files) == 8 + 6 + 6
    got = {n: [] for n in files.values()}
    for ann in trained['annotations']:
        got[files[ann['image_id']]].append((ann['bbox'], names[ann['category_id']]))
    assert {n: sorted(b) for n, b in got.items()} == true_boxes(manual.truth, set(got))
    # the ledger: the files and their hashes; the annotated counts everywhere
    for round_, export in ((1, export1), (2, export2)):
        rec = ledger.annotations(round_)
        assert rec['file'] == osp.abspath(export) and rec['images'] == 6
        assert rec['format'] == ('coco' if round_ == 1 else 'voc')
        assert rec['boxes'] == sum(len(b) for n, b in got.items()
                                   if ledger.images[_id(files, n)]['labeled_step'] == round_)
    assert ledger.annotations(1)['sha256'] == sha256(export1)
    assert ledger.steps[0]['num_selected_boxes'] == ledger.annotations(1)['boxes']
    assert ledger.steps[0]['num_selected_boxes_predicted'] == sum(p['id'] % 3 for p in picks)
    truth_counts = {n: len(b) for n, b in got.items()}
    assert ledger.steps[0]['selection']['picked_true_boxes'] == pytest.approx(
        sum(truth_counts[p['file_name']] for p in picks) / 6, abs=0, rel=1e-15)
    assert ledger.steps[0]['selection']['pool_true_boxes'] is None  # unknown in manual mode
    with open(osp.join(work, 'summary.json')) as f:
        rows = json.load(f)
    assert [r['num_images'] for r in rows] == [8, 14, 20]
    assert rows[-1]['num_boxes'] == sum(truth_counts.values())


def _id(files, name):
    return next(i for i, n in files.items() if n == name)


def test_a_re_import_of_the_same_file_changes_nothing(manual, tmp_path):
    loop = paused_run(manual)
    export = scripted_export(loop.pending.directory, manual.truth, str(tmp_path / 'e.json'))
    loop = manual()
    loop.prepare(resume=True)
    loop.import_annotations(export)
    before = sha256(loop.ledger_path)
    assert 'already' in loop.import_annotations(export)
    assert sha256(loop.ledger_path) == before


def refused(manual, export, skipped=None):
    """Import ``export`` into the paused run; returns the refusal's message, after checking
    that the ledger file is unchanged."""
    loop = manual()
    loop.prepare(resume=True)
    before = sha256(loop.ledger_path)
    with pytest.raises(ValueError) as err:
        loop.import_annotations(export, skipped)
    assert sha256(loop.ledger_path) == before
    assert PoolLedger.load(loop.ledger_path).annotations(1) is None
    return str(err.value)


def test_a_partial_export_is_refused_naming_the_missing_images(manual, tmp_path):
    loop = paused_run(manual)
    picks = selection(loop.pending.directory)
    dropped = [p['file_name'] for p in picks[:2]]
    export = scripted_export(loop.pending.directory, manual.truth, str(tmp_path / 'e.json'),
                             drop=dropped)
    message = refused(manual, export)
    assert "2 of the 6 images selected in step_0's selection are missing from the export" in \
        message
    assert all(f'image id {p["id"]} ({p["file_name"]})' in message for p in picks[:2])
    assert 'Nothing was merged: the ledger is unchanged' in message


def test_an_image_that_was_not_selected_is_refused(manual, tmp_path):
    loop = paused_run(manual)
    ledger = PoolLedger.load(loop.ledger_path)
    with open(manual.truth) as f:
        images = {im['id']: im for im in json.load(f)['images']}
    other = next(i for i in ledger.unlabeled_ids(1))  # in the pool, not selected
    export = scripted_export(loop.pending.directory, manual.truth, str(tmp_path / 'e.json'),
                             extra=images[other])
    message = refused(manual, export)
    assert "1 images that were not selected in step_0's selection" in message
    assert f'is image id {other} ({images[other]["file_name"]}), in the pool, not selected' \
        in message
    labeled = ledger.labeled_ids(0)[0]  # an image of the labeled set
    export = scripted_export(loop.pending.directory, manual.truth, str(tmp_path / 'f.json'),
                             extra=images[labeled])
    assert f'is image id {labeled} ({images[labeled]["file_name"]}), labeled at step 0' in \
        refused(manual, export)


def test_an_unknown_class_is_refused_with_a_did_you_mean(manual, tmp_path):
    loop = paused_run(manual)
    export = scripted_export(loop.pending.directory, manual.truth, str(tmp_path / 'e.json'),
                             rename={'circle': 'circel', 'square': 'squares'})
    message = refused(manual, export)
    assert 'classes that are not classes of the pool' in message
    assert "'circel' (did you mean 'circle'?)" in message
    assert "'squares' (did you mean 'square'?)" in message


def test_a_box_outside_its_image_is_refused(manual, tmp_path):
    loop = paused_run(manual)
    export = scripted_export(loop.pending.directory, manual.truth, str(tmp_path / 'e.json'))
    with open(export) as f:
        coco = json.load(f)
    coco['annotations'][0]['bbox'] = [100.0, 100.0, 40.0, 10.0]  # to x = 140 in a 128 image
    with open(export, 'w') as f:
        json.dump(coco, f)
    name = next(im['file_name'] for im in coco['images']
                if im['id'] == coco['annotations'][0]['image_id'])
    message = refused(manual, export)
    assert f'boxes outside their image (by more than 1 px), e.g. {name} annotation id 1: ' \
           f'[100, 100, 40, 10] in a 128x128 image' in message


def test_a_different_file_for_a_merged_selection_is_refused(manual, tmp_path):
    loop = paused_run(manual)
    directory = loop.pending.directory
    first = scripted_export(directory, manual.truth, str(tmp_path / 'first.json'))
    with open(first) as f:
        coco = json.load(f)
    coco['annotations'][0]['bbox'][0] += 1  # a box redrawn: another file
    second = str(tmp_path / 'second.json')
    with open(second, 'w') as f:
        json.dump(coco, f)
    loop = manual()
    loop.prepare(resume=True)
    loop.import_annotations(first)
    before = sha256(loop.ledger_path)
    with pytest.raises(ValueError) as err:
        loop.import_annotations(second)
    message = str(err.value)
    assert 'no selection awaits labels' in message
    assert f'merged from {osp.abspath(first)}' in message and 'is a different file' in message
    assert sha256(loop.ledger_path) == before


def test_skipped_images_leave_the_pool(manual, tmp_path):
    loop = paused_run(manual)
    picks = selection(loop.pending.directory)
    skipped = [p['file_name'] for p in picks[:2]]
    listing = tmp_path / 'skipped.txt'
    listing.write_text(f'# unusable\n{picks[0]["path"]}\n{picks[1]["id"]}\n')
    export = scripted_export(loop.pending.directory, manual.truth, str(tmp_path / 'e.json'),
                             skip=skipped)
    assert 'missing from the export' in refused(manual, export)  # not listed: refused
    loop = manual()
    loop.prepare(resume=True)
    assert '2 skipped' in loop.import_annotations(export, str(listing))
    ledger = loop.run()
    ids = [p['id'] for p in picks[:2]]
    assert all(ledger.images[i]['labeled_step'] is None and ledger.images[i]['skipped'] == 1
               for i in ids)
    assert not set(ids) & set(ledger.unlabeled_ids(1))  # never picked again
    with open(osp.join(loop.work_dir, 'step_1', 'unlabeled.json')) as f:
        assert not set(ids) & {im['id'] for im in json.load(f)['images']}
    assert ledger.annotations(1)['skipped'] == ids
    assert len(ledger.labeled_ids(1)) == 8 + 4


def test_a_box_budget_counts_predicted_boxes_in_manual_mode(manual, tmp_path):
    # fake_by_id counts pseudo boxes (id % 3): the budget spends those
    loop = paused_run(manual, budget=dict(boxes=5))
    ledger = loop.ledger
    ranked = ledger.ranking(0)
    chosen = apply_budget(ranked, Budget('boxes', 5), {i: i % 3 for i in ranked})
    assert set(ledger.selected_at(1)) == set(chosen)
    assert ledger.steps[0]['num_selected_boxes'] == sum(i % 3 for i in chosen)
    # random counts none: the step's model predicts them (fake_prediction: id % 4 boxes, all
    # above score_thr 0.1)
    loop = paused_run(manual, 'random', strategy='random', budget=dict(boxes=5))
    ledger = loop.ledger
    ranked = ledger.ranking(0)
    chosen = apply_budget(ranked, Budget('boxes', 5), {i: i % 4 for i in ranked})
    assert set(ledger.selected_at(1)) == set(chosen)
    assert any(step == 0 and sorted(ids) == sorted(ranked)
               for step, ids in loop.trainer.predicted)
    assert ledger.steps[0]['num_selected_boxes'] == sum(
        len(fake_prediction(i)['scores']) for i in chosen)


def test_a_random_initial_set_waits_for_its_labels_before_any_training(manual, tmp_path):
    loop = manual(labeled=None, initial=dict(images=5))
    loop.run()
    assert loop.trainer.calls == []  # nothing to train on yet
    assert (loop.pending.round, loop.pending.step) == (0, None)
    directory = osp.join(loop.work_dir, 'initial', 'to_annotate')
    assert loop.pending.directory == directory
    assert loop.pending.message('CMD').startswith(
        f'the initial set: 5 random images to annotate, in {directory}/:')
    picks = selection(directory)
    ids = random_order(loop.pool.image_ids, 0, 0)[:5]
    assert [p['id'] for p in picks] == ids
    with open(osp.join(directory, 'prelabels.coco.json')) as f:
        assert json.load(f)['annotations'] == []  # no model yet: no pre-labels
    export = scripted_export(directory, manual.truth, str(tmp_path / 'e.json'))
    loop = manual(labeled=None, initial=dict(images=5))
    loop.prepare(resume=True)
    loop.import_annotations(export)
    loop.run()
    assert loop.trainer.calls[:2] == [('train', 0), ('evaluate', 0)]
    assert loop.trainer.jobs[0].step == 0
    with open(osp.join(loop.work_dir, 'step_0', 'labeled.json')) as f:
        trained = json.load(f)
    assert [im['id'] for im in trained['images']] == sorted(ids, key=loop.pool.image_ids.index)
    assert loop.pending.round == 1


@pytest.mark.parametrize('options, match', [
    (dict(annotator='simulated', labeled=None, initial=dict(images=8)),
     r"has no annotations, so the loop cannot simulate an annotator: set "
     r"active_learning.annotator='manual'"),
    (dict(labeled=None, initial=dict(boxes=20)),
     r"in manual mode the first set is drawn before any model exists.*initial=dict\(images=N\)"),
    (dict(initial=dict(images=4)), r'give labeled .* or initial .*, not both'),
    (dict(annotator='simulated', initial=None),
     r"active_learning.labeled \(images already labeled, outside the pool\) is for "
     r"annotator='manual'"),
])
def test_manual_mode_settings_are_checked_before_anything_runs(manual, options, match):
    with pytest.raises(ValueError, match=match):
        manual(**options)


def test_manual_mode_refuses_a_pool_with_boxes_and_asks_for_the_classes(pool_coco, fake_strategy,
                                                                        tmp_path, manual):
    cfg = al_config(pool_coco, tmp_path / 'run', strategy='fake_by_id', annotator='manual')
    with pytest.raises(ValueError, match=r'holds \d+ annotations on \d+ images .* in manual mode '
                                         r'the pool lists unlabeled images only'):
        ActiveLearningLoop(cfg, trainer=FakeTrainer())
    cfg = al_config(pool_coco, tmp_path / 'run', strategy='fake_by_id', annotator='manual')
    cfg.merge_from_dict({'train_dataloader.dataset.ann_file': manual.pool})
    cfg.train_dataloader.dataset.pop('metainfo')
    with pytest.raises(ValueError, match=r"needs the classes: set train_dataloader.dataset."
                                         r"metainfo=dict\(classes=\(...\)\) to the pool's "
                                         r"category names \(circle, square"):
        ActiveLearningLoop(cfg, trainer=FakeTrainer())


@pytest.mark.slow
def test_the_command_line_pauses_with_exit_code_0_and_continues(manual, tmp_path, monkeypatch,
                                                                capsys):
    import tools.al_loop as al_loop
    monkeypatch.setattr(task_module, 'MMEngineTrainer', lambda cfg, seed, launcher, **_: FakeTrainer())
    cfg_file = str(tmp_path / 'manual.py')
    manual('cli').cfg.dump(cfg_file)
    work = str(tmp_path / 'cli_run')
    al_loop.main([cfg_file, '--work-dir', work])  # returns: exit code 0
    out = capsys.readouterr().out
    to_annotate = osp.join(work, 'step_0', 'to_annotate')
    assert f'step_0 selected 6 images to annotate, in {to_annotate}/' in out
    assert f'python tools/al_loop.py {cfg_file} --work-dir {work} --resume --annotations ' \
           f'EXPORT [--skipped FILE]' in out
    with pytest.raises(SystemExit, match='--annotations merges labels into a run that awaits '
                                         'them: add --resume'):
        al_loop.main([cfg_file, '--work-dir', work, '--annotations', 'x.json'])
    export = scripted_export(to_annotate, manual.truth, str(tmp_path / 'e.json'),
                             drop=[selection(to_annotate)[0]['file_name']])
    with pytest.raises(SystemExit, match='missing from the export'):
        al_loop.main([cfg_file, '--work-dir', work, '--resume', '--annotations', export])
    export = scripted_export(to_annotate, manual.truth, str(tmp_path / 'e.json'))
    al_loop.main([cfg_file, '--work-dir', work, '--resume', '--annotations', export])
    out = capsys.readouterr().out
    assert f'merged {export} into round 1: 6 images' in out
    assert 'step_1 selected 6 images to annotate' in out
