"""The state of an active-learning run: which pool image was labeled when, and why.

The ledger is the single source of truth of a run. Annotation subsets, reports and resume are
all derived from it; it is saved atomically after every stage, so a run killed at any point
loses at most the stage in progress. It holds plain JSON data only: what a stage or a strategy
records is converted on the way in (:func:`jsonable`), and a NaN or an infinity is refused
there, naming where it came from, never stored or repaired.
"""
import json
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mmdet_isal.utils.fileio import atomic_write_json

ImageId = Any

STAGES = ('train', 'evaluate', 'score', 'select')
#: The stages of the last step, and of a step that stopped the run at its target: nothing is
#: selected after them.
FINAL_STAGES = ('train', 'evaluate')
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
        """Ids not yet labeled during ``step``, in pool order (images an annotator skipped
        before ``step`` are neither: :meth:`skip`)."""
        return [i for i, r in self.images.items()
                if (r['labeled_step'] is None or r['labeled_step'] > step)
                and (r.get('skipped') is None or r['skipped'] > step)]

    def selected_at(self, step: int) -> List[ImageId]:
        """Ids that became labeled at ``step`` (the selection made at ``step - 1``)."""
        return [i for i, r in self.images.items() if r['labeled_step'] == step]

    def num_boxes(self, ids: Iterable[ImageId]) -> int:
        return sum(self.images[i]['num_boxes'] for i in ids)

    # --- manual annotation --------------------------------------------------------------------
    def skip(self, ids: Iterable[ImageId], step: int) -> None:
        """The annotator skipped ``ids``, picked for ``step``: they are not labeled, and from
        ``step`` on not in the pool either (never picked again)."""
        for i in ids:
            self.images[i]['labeled_step'] = None
            self.images[i]['skipped'] = step

    def set_num_boxes(self, counts: Mapping[ImageId, int]) -> None:
        """Record the boxes an annotator drew on each image of ``counts`` (manual mode: they
        replace the unknown count, and every report counts them)."""
        for i, n in counts.items():
            self.images[i]['num_boxes'] = int(n)

    def record_annotations(self, step: int, record: Mapping[str, Any]) -> None:
        """Record where the labels of the images labeled at ``step`` came from (manual mode):
        ``record`` holds the imported file, its hash, counts (plain JSON data)."""
        self.step_record(step)['annotations'] = jsonable(dict(record),
                                                         f'step_{step} annotations')

    def annotations(self, step: int) -> Optional[Dict[str, Any]]:
        """The record of :meth:`record_annotations` for ``step``, or ``None``."""
        return self.steps.get(step, {}).get('annotations')

    # --- scores -------------------------------------------------------------------------------
    def record_ranking(self, step: int, order: Sequence[ImageId], scores: Mapping[ImageId, float],
                       details: Optional[Mapping[ImageId, Dict[str, Any]]] = None) -> None:
        """Record a strategy's ranking of the images unlabeled at ``step``.

        ``order`` must hold each unlabeled image exactly once and nothing else; every score
        must be a finite number or ``None`` (the strategy could not score the image).
        ``details`` (per image, e.g. pseudo-box counts) are stored as plain JSON data
        (:func:`jsonable`: a NaN or an infinity in them is an error).
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
        details = jsonable(dict(details or {}), f'step_{step} score: details')
        for rank, i in enumerate(given):
            rec = self.images[i]
            rec['scores'][step] = None if scores[i] is None else float(scores[i])
            rec['ranks'][step] = rank
            key = i if isinstance(i, (str, int)) else str(i)
            if key in details:
                rec['details'][step] = dict(details[key])

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
        """Mark ``stage`` of ``step`` finished after ``seconds``; ``results`` go in the record,
        as plain JSON data (:func:`jsonable`: a NaN or an infinity is an error naming the
        result, e.g. ``step_0 score: strategy_info['trace'][3]``, and nothing is recorded)."""
        if stage not in STAGES:
            raise ValueError(f'unknown stage {stage!r}; stages are {STAGES}')
        results = {k: jsonable(v, f'step_{step} {stage}: {k}') for k, v in results.items()}
        rec = self.step_record(step)
        rec['stages'][stage] = dict(seconds=float(seconds))
        rec.update(results)

    def stop(self, step: int, reason: str) -> None:
        """Record that the run stops after ``step`` (e.g. it reached its target AP): the step
        runs :data:`FINAL_STAGES` only, and no step after it runs."""
        self.step_record(step)['stopped'] = reason

    def finish_step(self, step: int) -> None:
        """Mark ``step`` finished: every stage it runs is done."""
        self.step_record(step)['finished'] = True

    @staticmethod
    def planned_stages(step: int, steps: int, stopped: bool = False) -> Tuple[str, ...]:
        """The stages ``step`` of a run of ``steps`` steps runs: :data:`STAGES`, or
        :data:`FINAL_STAGES` for the last step and for a step that ``stopped`` the run."""
        return FINAL_STAGES if stopped or step == steps - 1 else STAGES

    def next_step(self, steps: int) -> Optional[int]:
        """The first step of a run of ``steps`` steps that is not finished; ``None`` when the
        run is finished (:meth:`finished`)."""
        for step in range(steps):
            rec = self.steps.get(step, {})
            if not rec.get('finished'):
                return step
            if rec.get('stopped'):
                return None
        return None

    def finished(self, steps: int) -> bool:
        """Whether a run of ``steps`` steps is over: every step up to ``steps`` is finished,
        or a finished step stopped the run (its target AP reached). A step that stopped the run
        but is not marked finished (the run was killed between its evaluation and its end) is
        not: the loop finishes it first.

        The one rule the loop (what to run), the experiment runner (which runs to skip) and
        :meth:`next_stage` (what a stopped run would continue with) all use.
        """
        return self.next_step(steps) is None

    def next_stage(self, steps: int) -> Optional[str]:
        """Where a run of ``steps`` steps continues: e.g. ``'step_2 train'``, ``'step_2 finish'``
        (its stages are done, the step is not marked finished); ``None`` when the run is
        :meth:`finished`."""
        step = self.next_step(steps)
        if step is None:
            return None
        rec = self.steps.get(step, {})
        todo = [s for s in self.planned_stages(step, steps, bool(rec.get('stopped')))
                if s not in rec.get('stages', {})]
        return f'step_{step} {todo[0] if todo else "finish"}'

    # --- persistence --------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        """Plain JSON-able state. Images are a list (ids keep their type: int or str)."""
        def keyed(d):
            return {str(k): v for k, v in d.items()}
        return dict(
            version=VERSION, strategy=self.strategy, seed=self.seed, meta=self.meta,
            images=[dict(id=i, num_boxes=r['num_boxes'], labeled_step=r['labeled_step'],
                         scores=keyed(r['scores']), ranks=keyed(r['ranks']),
                         details=keyed(r['details']),
                         **({'skipped': r['skipped']} if r.get('skipped') is not None else {}))
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
                          details=unkeyed(r['details']),
                          **({'skipped': r['skipped']} if r.get('skipped') is not None else {}))
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


def jsonable(obj: Any, where: str = 'value') -> Any:
    """``obj`` as plain JSON data for the ledger: arrays and tensors to lists, tuples to lists,
    keys that are neither strings nor integers to strings.

    Raises:
        ValueError: a NaN or an infinity, named by ``where`` and its place in ``obj`` (e.g.
            ``step_0 score: strategy_info['trace'][0][1] is nan``): nothing written to the
            ledger is silently repaired; a strategy gives ``None`` for what it could not
            compute.
        TypeError: an object JSON has no form for, named the same way.
    """
    if isinstance(obj, dict):
        return {k if isinstance(k, (str, int)) else str(k): jsonable(v, f'{where}[{k!r}]')
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v, f'{where}[{n}]') for n, v in enumerate(obj)]
    if hasattr(obj, 'tolist'):  # numpy arrays and scalars, torch tensors
        return jsonable(obj.tolist(), where)
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f'{where} is {obj}: the ledger does not store NaN or infinite '
                         f'numbers; the strategy must give None for what it could not compute')
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f'{where} is a {type(obj).__name__} ({obj!r:.80}), which the ledger cannot '
                    f'store: strategies give plain numbers, strings, lists and dicts')
