"""A fair comparison of strategies: every strategy with every seed, under one protocol.

Each run is one :class:`ActiveLearningLoop` on the experiment's config with only
``active_learning.strategy`` and ``active_learning.seed`` set per run, so every run of one seed
starts from the same initial images, and every step of every run trains with the same schedule
(``active_learning.retrain``; the paper's is ``'scratch'``). Layout of an experiment directory
``DIR``::

    DIR/experiment_meta.json     the settings: config, protocol, strategies, seeds; a rerun
                                 that would mix protocols is refused
    DIR/<label>/seed_<k>/        one run (see mmdet_isal.active.loop for its layout), plus
        config.py                the run's full config (strategy and seed set, work_dir = here)
        console.log              the run's console output (each attempt appended)
    DIR/experiment.csv           per strategy label and step: seeds, mean and std over seeds of
                                 images, boxes, bbox_mAP, bbox_mAP_50 (EXPERIMENT_COLUMNS)
    DIR/experiment.json          the same rows, the runs, and every strategy against random:
                                 boxes saved at random's AP and AP at random's images, per seed
                                 and over seeds (see COMPARISON_DEFINITIONS)
    DIR/experiment.png           AP against boxes and AP against images, mean ± std over seeds

Standard deviations are over seeds with ``ddof=1`` (the sample std), ``None`` (empty in the
csv) with fewer than two seeds. bbox_mAP is on mmdet's 0-1 scale.
"""
import ast
import copy
import csv
import io
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mmengine.config import Config

from mmdet_isal.active.config import ActiveLearningConfig
from mmdet_isal.active.ledger import PoolLedger
from mmdet_isal.active.loop import ActiveLearningLoop
from mmdet_isal.active.report import SELECTION_COLUMNS, boxes_to_reach, load_summary
from mmdet_isal.registry import STRATEGIES
from mmdet_isal.utils.fileio import atomic_write, atomic_write_json

Row = Dict[str, Any]
#: ``{label: {seed: summary rows of that run}}`` (rows as in a run's ``summary.json``).
Results = Mapping[str, Mapping[int, Sequence[Row]]]

SPEC_FORM = ('NAME or LABEL=TYPE(key=value, ...), e.g. random or '
             'isal_per_image=isal(scorer.loss_normalizer=per_image)')
#: Summary-row fields averaged over seeds, and their names in the experiment's columns.
MEASURES = (('images', 'num_images'), ('boxes', 'num_boxes'), ('bbox_mAP', 'bbox_mAP'),
            ('bbox_mAP_50', 'bbox_mAP_50'))
EXPERIMENT_COLUMNS = ('strategy', 'step', 'seeds') + tuple(
    f'{name}_{stat}' for name, _ in MEASURES for stat in ('mean', 'std'))
BASELINE = 'random'
COMPARISON_DEFINITIONS = dict(
    boxes_needed=(
        "per seed, at each step of random: the boxes at which the strategy's own AP-versus-"
        "boxes curve of that seed (its steps joined by straight lines) first reaches random's "
        "bbox_mAP at that step. None if the curve never reaches it, or if the strategy's first "
        "step is already above it (the curve does not say how few boxes would have done)."),
    saving=("1 - boxes_needed / random's boxes at that step: the fraction of random's boxes "
            "the strategy saves at equal AP; > 0 means fewer boxes. None when boxes_needed is."),
    ap_difference=(
        "per seed, at each step of random: the strategy's bbox_mAP at random's number of "
        "images (linear between its steps; None outside its range of images) minus random's "
        "bbox_mAP; > 0 means a better detector from as many images."),
    summary=("over the seeds both runs have: mean and std (ddof=1) over the seeds where the "
             "value is defined ('defined'); 'holds' = seeds where it is > 0, out of 'seeds'."))
#: Keys of the config that differ between the runs of one experiment, or may change when it is
#: continued (more steps extend every run alike); the rest of the config is the protocol.
_PER_RUN_KEYS = ('work_dir', 'active_learning.strategy', 'active_learning.seed',
                 'active_learning.steps')
_NAME = r'[A-Za-z_][A-Za-z0-9_-]*'
_SPEC = re.compile(rf'^\s*(?:(?P<label>{_NAME})\s*=\s*)?(?P<type>[A-Za-z_][A-Za-z0-9_.]*)\s*'
                   rf'(?:\((?P<args>.*)\))?\s*$', re.S)
_KEY = re.compile(r'^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$')


# --- strategy specs -----------------------------------------------------------------------------
@dataclass
class StrategySpec:
    """One ``--strategies`` entry: the label of its runs and the strategy they use.

    Args:
        label: the name in reports and the run directories' ``DIR/<label>``.
        strategy: a registered name, or ``dict(type=name, **options)``.
        entry: the entry as given, for messages.
    """
    label: str
    strategy: Union[str, Dict[str, Any]]
    entry: str


def parse_strategy_spec(entry: str) -> StrategySpec:
    """Parse ``NAME`` or ``LABEL=TYPE(key=value, ...)``.

    Dotted keys nest (``scorer.loss_normalizer=per_image`` gives
    ``scorer=dict(loss_normalizer='per_image')``); values are Python literals
    (``ast.literal_eval``), anything else a string. The type is not checked against the
    registry here (:func:`parse_strategy_specs` does).

    Raises:
        ValueError: naming the entry and the expected form.
    """
    def bad(what):
        return ValueError(f'--strategies entry {entry!r}: {what}; expected {SPEC_FORM}')

    match = _SPEC.match(entry)
    if match is None:
        raise bad('not understood')
    label, name, args = match.group('label'), match.group('type'), match.group('args')
    if args is None:
        return StrategySpec(label or name, name, entry)
    if label is None:
        raise bad('a strategy with options needs a label (LABEL=TYPE(...)) to tell its runs '
                  'apart')
    strategy: Dict[str, Any] = dict(type=name)
    for item in _split_args(args, bad):
        key, eq, text = (s.strip() for s in item.partition('='))
        if not eq or not text:
            raise bad(f'option {item!r} is not key=value')
        if not _KEY.match(key) or key == 'type':
            raise bad(f'option name {key!r} must be a (dotted) identifier other than type')
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        *parents, last = key.split('.')
        node = strategy
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise bad(f'option {key!r} nests into {part!r}, which is set to a value')
        if last in node:
            raise bad(f'option {key!r} is given twice')
        node[last] = value
    return StrategySpec(label, strategy, entry)


def _split_args(text: str, bad: Callable[[str], Exception]) -> List[str]:
    """Split ``text`` at the commas outside brackets and quotes."""
    items, depth, quote, start = [], 0, None, 0
    for k, ch in enumerate(text):
        if quote:
            quote = None if ch == quote and text[k - 1] != '\\' else quote
        elif ch in '\'"':
            quote = ch
        elif ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        elif ch == ',' and depth == 0:
            items.append(text[start:k])
            start = k + 1
        if depth < 0:
            break
    if quote or depth:
        raise bad('unbalanced brackets or quotes in the options')
    items.append(text[start:])
    return [item for item in items if item.strip()]


def parse_strategy_specs(entries: Sequence[str]) -> List[StrategySpec]:
    """Parse ``--strategies`` entries; check that labels are unique and every strategy builds
    (a registered type, options its constructor takes), before anything runs.

    Raises:
        ValueError: naming the offending entry.
    """
    if not entries:
        raise ValueError(f'--strategies: give at least one strategy ({SPEC_FORM})')
    specs, seen = [], {}
    for entry in entries:
        spec = parse_strategy_spec(entry)
        if spec.label in seen:
            raise ValueError(f'--strategies entries {seen[spec.label]!r} and {entry!r} both have '
                             f'the label {spec.label!r}; labels name the run directories and '
                             f'must be unique: give one of them another label (LABEL=TYPE)')
        seen[spec.label] = entry
        cfg = dict(type=spec.strategy) if isinstance(spec.strategy, str) else spec.strategy
        name = cfg['type']
        if STRATEGIES.get(name) is None:
            raise ValueError(f'--strategies entry {entry!r}: no strategy {name!r} is registered; '
                             f'registered: {", ".join(sorted(STRATEGIES.module_dict))}')
        try:
            STRATEGIES.build(dict(copy.deepcopy(cfg), _scope_=STRATEGIES.scope))
        except Exception as e:  # the strategy's own message names what is wrong
            raise ValueError(f'--strategies entry {entry!r}: {name} cannot be built with '
                             f'{cfg}: {e}') from e
        specs.append(spec)
    return specs


# --- planning -----------------------------------------------------------------------------------
@dataclass
class PlannedRun:
    """One run of an experiment: strategy ``label`` with ``seed`` in ``work_dir``."""
    label: str
    strategy: Union[str, Dict[str, Any]]
    seed: int
    work_dir: str

    @property
    def name(self) -> str:
        return f'{self.label} seed {self.seed}'

    @property
    def config_file(self) -> str:
        return osp.join(self.work_dir, 'config.py')

    @property
    def log_file(self) -> str:
        return osp.join(self.work_dir, 'console.log')


def plan_runs(specs: Sequence[StrategySpec], seeds: Sequence[int],
              work_dir: str) -> List[PlannedRun]:
    """Every strategy with every seed, run directory ``work_dir/<label>/seed_<k>``; seed by seed,
    so that a partial experiment compares strategies on the seeds it has."""
    return [PlannedRun(s.label, copy.deepcopy(s.strategy), seed,
                       osp.join(work_dir, s.label, f'seed_{seed}'))
            for seed in seeds for s in specs]


def experiment_config(config_file: str, cfg_options: Optional[Mapping[str, Any]] = None
                      ) -> Config:
    """Read ``config_file`` and merge ``--cfg-options`` into it.

    Raises:
        ValueError: an option sets ``active_learning.strategy`` or ``active_learning.seed``,
            which the experiment sets per run (from ``--strategies`` and ``--seeds``).
    """
    cfg = Config.fromfile(config_file)
    options = dict(cfg_options or {})
    per_run = sorted(k for k in options if k.split('.')[:2] in (
        ['active_learning', 'strategy'], ['active_learning', 'seed']))
    if per_run:
        raise ValueError(f'--cfg-options {", ".join(per_run)}: the experiment sets the strategy '
                         f'and seed of each run; use --strategies and --seeds instead')
    if options:
        cfg.merge_from_dict(options)
    return cfg


def run_config(cfg: Config, run: PlannedRun) -> Config:
    """``cfg`` with the strategy, seed and run directory of ``run`` (nothing else changes)."""
    cfg = copy.deepcopy(cfg)
    cfg.active_learning.strategy = copy.deepcopy(run.strategy)
    cfg.active_learning.seed = run.seed
    cfg.work_dir = run.work_dir
    return cfg


def run_finished(run_dir: str, steps: int) -> bool:
    """Whether the run in ``run_dir`` has finished its ``steps`` steps (or stopped at
    ``target_ap``), as :meth:`ActiveLearningLoop.run` would see it."""
    path = osp.join(run_dir, ActiveLearningLoop.LEDGER)
    if not osp.isfile(path):
        return False
    ledger = PoolLedger.load(path)
    for step in range(steps):
        rec = ledger.steps.get(step)
        if not rec or not rec.get('finished'):
            return False
        if rec.get('stopped'):
            break
    return True


def protocol_of(cfg: Config) -> Dict[str, Any]:
    """The part of ``cfg`` all runs share (everything but :data:`_PER_RUN_KEYS`), as JSON
    data."""
    data = json.loads(json.dumps(cfg.to_dict(), default=str))
    for key in _PER_RUN_KEYS:
        *parents, last = key.split('.')
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return data


def _flat(data: Any, prefix: str = '') -> Dict[str, Any]:
    if isinstance(data, dict) and data:
        out = {}
        for k, v in data.items():
            out.update(_flat(v, f'{prefix}{k}.'))
        return out
    return {prefix.rstrip('.'): data}


def protocol_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """``'key: old -> new'`` for every dotted key whose value differs."""
    a, b = _flat(dict(old)), _flat(dict(new))
    return [f'{k}: {a.get(k, "<unset>")!r} -> {b.get(k, "<unset>")!r}'
            for k in sorted(set(a) | set(b)) if a.get(k, '<unset>') != b.get(k, '<unset>')]


# --- running ------------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    """What became of a run: ``status`` is ``'skipped'`` (finished before), ``'finished'`` or
    ``'failed'``; ``seconds`` of wall time; ``message`` the last line of a failed run's log."""
    run: PlannedRun
    status: str
    seconds: float = 0.0
    returncode: Optional[int] = None
    message: str = ''


class Experiment:
    """Every strategy of ``strategies`` with every seed of ``seeds`` under the protocol of
    ``cfg``, in ``work_dir``; resumable.

    Args:
        cfg: an mmdet config with an ``active_learning`` block; its ``strategy`` and ``seed``
            are replaced per run, everything else is the protocol. Never modified.
        strategies: ``--strategies`` entries (:func:`parse_strategy_spec`).
        seeds: distinct non-negative integers.
        work_dir: the experiment directory (layout in this module's docstring).
        config_file: the config's path, recorded in the meta file; default ``cfg.filename``.
    """

    META = 'experiment_meta.json'

    def __init__(self, cfg: Config, strategies: Sequence[str], seeds: Sequence[int],
                 work_dir: str, config_file: Optional[str] = None):
        self.cfg = copy.deepcopy(cfg)
        self.al = ActiveLearningConfig.from_dict(cfg.get('active_learning'))
        self.specs = parse_strategy_specs(strategies)
        seeds = list(seeds)
        if not seeds or len(set(seeds)) != len(seeds) or any(
                isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            raise ValueError(f'--seeds must be distinct non-negative integers, got {seeds}')
        self.seeds = seeds
        self.work_dir = osp.abspath(work_dir)
        config_file = config_file or cfg.filename
        self.config_file = osp.abspath(config_file) if config_file else None
        self.runs = plan_runs(self.specs, self.seeds, self.work_dir)

    @property
    def meta_path(self) -> str:
        return osp.join(self.work_dir, self.META)

    def prepare(self) -> None:
        """Check everything that can be checked before training, and record the settings.

        Builds the first run's loop (pool, reference set, strategy), validates every run's
        ``active_learning`` block, checks the settings against ``DIR/experiment_meta.json`` and
        writes it (new strategies and seeds are added to it), and writes each run's config.

        Raises:
            ValueError: the directory holds an experiment with another protocol, or a label
                that meant another strategy.
            FileExistsError: run directories exist but no meta file.
        """
        for run in self.runs:
            ActiveLearningConfig.from_dict(run_config(self.cfg, run).active_learning)
        ActiveLearningLoop(run_config(self.cfg, self.runs[0]))
        # Through JSON, so that it compares equal to what the meta file gives back.
        strategies = json.loads(json.dumps({s.label: s.strategy for s in self.specs}))
        meta = dict(config=self.config_file, protocol=protocol_of(self.cfg),
                    strategies=strategies, seeds=self.seeds)
        if osp.isfile(self.meta_path):
            with open(self.meta_path) as f:
                meta = self._merge_meta(json.load(f), meta)
        else:
            started = [r.work_dir for r in self.runs
                       if osp.exists(osp.join(r.work_dir, ActiveLearningLoop.LEDGER))]
            if started:
                raise FileExistsError(
                    f'{started[0]} holds a run but {self.meta_path} does not exist: the '
                    f'protocol of the runs there is unknown; choose another --work-dir')
        atomic_write_json(self.meta_path, meta, indent=1)
        for run in self.runs:
            atomic_write(run.config_file, run_config(self.cfg, run).pretty_text)

    def _merge_meta(self, old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Any]:
        diffs = protocol_differences(old['protocol'], new['protocol'])
        if diffs:
            shown = '; '.join(diffs[:5]) + (f'; and {len(diffs) - 5} more' if len(diffs) > 5
                                            else '')
            raise ValueError(
                f'{self.work_dir} holds an experiment with another protocol (config '
                f'{old["config"]}): {shown}. Runs under different protocols cannot be compared: '
                f'use the original config and --cfg-options (only active_learning.steps may '
                f'change), or another --work-dir')
        for label, strategy in new['strategies'].items():
            if label in old['strategies'] and old['strategies'][label] != strategy:
                raise ValueError(
                    f'--strategies label {label!r} is {strategy!r} now but was '
                    f'{old["strategies"][label]!r} in {self.work_dir}; give the new strategy '
                    f'another label')
        return dict(new, strategies={**old['strategies'], **new['strategies']},
                    seeds=sorted(set(old['seeds']) | set(new['seeds'])))

    def run(self, loop_script: str, jobs: int = 1,
            echo: Callable[[str], None] = None) -> List[RunOutcome]:
        """Run every unfinished run, up to ``jobs`` at once, each as
        ``python loop_script RUN/config.py --work-dir RUN --resume`` with ``OMP_NUM_THREADS=1``
        and its output in ``RUN/console.log``; finished runs are skipped. Call
        :meth:`prepare` first.

        Args:
            loop_script: path of ``tools/al_loop.py``.
            jobs: runs in parallel (one CPU core each is about right).
            echo: prints one line per run start, finish, skip or failure; default: ``print``
                to the console at once.

        Returns:
            one outcome per planned run, in plan order. A failed run does not stop the others.
        """
        echo = echo or _print
        if not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f'--jobs must be an integer >= 1, got {jobs!r}')
        if not osp.isfile(loop_script):
            raise FileNotFoundError(f'{loop_script} (tools/al_loop.py, which runs each run) '
                                    f'does not exist')
        total = len(self.runs)
        outcomes: Dict[int, RunOutcome] = {}
        queue = []
        for k, run in enumerate(self.runs):
            if run_finished(run.work_dir, self.al.steps):
                outcomes[k] = RunOutcome(run, 'skipped')
                echo(f'[{k + 1}/{total}] {run.name}: finished before, skipped')
            else:
                queue.append(k)
        env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
        running: Dict[int, Tuple[subprocess.Popen, Any, float]] = {}
        try:
            while queue or running:
                while queue and len(running) < jobs:
                    k = queue.pop(0)
                    run = self.runs[k]
                    resumed = osp.isfile(osp.join(run.work_dir, ActiveLearningLoop.LEDGER))
                    cmd = [sys.executable, loop_script, run.config_file, '--work-dir',
                           run.work_dir, '--resume']
                    log = open(run.log_file, 'a')
                    log.write(f'\n=== {time.strftime("%Y-%m-%d %H:%M:%S")} '
                              f'{" ".join(cmd)}\n')
                    log.flush()
                    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env=env)
                    running[k] = (proc, log, time.perf_counter())
                    echo(f'[{k + 1}/{total}] {run.name}: {"resuming" if resumed else "started"}'
                         f', log {run.log_file}')
                for k, (proc, log, start) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    log.close()
                    del running[k]
                    outcomes[k] = self._outcome(self.runs[k], proc.returncode,
                                                time.perf_counter() - start)
                    echo(f'[{k + 1}/{total}] {_describe(outcomes[k])}')
                if running:
                    time.sleep(0.5)
        finally:
            # Interrupted (Ctrl-C): stop the runs this call started; they resume next time.
            for proc, log, _ in running.values():
                proc.terminate()
                proc.wait()
                log.close()
        return [outcomes[k] for k in range(total)]

    @staticmethod
    def _outcome(run: PlannedRun, returncode: int, seconds: float) -> RunOutcome:
        if returncode == 0:
            return RunOutcome(run, 'finished', seconds, returncode)
        with open(run.log_file, errors='replace') as f:
            lines = [line.strip() for line in f if line.strip()]
        return RunOutcome(run, 'failed', seconds, returncode, lines[-1] if lines else '')

    def results(self) -> Dict[str, Dict[int, List[Row]]]:
        """``{label: {seed: summary rows}}`` of the runs that evaluated at least one step."""
        results: Dict[str, Dict[int, List[Row]]] = {s.label: {} for s in self.specs}
        for run in self.runs:
            if osp.isfile(osp.join(run.work_dir, 'summary.json')):
                results[run.label][run.seed] = load_summary(run.work_dir)
        return results

    def report(self) -> str:
        """Write ``experiment.csv``, ``.json`` and ``.png`` from the runs' summaries; returns
        the tables as text."""
        results = self.results()
        runs = [dict(strategy=r.label, seed=r.seed,
                     work_dir=osp.relpath(r.work_dir, self.work_dir),
                     steps_evaluated=len(results[r.label].get(r.seed, [])),
                     finished=run_finished(r.work_dir, self.al.steps))
                for r in self.runs]
        data = write_experiment(
            self.work_dir, results,
            header=dict(config=self.config_file, seeds=self.seeds,
                        strategies={s.label: s.strategy for s in self.specs},
                        steps=self.al.steps, runs=runs))
        return format_report(data)


def _print(line: str) -> None:
    print(line, flush=True)  # at once, also when the console is piped (make | tee)


def _describe(outcome: RunOutcome) -> str:
    run = outcome.run
    if outcome.status == 'failed':
        return (f'{run.name}: FAILED (exit code {outcome.returncode}) after '
                f'{outcome.seconds:.0f} s: {outcome.message}; full log: {run.log_file}')
    return f'{run.name}: finished in {outcome.seconds:.0f} s'


# --- aggregation (pure) -------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample std (ddof=1) of ``values``; ``None`` where undefined (std with < 2)."""
    if not values:
        return None, None
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else None


def aggregate(results: Results) -> List[Row]:
    """Per strategy label and step: how many seeds reached it, and mean and std over those
    seeds of images, boxes, bbox_mAP and bbox_mAP_50 (columns :data:`EXPERIMENT_COLUMNS`)."""
    out = []
    for label, by_seed in results.items():
        by_step: Dict[int, List[Row]] = {}
        for rows in by_seed.values():
            for r in rows:
                by_step.setdefault(r['step'], []).append(r)
        for step in sorted(by_step):
            at = by_step[step]
            row = dict(strategy=label, step=step, seeds=len(at))
            for name, key in MEASURES:
                row[f'{name}_mean'], row[f'{name}_std'] = mean_std([r[key] for r in at])
            out.append(row)
    return out


def aggregate_selections(results: Results) -> List[Row]:
    """Per strategy label and step: the selection diagnostics of the runs (the columns
    :data:`~mmdet_isal.active.report.SELECTION_COLUMNS` of their summaries), mean over the seeds
    where each is defined; steps that selected nothing (the last) are left out."""
    out = []
    for label, by_seed in results.items():
        by_step: Dict[int, List[Row]] = {}
        for rows in by_seed.values():
            for r in rows:
                if r.get('picked_true_boxes') is not None:
                    by_step.setdefault(r['step'], []).append(r)
        for step in sorted(by_step):
            row = dict(strategy=label, step=step, seeds=len(by_step[step]))
            for key in SELECTION_COLUMNS:
                row[key] = mean_std([r[key] for r in by_step[step]
                                     if r.get(key) is not None])[0]
            out.append(row)
    return out


def boxes_needed(rows: Sequence[Row], target_ap: float) -> Optional[float]:
    """Boxes at which a run's AP-versus-boxes curve first reaches ``target_ap`` (linear between
    steps); ``None`` if it never does, or if its first step is already above it."""
    curve = [dict(boxes=r['num_boxes'], ap=r['bbox_mAP']) for r in sorted(rows, key=_step)]
    if not curve or target_ap < curve[0]['ap']:
        return None
    return boxes_to_reach(curve, target_ap)


def ap_at_images(rows: Sequence[Row], images: float) -> Optional[float]:
    """A run's bbox_mAP at ``images`` labeled images, linear between its steps; ``None``
    outside the images its steps cover."""
    points = [(r['num_images'], r['bbox_mAP']) for r in sorted(rows, key=_step)]
    if not points or not points[0][0] <= images <= points[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip([points[0]] + points, points):
        if x1 >= images:
            return float(y1) if x1 == x0 else float(y0 + (images - x0) / (x1 - x0) * (y1 - y0))
    return None


def compare_with_baseline(results: Results, baseline: str = BASELINE) -> Dict[str, Any]:
    """Every other strategy against ``baseline``, seed by seed, at each of the baseline's steps
    (definitions in :data:`COMPARISON_DEFINITIONS`).

    Returns:
        ``per_seed``: rows ``strategy, seed, step, random_images, random_boxes,
        random_bbox_mAP, boxes_needed, saving, bbox_mAP_at_images, ap_difference``;
        ``savings``: per strategy and step, ``seeds, defined, random_boxes_mean,
        random_bbox_mAP_mean, boxes_needed_mean, saving_mean, saving_std, holds``;
        ``matched_images``: per strategy and step, ``seeds, defined, images_mean,
        random_bbox_mAP_mean, bbox_mAP_mean, ap_difference_mean, ap_difference_std, holds``.
    """
    if baseline not in results:
        raise KeyError(f'no {baseline!r} strategy among {list(results)}')
    per_seed = []
    for label, by_seed in results.items():
        if label == baseline:
            continue
        for seed in sorted(set(by_seed) & set(results[baseline])):
            for b in sorted(results[baseline][seed], key=_step):
                needed = boxes_needed(by_seed[seed], b['bbox_mAP'])
                ap = ap_at_images(by_seed[seed], b['num_images'])
                per_seed.append(dict(
                    strategy=label, seed=seed, step=b['step'], random_images=b['num_images'],
                    random_boxes=b['num_boxes'], random_bbox_mAP=b['bbox_mAP'],
                    boxes_needed=needed,
                    saving=None if needed is None or not b['num_boxes']
                    else 1.0 - needed / b['num_boxes'],
                    bbox_mAP_at_images=ap,
                    ap_difference=None if ap is None else ap - b['bbox_mAP']))
    groups: Dict[Tuple[str, int], List[Row]] = {}
    for r in per_seed:
        groups.setdefault((r['strategy'], r['step']), []).append(r)
    savings, matched = [], []
    for (label, step), rows in groups.items():
        common = dict(strategy=label, step=step, seeds=len(rows))
        base_boxes, _ = mean_std([r['random_boxes'] for r in rows])
        base_ap, _ = mean_std([r['random_bbox_mAP'] for r in rows])
        defined = [r for r in rows if r['saving'] is not None]
        mean, std = mean_std([r['saving'] for r in defined])
        savings.append(dict(
            common, defined=len(defined), random_boxes_mean=base_boxes,
            random_bbox_mAP_mean=base_ap,
            boxes_needed_mean=mean_std([r['boxes_needed'] for r in defined])[0],
            saving_mean=mean, saving_std=std, holds=sum(r['saving'] > 0 for r in defined)))
        defined = [r for r in rows if r['ap_difference'] is not None]
        mean, std = mean_std([r['ap_difference'] for r in defined])
        matched.append(dict(
            common, defined=len(defined),
            images_mean=mean_std([r['random_images'] for r in rows])[0],
            random_bbox_mAP_mean=base_ap,
            bbox_mAP_mean=mean_std([r['bbox_mAP_at_images'] for r in defined])[0],
            ap_difference_mean=mean, ap_difference_std=std,
            holds=sum(r['ap_difference'] > 0 for r in defined)))
    return dict(per_seed=per_seed, savings=savings, matched_images=matched)


def _step(row: Row) -> int:
    return row['step']


# --- files and text -----------------------------------------------------------------------------
def write_experiment(work_dir: str, results: Results, header: Optional[Mapping] = None,
                     baseline: str = BASELINE) -> Dict[str, Any]:
    """Write ``experiment.csv``, ``experiment.json`` and ``experiment.png`` into ``work_dir``.

    Args:
        results: ``{label: {seed: summary rows}}``.
        header: extra facts for the top of ``experiment.json`` (config, seeds, runs, ...).
        baseline: the label the others are compared with; without it there are no comparisons.

    Returns:
        the content of ``experiment.json``: ``header``'s keys, ``std``, ``rows`` (the csv's
        rows), ``baseline`` and ``comparisons`` (:func:`compare_with_baseline` plus
        ``definitions``; ``None`` with a ``note`` when the baseline is missing).
    """
    rows = aggregate(results)
    data = dict(header or {})
    data.update(std='sample standard deviation over seeds (ddof=1); null with fewer than 2',
                rows=rows, selections=aggregate_selections(results))
    if baseline in results and results[baseline]:
        data.update(baseline=baseline, comparisons=dict(
            definitions=COMPARISON_DEFINITIONS, **compare_with_baseline(results, baseline)))
    else:
        data.update(baseline=None, comparisons=None,
                    note=f'no {baseline!r} strategy (or no run of it) in the experiment: '
                         f'savings against random are not computed')
    atomic_write_json(osp.join(work_dir, 'experiment.json'), data, indent=1)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPERIMENT_COLUMNS, lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(osp.join(work_dir, 'experiment.csv'), buf.getvalue())
    plot_experiment(rows, osp.join(work_dir, 'experiment.png'))
    return data


def plot_experiment(rows: Sequence[Row], out: str) -> None:
    """Two panels, bbox mAP against mean boxes and against mean images, mean ± std over seeds
    per strategy (rows of :func:`aggregate`)."""
    fig = Figure(figsize=(11, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    labels = list(dict.fromkeys(r['strategy'] for r in rows))
    for label in labels:
        curve = sorted((r for r in rows if r['strategy'] == label), key=_step)
        y = np.array([r['bbox_mAP_mean'] for r in curve])
        std = np.array([r['bbox_mAP_std'] or 0.0 for r in curve])
        seeds = max(r['seeds'] for r in curve)
        for ax, x_name in zip(axes, ('boxes', 'images')):
            x = np.array([r[f'{x_name}_mean'] for r in curve])
            line, = ax.plot(x, y, marker='o', label=f'{label} ({seeds} seed'
                            f'{"s" if seeds > 1 else ""})')
            if seeds > 1:
                ax.fill_between(x, y - std, y + std, color=line.get_color(), alpha=0.2)
    for ax, x_name in zip(axes, ('annotated boxes', 'labeled images')):
        ax.set_xlabel(f'{x_name} (mean over seeds)')
        ax.set_ylabel('bbox mAP (mean ± std over seeds)')
        ax.set_title(f'AP versus {x_name}')
        ax.grid(True, alpha=0.3)
        if labels:
            ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png')
    atomic_write(out, buf.getvalue())


def _pm(mean: Optional[float], std: Optional[float], fmt: str, scale: float = 1.0,
        unit: str = '') -> str:
    """``mean ± std`` (``std`` left out when undefined), both times ``scale``."""
    if mean is None:
        return 'n/a'
    text = f'{scale * mean:{fmt}}'
    if std is not None:
        text += f' ± {scale * std:{fmt.lstrip("+")}}'
    return text + unit


def format_report(data: Mapping[str, Any]) -> str:
    """The tables of ``experiment.json`` content (:func:`write_experiment`) as text: AP per
    strategy and step, then the comparisons with random."""
    width = max([len(r['strategy']) for r in data['rows']] + [8])
    lines = ['bbox mAP per strategy and step (mean ± std over seeds):',
             f'{"strategy":<{width}} {"seeds":>5} {"step":>4} {"images":>14} {"boxes":>16} '
             f'{"bbox_mAP":>17} {"bbox_mAP_50":>17}']
    for r in data['rows']:
        lines.append(
            f'{r["strategy"]:<{width}} {r["seeds"]:>5} {r["step"]:>4} '
            f'{_pm(r["images_mean"], r["images_std"], ".0f"):>14} '
            f'{_pm(r["boxes_mean"], r["boxes_std"], ".0f"):>16} '
            f'{_pm(r["bbox_mAP_mean"], r["bbox_mAP_std"], ".4f"):>17} '
            f'{_pm(r["bbox_mAP_50_mean"], r["bbox_mAP_50_std"], ".4f"):>17}')
    if data.get('selections'):
        lines += ['', 'What each selection picked (after step; mean over seeds): true boxes and '
                      'pseudo boxes per picked image (pool), share of picks without a true box, '
                      'Spearman(score, pseudo boxes):',
                  f'{"strategy":<{width}} {"step":>4} {"true boxes":>16} {"pseudo boxes":>16} '
                  f'{"no box":>7} {"Spearman":>8}']
        for r in data['selections']:
            lines.append(
                f'{r["strategy"]:<{width}} {r["step"]:>4} '
                f'{_num(r["picked_true_boxes"], ".2f")} ({_num(r["pool_true_boxes"], ".2f")})'
                f'{"":>3}{_num(r["picked_pseudo_boxes"], ".1f")} '
                f'({_num(r["pool_pseudo_boxes"], ".1f")})'
                f'{"":>3}{_num(r["picked_no_true_box"], ".0%")} '
                f'{_num(r["spearman_score_pseudo_boxes"], "+.2f")}')
    comparisons = data.get('comparisons')
    if comparisons is None:
        lines += ['', data.get('note', 'no comparisons with random')]
        return '\n'.join(lines)
    lines += ['', "Boxes saved at random's AP: saving = 1 - boxes needed / random's boxes",
              '(mean ± std over the seeds where defined; holds = seeds with saving > 0):',
              f'{"strategy":<{width}} {"step":>4} {"random boxes":>12} {"random AP":>9} '
              f'{"boxes needed":>12} {"saving":>17} {"holds":>7}']
    for r in comparisons['savings']:
        needed = r['boxes_needed_mean']
        lines.append(
            f'{r["strategy"]:<{width}} {r["step"]:>4} {r["random_boxes_mean"]:>12.0f} '
            f'{r["random_bbox_mAP_mean"]:>9.4f} '
            f'{"n/a" if needed is None else f"{needed:.0f}":>12} '
            f'{_pm(r["saving_mean"], r["saving_std"], ".1f", 100, " %"):>17} '
            f'{_holds(r):>7}' + _undefined(r))
    lines += ['', "AP at random's number of images: difference = strategy's AP - random's",
              '(mean ± std over the seeds where defined; holds = seeds with a higher AP):',
              f'{"strategy":<{width}} {"step":>4} {"images":>12} {"random AP":>9} '
              f'{"AP":>12} {"difference":>17} {"holds":>7}']
    for r in comparisons['matched_images']:
        ap = r['bbox_mAP_mean']
        lines.append(
            f'{r["strategy"]:<{width}} {r["step"]:>4} {r["images_mean"]:>12.0f} '
            f'{r["random_bbox_mAP_mean"]:>9.4f} {"n/a" if ap is None else f"{ap:.4f}":>12} '
            f'{_pm(r["ap_difference_mean"], r["ap_difference_std"], "+.4f"):>17} '
            f'{_holds(r):>7}' + _undefined(r))
    return '\n'.join(lines)


def _num(value: Optional[float], fmt: str) -> str:
    return 'n/a' if value is None else format(value, fmt)


def _holds(row: Row) -> str:
    return f'{row["holds"]}/{row["seeds"]}'


def _undefined(row: Row) -> str:
    missing = row['seeds'] - row['defined']
    return f' ({missing} seed{"s" if missing > 1 else ""} undefined)' if missing else ''
