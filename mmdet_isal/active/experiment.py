"""A fair comparison of strategies: every strategy with every seed, under one protocol.

Each run is one :class:`ActiveLearningLoop` on the experiment's config with only
``active_learning.strategy`` and ``active_learning.seed`` set per run, so every run of one seed
starts from the same initial images, and every step of every run trains with the same schedule
(``active_learning.retrain``; the paper's is ``'scratch'``). Step 0 is trained once per seed
(``DIR/_step0/seed_<k>``, the config with ``steps=1``) and every strategy run of the seed takes
it as its own step 0 (:mod:`mmdet_isal.active.step0`): all strategies of a seed start from the
same model. Layout of an experiment directory ``DIR``::

    DIR/experiment_meta.json     the settings: config, protocol, strategies, seeds; a rerun
                                 that would mix protocols is refused
    DIR/_step0/seed_<k>/         the shared step 0 of seed k: a run of one step (its own
                                 config.py and console.log)
    DIR/<label>/seed_<k>/        one run (see mmdet_isal.active.loop for its layout), plus
        config.py                the run's full config (strategy and seed set, work_dir = here)
        console.log              the run's console output (each attempt appended)
    DIR/experiment.csv           per strategy label and step: seeds, mean and std over seeds of
                                 images, boxes, annotation hours, bbox_mAP, bbox_mAP_50
                                 (report.EXPERIMENT_COLUMNS)
    DIR/experiment.json          the same rows, the runs, and every strategy against random:
                                 savings at random's AP in hours, boxes and images, their
                                 cost-ratio sensitivity, AP at random's images, per seed and
                                 over seeds (see report.COMPARISON_DEFINITIONS)
    DIR/experiment.png           AP against annotation hours, boxes and images, mean ± std over
                                 seeds, random's AP levels with each strategy's saving
    DIR/report.txt               the tables as text (what the tool prints at the end)

The strategies are ``--strategies`` entries (:mod:`mmdet_isal.active.strategy_specs`); the
numbers, plot and text come from :mod:`mmdet_isal.active.report` (standard deviations over
seeds with ``ddof=1``, ``None`` with fewer than two seeds; bbox_mAP on mmdet's 0-1 scale).
"""
import copy
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from mmengine.config import Config

from mmdet_isal.active.config import ActiveLearningConfig
from mmdet_isal.active.ledger import PoolLedger
from mmdet_isal.active.loop import ActiveLearningLoop
from mmdet_isal.active.report import (Row, format_report, load_summary, model_description,
                                      protocol_title, write_experiment)
from mmdet_isal.active.report.render import dataset_name
from mmdet_isal.active.step0 import step0_done
from mmdet_isal.active.strategy_specs import StrategySpec, parse_strategy_specs
from mmdet_isal.active.task import task_of
from mmdet_isal.influence.checks import check_int, is_int
from mmdet_isal.utils.fileio import atomic_write, atomic_write_json

#: Keys of the config that differ between the runs of one experiment, or may change when it is
#: continued (more steps extend every run alike); the rest of the config is the protocol.
_PER_RUN_KEYS = ('work_dir', 'active_learning.strategy', 'active_learning.seed',
                 'active_learning.steps')
#: The directory of the shared step-0 runs, ``DIR/_step0/seed_<k>`` (a reserved label).
STEP0 = '_step0'


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


def collect_results(runs: Sequence[PlannedRun]) -> Dict[str, Dict[int, List[Row]]]:
    """``{label: {seed: summary rows}}`` of ``runs``: every label, and the seeds whose run
    evaluated at least one step."""
    results: Dict[str, Dict[int, List[Row]]] = {run.label: {} for run in runs}
    for run in runs:
        if osp.isfile(osp.join(run.work_dir, 'summary.json')):
            results[run.label][run.seed] = load_summary(run.work_dir)
    return results


def read_experiment(work_dir: str) -> Dict[str, Dict[int, List[Row]]]:
    """The results (:func:`collect_results`) of the experiment in ``work_dir``, as its meta file
    (``experiment_meta.json``) records its strategies and seeds.

    Raises:
        FileNotFoundError: ``work_dir`` holds no meta file.
    """
    meta_path = osp.join(work_dir, Experiment.META)
    if not osp.isfile(meta_path):
        raise FileNotFoundError(f'{meta_path} does not exist: {work_dir} is not an experiment '
                                f'directory of tools/al_experiment.py')
    with open(meta_path) as f:
        meta = json.load(f)
    specs = [StrategySpec(label, strategy, label)
             for label, strategy in meta['strategies'].items()]
    return collect_results(plan_runs(specs, meta['seeds'], work_dir))


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


def plan_step0(seeds: Sequence[int], work_dir: str) -> Dict[int, PlannedRun]:
    """The shared step-0 run of each seed, ``work_dir/_step0/seed_<k>``: a run of one step
    (``random``: it selects nothing)."""
    return {seed: PlannedRun(STEP0, 'random', seed, osp.join(work_dir, STEP0, f'seed_{seed}'))
            for seed in seeds}


def run_config(cfg: Config, run: PlannedRun) -> Config:
    """``cfg`` with the strategy, seed and run directory of ``run`` (nothing else changes; a
    shared step-0 run also gets ``steps=1``)."""
    cfg = copy.deepcopy(cfg)
    cfg.active_learning.strategy = copy.deepcopy(run.strategy)
    cfg.active_learning.seed = run.seed
    cfg.work_dir = run.work_dir
    if run.label == STEP0:
        cfg.active_learning.steps = 1
    return cfg


def run_finished(run_dir: str, steps: int) -> bool:
    """Whether the run in ``run_dir`` is over after ``steps`` steps: its ledger says so
    (:meth:`PoolLedger.finished`, the rule the loop follows); ``False`` without a ledger."""
    path = osp.join(run_dir, ActiveLearningLoop.LEDGER)
    return osp.isfile(path) and PoolLedger.load(path).finished(steps)


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
        #: the task of the config: how its strategies' names and options are built
        self.task = task_of(cfg)
        self.al = ActiveLearningConfig.from_dict(cfg.get('active_learning'),
                                                 self.task.strategy_class)
        self.specs = parse_strategy_specs(strategies, self.task.build_strategy)
        seeds = list(seeds)
        if not seeds or len(set(seeds)) != len(seeds) or any(
                not is_int(s) or s < 0 for s in seeds):
            raise ValueError(f'--seeds must be distinct non-negative integers, got {seeds}')
        self.seeds = seeds
        self.work_dir = osp.abspath(work_dir)
        config_file = config_file or cfg.filename
        self.config_file = osp.abspath(config_file) if config_file else None
        if any(s.label == STEP0 for s in self.specs):
            raise ValueError(f'--strategies: the label {STEP0!r} is reserved for the shared '
                             f'step-0 runs ({STEP0}/seed_<k>); give that strategy another label')
        self.runs = plan_runs(self.specs, self.seeds, self.work_dir)
        self.step0 = plan_step0(self.seeds, self.work_dir)
        self.title: Optional[str] = None  # the plot's, once prepare() has read the pool

    @property
    def meta_path(self) -> str:
        return osp.join(self.work_dir, self.META)

    def prepare(self) -> None:
        """Check everything that can be checked before training, and record the settings.

        Builds the first run's loop (pool, reference set, strategy), validates every run's
        ``active_learning`` block, checks the settings against ``DIR/experiment_meta.json`` and
        writes it (new strategies and seeds are added to it), and writes each run's config
        (the shared step-0 runs' too).

        Raises:
            ValueError: the directory holds an experiment with another protocol, or a label
                that meant another strategy.
            FileExistsError: run directories exist but no meta file.
        """
        for run in self.runs + list(self.step0.values()):
            ActiveLearningConfig.from_dict(run_config(self.cfg, run).active_learning,
                                           self.task.strategy_class)
        loop = ActiveLearningLoop(run_config(self.cfg, self.runs[0]))
        self.title = protocol_title(dataset_name(loop.pool.ann_file),
                                    model_description(self.cfg.get('model')), loop.al.to_dict(),
                                    labels_are_boxes=loop.task.labels_are_boxes)
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
        for run in self.runs + list(self.step0.values()):
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

        A run that has not evaluated its step 0 yet waits for the shared step 0 of its seed
        (``DIR/_step0/seed_<k>``, run first, once) and gets ``--shared-step0`` to it; if that
        fails, the run fails with it.

        Args:
            loop_script: path of ``tools/al_loop.py``.
            jobs: runs in parallel (one CPU core each is about right).
            echo: prints one line per run start, finish, skip or failure; default: ``print``
                to the console at once.

        Returns:
            one outcome per planned strategy run, in plan order. A failed run does not stop
            the others.
        """
        echo = echo or _print
        check_int(jobs, '--jobs', minimum=1)
        if not osp.isfile(loop_script):
            raise FileNotFoundError(f'{loop_script} (tools/al_loop.py, which runs each run) '
                                    f'does not exist')
        total = len(self.runs)
        outcomes: Dict[int, RunOutcome] = {}
        queue: List[Tuple[str, int]] = []  # ('step0', seed) or ('run', index), in order
        step0_state: Dict[int, str] = {}   # seed -> 'pending', 'finished' or 'failed'
        waiting: Set[int] = set()          # runs that take the shared step 0 of their seed
        for k, run in enumerate(self.runs):
            if run_finished(run.work_dir, self.al.steps):
                outcomes[k] = RunOutcome(run, 'skipped')
                echo(f'[{k + 1}/{total}] {run.name}: finished before, skipped')
                continue
            queue.append(('run', k))
            if step0_done(run.work_dir):
                continue
            waiting.add(k)
            if run.seed not in step0_state:
                finished = run_finished(self.step0[run.seed].work_dir, 1)
                step0_state[run.seed] = 'finished' if finished else 'pending'
                if not finished:  # the step-0 runs first, in seed order
                    queue.insert(sum(kind == 'step0' for kind, _ in queue), ('step0', run.seed))
        env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
        running: Dict[Tuple[str, int], Tuple[subprocess.Popen, Any, float]] = {}
        try:
            while queue or running:
                for task in self._ready(queue, step0_state, waiting, jobs - len(running)):
                    queue.remove(task)
                    kind, key = task
                    if kind == 'run' and key in waiting and \
                            step0_state[self.runs[key].seed] == 'failed':
                        outcomes[key] = self._step0_failed(self.runs[key])
                        echo(f'[{key + 1}/{total}] {_describe(outcomes[key])}')
                        continue
                    running[task] = self._start(task, loop_script, env, echo, total)
                for task, (proc, log, start) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    log.close()
                    del running[task]
                    kind, key = task
                    run = self.step0[key] if kind == 'step0' else self.runs[key]
                    outcome = self._outcome(run, proc.returncode, time.perf_counter() - start)
                    if kind == 'step0':
                        step0_state[key] = outcome.status
                        echo(f'[step 0 of seed {key}] {_describe(outcome)}')
                    else:
                        outcomes[key] = outcome
                        echo(f'[{key + 1}/{total}] {_describe(outcome)}')
                if running:
                    time.sleep(0.5)
        finally:
            # Interrupted (Ctrl-C): stop the runs this call started; they resume next time.
            for proc, log, _ in running.values():
                proc.terminate()
                proc.wait()
                log.close()
        return [outcomes[k] for k in range(total)]

    def _ready(self, queue: List[Tuple[str, int]], step0_state: Dict[int, str],
               waiting: Set[int], free: int) -> List[Tuple[str, int]]:
        """The queued tasks to start now, in queue order, at most ``free`` of them: shared
        step-0 runs, and runs that need no shared step 0 (not in ``waiting``) or whose seed
        has it finished. A run whose seed's step 0 failed is ready at once (it fails)."""
        ready = []
        for kind, key in queue:
            state = step0_state.get(self.runs[key].seed) if kind == 'run' and \
                key in waiting else None
            if state == 'failed':
                ready.append((kind, key))
            elif state != 'pending' and free > 0:
                ready.append((kind, key))
                free -= 1
        return ready

    def _start(self, task: Tuple[str, int], loop_script: str, env: Dict[str, str],
               echo: Callable[[str], None], total: int) -> Tuple[subprocess.Popen, Any, float]:
        kind, key = task
        run = self.step0[key] if kind == 'step0' else self.runs[key]
        resumed = osp.isfile(osp.join(run.work_dir, ActiveLearningLoop.LEDGER))
        cmd = [sys.executable, loop_script, run.config_file, '--work-dir', run.work_dir,
               '--resume']
        if kind == 'run' and not step0_done(run.work_dir):
            cmd += ['--shared-step0', self.step0[run.seed].work_dir]  # noted in its ledger
        log = open(run.log_file, 'a')
        log.write(f'\n=== {time.strftime("%Y-%m-%d %H:%M:%S")} {" ".join(cmd)}\n')
        log.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env)
        where = f'[step 0 of seed {key}]' if kind == 'step0' else f'[{key + 1}/{total}]'
        echo(f'{where} {run.name}: {"resuming" if resumed else "started"}, log {run.log_file}')
        return proc, log, time.perf_counter()

    def _step0_failed(self, run: PlannedRun) -> RunOutcome:
        shared = self.step0[run.seed]
        return RunOutcome(run, 'failed', message=f'the shared step 0 of seed {run.seed} failed '
                                                 f'(log {shared.log_file})')

    @staticmethod
    def _outcome(run: PlannedRun, returncode: int, seconds: float) -> RunOutcome:
        if returncode == 0:
            return RunOutcome(run, 'finished', seconds, returncode)
        with open(run.log_file, errors='replace') as f:
            lines = [line.strip() for line in f if line.strip()]
        return RunOutcome(run, 'failed', seconds, returncode, lines[-1] if lines else '')

    def results(self) -> Dict[str, Dict[int, List[Row]]]:
        """``{label: {seed: summary rows}}`` of the runs that evaluated at least one step."""
        return collect_results(self.runs)

    def report(self) -> str:
        """Write ``experiment.csv``, ``.json``, ``.png`` and ``report.txt`` from the runs'
        summaries; returns the text report."""
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
                        steps=self.al.steps, runs=runs),
            title=self.title)
        return format_report(data)


def _print(line: str) -> None:
    print(line, flush=True)  # at once, also when the console is piped (make | tee)


def _describe(outcome: RunOutcome) -> str:
    run = outcome.run
    if outcome.status == 'failed':
        return (f'{run.name}: FAILED (exit code {outcome.returncode}) after '
                f'{outcome.seconds:.0f} s: {outcome.message}; full log: {run.log_file}')
    return f'{run.name}: finished in {outcome.seconds:.0f} s'
