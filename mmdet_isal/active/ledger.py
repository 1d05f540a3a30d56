"""The state of an active-learning run: which pool image was labeled when, and why.

The ledger is the single source of truth of a run. Annotation subsets, reports and resume are
all derived from it; it is saved atomically after every stage, so a run killed at any point
loses at most the stage in progress.
"""
import json
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from mmdet_isal.utils.fileio import atomic_write_json

ImageId = Any

STAGES = ('train', 'evaluate', 'score', 'select')
VERSION = 1


class PoolLedger:
    """Per pool image: the step it was labeled at, and its score and rank at each scored step;
    per step: the stages finished, their durations and results.

    Step ``k`` trains on every image with ``labeled_step <= k``. Images labeled at step 0 are
    the initial random set; those chosen by the selection of step ``k`` get ``labeled_step``
    ``k + 1``. Scores and ranks of step ``k`` rank the images that were unlabeled during step
    ``k`` (rank 0 = most preferred).

    Args:
        image_ids: pool image ids, in pool order.
        num_boxes: ground-truth boxes per image id.
        strategy: the strategy (name or config dict), recorded for the reports.
        seed: the run's seed.
        meta: any other JSON-able facts about the run (pool file, ``active_learning`` block).
    """

    def __init__(self, image_ids: Sequence[ImageId], num_boxes: Mapping[ImageId, int],
                 strategy: Any, seed: int, meta: Optional[Dict[str, Any]] = None):
        self.strategy = strategy
        self.seed = seed
        self.meta = dict(meta or {})
        self.images: Dict[ImageId, Dict[str, Any]] = {
            i: dict(num_boxes=int(num_boxes[i]), labeled_step=None, scores={}, ranks={},
                    details={})
            for i in image_ids}
        self.steps: Dict[int, Dict[str, Any]] = {}

    # --- labels -------------------------------------------------------------------------------
    def label(self, ids: Iterable[ImageId], step: int) -> None:
        """Mark ``ids`` as labeled from ``step`` on; labeling an image twice is an error."""
        ids = list(ids)
        for i in ids:
            if i not in self.images:
                raise KeyError(f'image id {i!r} is not in the pool')
            if self.images[i]['labeled_step'] is not None:
                raise ValueError(f'image id {i!r} was already labeled at step '
                                 f'{self.images[i]["labeled_step"]}')
        for i in ids:
            self.images[i]['labeled_step'] = step

    def labeled_ids(self, step: int) -> List[ImageId]:
        """Ids labeled at or before ``step`` (the training set of ``step``), in pool order."""
        return [i for i, r in self.images.items()
                if r['labeled_step'] is not None and r['labeled_step'] <= step]

    def unlabeled_ids(self, step: int) -> List[ImageId]:
        """Ids not yet labeled during ``step``, in pool order."""
        return [i for i, r in self.images.items()
                if r['labeled_step'] is None or r['labeled_step'] > step]

    def selected_at(self, step: int) -> List[ImageId]:
        """Ids that became labeled at ``step`` (the selection made at ``step - 1``)."""
        return [i for i, r in self.images.items() if r['labeled_step'] == step]

    def num_boxes(self, ids: Iterable[ImageId]) -> int:
        return sum(self.images[i]['num_boxes'] for i in ids)

    # --- scores -------------------------------------------------------------------------------
    def record_ranking(self, step: int, order: Sequence[ImageId], scores: Mapping[ImageId, float],
                       details: Optional[Mapping[ImageId, Dict[str, Any]]] = None) -> None:
        """Record a strategy's ranking of the images unlabeled at ``step``.

        ``order`` must hold each unlabeled image exactly once and nothing else; every score
        must be a finite number or ``None`` (the strategy could not score the image).
        """
        expected = set(self.unlabeled_ids(step))
        given = list(order)
        missing, extra = expected - set(given), set(given) - expected
        if missing or extra or len(given) != len(expected):
            raise ValueError(
                f'the ranking of step {step} must list each of the {len(expected)} unlabeled '
                f'images once; missing {sorted(missing, key=str)[:5]}, not unlabeled '
                f'{sorted(extra, key=str)[:5]}, {len(given)} entries')
        bad = [i for i in given if i not in scores or not (scores[i] is None or (
            isinstance(scores[i], (int, float)) and math.isfinite(scores[i])))]
        if bad:
            raise ValueError(f'step {step}: images {bad[:5]} have no score or a non-finite one '
                             f'(e.g. {scores.get(bad[0])!r}); a strategy gives None for an '
                             f'image it cannot score')
        details = details or {}
        for rank, i in enumerate(given):
            rec = self.images[i]
            rec['scores'][step] = None if scores[i] is None else float(scores[i])
            rec['ranks'][step] = rank
            if i in details:
                rec['details'][step] = dict(details[i])

    def ranking(self, step: int) -> List[ImageId]:
        """The order recorded at ``step``, most preferred first."""
        ranked = [(r['ranks'][step], i) for i, r in self.images.items() if step in r['ranks']]
        return [i for _, i in sorted(ranked)]

    # --- progress -----------------------------------------------------------------------------
    def step_record(self, step: int) -> Dict[str, Any]:
        """The record of ``step`` (created empty): stages, metrics, checkpoint, finished."""
        return self.steps.setdefault(step, dict(stages={}, metrics=None, checkpoint=None,
                                                finished=False))

    def stage_done(self, step: int, stage: str) -> bool:
        return stage in self.steps.get(step, {}).get('stages', {})

    def finish_stage(self, step: int, stage: str, seconds: float, **results) -> None:
        """Mark ``stage`` of ``step`` finished after ``seconds``; ``results`` go in the record."""
        if stage not in STAGES:
            raise ValueError(f'unknown stage {stage!r}; stages are {STAGES}')
        rec = self.step_record(step)
        rec['stages'][stage] = dict(seconds=float(seconds))
        rec.update(results)

    def next_stage(self, steps: int) -> Optional[str]:
        """Where a run of ``steps`` steps continues: e.g. ``'step_2 train'``; ``None`` when
        every step is finished (or a step stopped the run at its target)."""
        for step in range(steps):
            rec = self.steps.get(step, {})
            if rec.get('stopped'):
                return None
            if not rec.get('finished'):
                todo = [s for s in STAGES if s not in rec.get('stages', {})]
                return f'step_{step} {todo[0] if todo else "finish"}'
        return None

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Plain JSON-able state. Images are a list (ids keep their type: int or str)."""
        def keyed(d):
            return {str(k): v for k, v in d.items()}
        return dict(
            version=VERSION, strategy=self.strategy, seed=self.seed, meta=self.meta,
            images=[dict(id=i, num_boxes=r['num_boxes'], labeled_step=r['labeled_step'],
                         scores=keyed(r['scores']), ranks=keyed(r['ranks']),
                         details=keyed(r['details']))
                    for i, r in self.images.items()],
            steps=[dict(step=s, **rec) for s, rec in sorted(self.steps.items())])

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` output (e.g. read back from ``ledger.json``)."""
        if state.get('version') != VERSION:
            raise ValueError(f'ledger version {state.get("version")!r} is not supported '
                             f'(expected {VERSION})')

        def unkeyed(d):
            return {int(k): v for k, v in d.items()}
        self.strategy, self.seed, self.meta = state['strategy'], state['seed'], state['meta']
        self.images = {
            r['id']: dict(num_boxes=r['num_boxes'], labeled_step=r['labeled_step'],
                          scores=unkeyed(r['scores']), ranks=unkeyed(r['ranks']),
                          details=unkeyed(r['details']))
            for r in state['images']}
        self.steps = {}
        for rec in state['steps']:
            rec = dict(rec)
            self.steps[rec.pop('step')] = rec

    def save(self, path: str) -> None:
        """Write the ledger to ``path`` atomically."""
        atomic_write_json(path, self.state_dict())

    @classmethod
    def load(cls, path: str) -> 'PoolLedger':
        """Read a ledger written by :meth:`save`."""
        with open(path) as f:
            state = json.load(f)
        ledger = cls([], {}, None, 0)
        ledger.load_state_dict(state)
        return ledger
