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
                                 images, boxes, bbox_mAP, bbox_mAP_50 (report.EXPERIMENT_COLUMNS)
    DIR/experiment.json          the same rows, the runs, and every strategy against random:
                                 boxes saved at random's AP and AP at random's images, per seed
                                 and over seeds (see report.COMPARISON_DEFINITIONS)
    DIR/experiment.png           AP against boxes and AP against images, mean ± std over seeds
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
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mmengine.config import Config

from mmdet_isal.active.config import ActiveLearningConfig
from mmdet_isal.active.ledger import PoolLedger
from mmdet_isal.active.loop import ActiveLearningLoop
from mmdet_isal.active.report import Row, format_report, load_summary, write_experiment
from mmdet_isal.active.strategy_specs import StrategySpec, parse_strategy_specs
from mmdet_isal.influence.checks import check_int, is_int
from mmdet_isal.utils.fileio import atomic_write, atomic_write_json

#: Keys of the config that differ between the runs of one experiment, or may change when it is
#: continued (more steps extend every run alike); the rest of the config is the protocol.
_PER_RUN_KEYS = ('work_dir', 'active_learning.strategy', 'active_learning.seed',
                 'active_learning.steps')


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
        self.al = ActiveLearningConfig.from_dict(cfg.get('active_learning'))
        self.specs = parse_strategy_specs(strategies)
        seeds = list(seeds)
        if not seeds or len(set(seeds)) != len(seeds) or any(
                not is_int(s) or s < 0 for s in seeds):
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
        check_int(jobs, '--jobs', minimum=1)
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
