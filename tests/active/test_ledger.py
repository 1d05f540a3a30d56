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
