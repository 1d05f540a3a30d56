"""The pool ledger: labels, rankings, state_dict round trips, atomic saves."""
import json
import os

import pytest

from mmdet_isal.active import PoolLedger
from mmdet_isal.utils.fileio import atomic_write_json


def make_ledger(ids=(3, 1, 4, 15, 9, 26), seed=7):
    return PoolLedger(list(ids), {i: i % 4 for i in ids}, strategy='random', seed=seed,
                      meta=dict(pool=dict(kind='coco', ann_file='/x.json')))


def test_labels_and_subsets_by_step():
    ledger = make_ledger()
    ledger.label([1, 9], 0)
    ledger.record_ranking(0, [26, 3, 15, 4], {26: -2.0, 3: -1.0, 15: 0.5, 4: 3.0},
                          {26: dict(num_pseudo_boxes=2)})
    ledger.label([26, 3], 1)
    assert ledger.labeled_ids(0) == [1, 9]
    assert ledger.labeled_ids(1) == [3, 1, 9, 26]  # pool order
    assert ledger.unlabeled_ids(0) == [3, 4, 15, 26]
    assert ledger.unlabeled_ids(1) == [4, 15]
    assert ledger.selected_at(1) == [3, 26]
    assert ledger.ranking(0) == [26, 3, 15, 4]
    assert ledger.num_boxes(ledger.labeled_ids(1)) == 3 + 1 + 1 + 2
    with pytest.raises(ValueError, match='already labeled at step 0'):
        ledger.label([9], 2)
    with pytest.raises(KeyError, match='not in the pool'):
        ledger.label([99], 2)


def test_ranking_must_cover_the_unlabeled_images():
    ledger = make_ledger()
    ledger.label([1, 9], 0)
    with pytest.raises(ValueError, match='missing'):
        ledger.record_ranking(0, [26, 3], {26: 0.0, 3: 0.0})
    with pytest.raises(ValueError, match='not unlabeled'):
        ledger.record_ranking(0, [26, 3, 15, 4, 1], dict.fromkeys([26, 3, 15, 4, 1], 0.0))
    with pytest.raises(ValueError, match='non-finite'):
        ledger.record_ranking(0, [26, 3, 15, 4], {26: float('nan'), 3: 0, 15: 0, 4: 0})
    with pytest.raises(ValueError, match='non-finite'):
        ledger.record_ranking(0, [26, 3, 15, 4], {26: 1.0, 3: 0, 15: 0})
    ledger.record_ranking(0, [26, 3, 15, 4], {26: -1.0, 3: 0, 15: 2, 4: None})
    assert ledger.images[4]['scores'] == {0: None} and ledger.ranking(0)[-1] == 4


def test_state_dict_round_trip_keeps_id_types(tmp_path):
    for ids in ([3, 1, 4, 15, 9, 26], ['b', 'a', 'c', 'd', 'e', 'f']):
        ledger = PoolLedger(ids, dict.fromkeys(ids, 2), strategy=dict(type='isal'), seed=1)
        ledger.label(ids[:2], 0)
        ledger.record_ranking(0, ids[2:][::-1], {i: float(k) for k, i in enumerate(ids)})
        ledger.finish_stage(0, 'train', 1.5, checkpoint='step_0/epoch_1.pth')
        ledger.save(str(tmp_path / 'ledger.json'))
        back = PoolLedger.load(str(tmp_path / 'ledger.json'))
        assert back.state_dict() == ledger.state_dict()
        assert list(back.images) == ids
        assert back.ranking(0) == ids[2:][::-1]
        assert back.stage_done(0, 'train') and not back.stage_done(0, 'evaluate')
        assert back.steps[0]['checkpoint'] == 'step_0/epoch_1.pth'


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = str(tmp_path / 'x.json')
    atomic_write_json(path, dict(a=1))
    with pytest.raises(ValueError):
        atomic_write_json(path, dict(a=float('nan')))  # refused before anything is written
    with pytest.raises(TypeError):
        atomic_write_json(path, dict(a=object()))
    assert json.load(open(path)) == dict(a=1)
    assert os.listdir(tmp_path) == ['x.json']  # no temp files left behind


def test_atomic_write_interrupted_before_rename(tmp_path, monkeypatch):
    path = str(tmp_path / 'x.json')
    atomic_write_json(path, dict(a=1))

    def killed(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(path, dict(a=2))
    assert json.load(open(path)) == dict(a=1)
    assert os.listdir(tmp_path) == ['x.json']


def _steps(ledger, *records):
    """Give ``ledger`` step records: each a dict of ``finished``/``stopped``/``stages``."""
    for step, rec in enumerate(records):
        ledger.step_record(step).update(rec)
    return ledger


DONE = dict(finished=True, stages=dict.fromkeys(('train', 'evaluate', 'score', 'select'), {}))
STOPPED = dict(stopped='bbox_mAP 0.5 >= target_ap 0.4', stages=dict.fromkeys(
    ('train', 'evaluate'), {}))


@pytest.mark.parametrize('records, steps, finished, next_stage', [
    ((), 3, False, 'step_0 train'),
    ((DONE, dict(stages=dict(train={}))), 3, False, 'step_1 evaluate'),
    ((DONE, DONE, dict(stages=dict.fromkeys(('train', 'evaluate'), {}))), 3, False,
     'step_2 finish'),  # the last step neither scores nor selects
    ((DONE, DONE, dict(DONE, stages=dict.fromkeys(('train', 'evaluate'), {}))), 3, True, None),
    ((DONE, dict(STOPPED, finished=True)), 5, True, None),  # stopped at its target
    # stopped, but killed before the step was marked finished: the loop finishes it first
    ((DONE, STOPPED), 5, False, 'step_1 finish'),
    ((DONE, DONE), 2, True, None),
    ((DONE, DONE), 3, False, 'step_2 train'),  # resumed with more steps
])
def test_the_finished_run_rule(records, steps, finished, next_stage):
    ledger = _steps(make_ledger(), *[dict(r) for r in records])
    assert ledger.finished(steps) is finished
    assert ledger.next_stage(steps) == next_stage
    assert ledger.next_step(steps) == (None if finished else int(next_stage.split()[0][5:]))


def test_what_a_stage_records_is_plain_json_and_never_nan():
    import numpy as np
    import torch
    ledger = make_ledger()
    ledger.finish_stage(0, 'score', 1.0, strategy_info=dict(trace=(np.float64(1.5), 2),
                                                            t=torch.tensor([1.0, 2.0])))
    assert ledger.steps[0]['strategy_info'] == dict(trace=[1.5, 2], t=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"^step_0 evaluate: metrics\['ap'\] is nan"):
        ledger.finish_stage(0, 'evaluate', 1.0, metrics=dict(ap=float('nan')))
    assert not ledger.stage_done(0, 'evaluate')  # nothing of it was recorded
    with pytest.raises(TypeError, match=r"step_0 evaluate: metrics\['f'\] is a object"):
        ledger.finish_stage(0, 'evaluate', 1.0, metrics=dict(f=object()))
    ledger.label([1, 9], 0)
    with pytest.raises(ValueError, match=r"step_0 score: details\[26\]\['x'\] is inf"):
        ledger.record_ranking(0, [26, 3, 15, 4], dict.fromkeys([26, 3, 15, 4], 0.0),
                              {26: dict(x=float('inf'))})
    assert ledger.ranking(0) == []


def test_a_ledger_written_by_the_previous_code_loads():
    """The format is unchanged (version 1): a ledger.json of the code before the trainer seam
    (a stopped 2-step run) loads, and the finished-run rule reads it."""
    state = dict(
        version=1, strategy='random', seed=0,
        meta=dict(pool=dict(kind='coco', ann_file='/x.json'), active_learning=dict(steps=3)),
        images=[dict(id=1, num_boxes=2, labeled_step=0, scores={}, ranks={}, details={}),
                dict(id=2, num_boxes=1, labeled_step=1, scores={'0': 0.0}, ranks={'0': 0},
                     details={'0': {'num_pseudo_boxes': 3}})],
        steps=[dict(step=0, stages=dict(train=dict(seconds=1.0)), metrics={}, checkpoint='c',
                    finished=True, bbox_mAP=0.1, bbox_mAP_50=0.2),
               dict(step=1, stages={}, metrics={}, checkpoint=None, finished=True,
                    stopped='bbox_mAP 0.3 >= target_ap 0.25')])
    ledger = PoolLedger([], {}, None, 0)
    ledger.load_state_dict(json.loads(json.dumps(state)))
    assert ledger.finished(3) and ledger.ranking(0) == [2]
    assert ledger.images[2]['details'] == {0: {'num_pseudo_boxes': 3}}
    assert ledger.state_dict() == state
