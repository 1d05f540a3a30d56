"""Pretraining a detector's backbone on another task: train an :class:`ImageClassifier` with
mmengine's Runner and keep its backbone's weights, once, cached.

The weights file holds ``{'state_dict': backbone weights, 'meta': {...}}`` with the backbone's
own parameter names (``conv1.weight``, ``layer1.0.conv1.weight``, ...), so that a detector whose
backbone has the same config loads it with
``backbone.init_cfg=dict(type='Pretrained', checkpoint=PATH)``. Beside it, ``PATH.json`` (the
``.pth`` replaced by ``.json``) records the validation accuracy, the time taken, the command,
the file's SHA-256 and what it was made from (the config's content and the data set's
manifest, by SHA-256): :func:`pretrained_record` finds a file made from the same config and data intact,
and :func:`pretrain_backbone` then does nothing.
"""
import copy
import hashlib
import io
import json
import os.path as osp
import time
from typing import Any, Dict, Optional

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmdet_isal.utils.fileio import atomic_write, atomic_write_json

__all__ = ['pretrain_backbone', 'pretrained_record', 'record_path', 'config_fingerprint']

#: the data set's manifest (:func:`~mmdet_isal.datasets.make_shapes_classification`)
MANIFEST = 'shapes_manifest.json'


def record_path(out: str) -> str:
    """The json record beside the weights file ``out``."""
    return osp.splitext(out)[0] + '.json'


def _sha256(path: str) -> Optional[str]:
    try:
        with open(path, 'rb') as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def config_fingerprint(cfg: Config) -> str:
    """SHA-256 of the config's content (every key but ``work_dir``, as sorted JSON): the same
    for configs that say the same thing however their files are written (inherited or not)."""
    data = cfg.to_dict()
    data.pop('work_dir', None)
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _sources(cfg: Config) -> Dict[str, Optional[str]]:
    """What the weights are made from: the config's content (:func:`config_fingerprint`) and
    the training data's manifest, by SHA-256."""
    dataset = cfg.train_dataloader.dataset
    manifest = osp.join(dataset.get('data_root') or '', MANIFEST)
    return dict(config_sha256=config_fingerprint(cfg), data_manifest_sha256=_sha256(manifest))


def pretrained_record(cfg: Config, out: str) -> Optional[Dict[str, Any]]:
    """The record of ``out`` if the weights there are intact (their SHA-256 is the recorded one)
    and were made from ``cfg`` and its data as they are now; else None."""
    path = record_path(out)
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get('sha256') != _sha256(out):
        return None
    sources = _sources(cfg)
    if any(record.get(k) != v for k, v in sources.items()) or None in sources.values():
        return None
    return record


def pretrain_backbone(cfg: Config, out: str, work_dir: Optional[str] = None,
                      command: Optional[str] = None) -> Dict[str, Any]:
    """Train ``cfg``'s classifier and write its backbone's weights to ``out``, unless
    :func:`pretrained_record` finds them there already.

    Args:
        cfg: a config of an :class:`ImageClassifier` (train, val and their data); not modified.
        out: the weights file to write (``.pth``); its record goes to :func:`record_path`.
        work_dir: the Runner's directory (logs, the full checkpoint); default ``out`` without
            its suffix, plus ``_work``.
        command: the command that made it, for the record.

    Returns:
        the record: ``val_accuracy`` (0-1, on the config's val set), ``seconds`` (training and
        validation), ``command``, ``sha256``, ``config_sha256``, ``data_manifest_sha256``,
        ``state_dict_keys``, ``status`` (``'trained'`` or ``'up-to-date'``).

    Raises:
        FileNotFoundError: the data set's manifest is missing (make the data set first).
    """
    record = pretrained_record(cfg, out)
    if record is not None:
        return dict(record, status='up-to-date')
    sources = _sources(cfg)
    if sources['data_manifest_sha256'] is None:
        root = cfg.train_dataloader.dataset.get('data_root')
        raise FileNotFoundError(f'{osp.join(root or "", MANIFEST)} does not exist: make the '
                                f'pretraining set first (tools/make_classification_dataset.py '
                                f'--class-set other_shapes --out {root})')
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir or osp.splitext(out)[0] + '_work'
    start = time.perf_counter()
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val()
    seconds = time.perf_counter() - start
    state = {k: v.detach().cpu().clone() for k, v in runner.model.backbone.state_dict().items()}
    buf = io.BytesIO()
    torch.save(dict(state_dict=state, meta=dict(source='mmdet_isal.classification.pretrain',
                                                classes=list(cfg.train_dataloader.dataset
                                                             .metainfo.classes))), buf)
    atomic_write(out, buf.getvalue())
    record = dict(val_accuracy=float(metrics['classification/accuracy']), seconds=seconds,
                  command=command, sha256=hashlib.sha256(buf.getvalue()).hexdigest(),
                  state_dict_keys=len(state), **sources)
    atomic_write_json(record_path(out), record, indent=1)
    return dict(record, status='trained')
