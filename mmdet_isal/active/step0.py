"""A shared step 0: one training of the initial model per seed, for every strategy run of it.

Every strategy of an experiment starts, for one seed, from the same initial images (they depend
on the seed only). Their step-0 models would differ only by the noise of training; training it
once per seed removes that noise from the comparison and the time of all but one training.
The experiment runner (:mod:`mmdet_isal.active.experiment`) trains it as a run of its own,
``DIR/_step0/seed_K`` (the experiment's config with ``steps=1``), and each strategy run of the
seed gets ``--shared-step0 DIR/_step0/seed_K``: the loop wraps its trainer in a
:class:`SharedStep0Trainer`, whose step 0 is that run's. The strategy run's ledger then records,
for step 0, the shared checkpoint (a path relative to the run directory, into
``_step0/seed_K``) and the shared evaluation, with ``step0_from`` naming where they come from;
nothing is copied. Steps 1 and later are trained by the wrapped trainer as usual.
"""
import os.path as osp
from typing import Any, Callable, Dict, Sequence, Tuple

from mmdet_isal.active.ledger import PoolLedger
from mmdet_isal.active.trainer import StepJob, TrainedModel, Trainer
from mmdet_isal.strategies.base import read_image_ids

#: The file of a run directory that holds its state (the loop's ``LEDGER``).
_LEDGER = 'ledger.json'


def step0_done(run_dir: str) -> bool:
    """Whether the run in ``run_dir`` has evaluated its step 0 (its ledger says so)."""
    path = osp.join(run_dir, _LEDGER)
    return osp.isfile(path) and PoolLedger.load(path).stage_done(0, 'evaluate')


class SharedStep0Trainer(Trainer):
    """A trainer whose step 0 is a finished run's step 0; every other step is ``inner``'s.

    Args:
        inner: the trainer of the steps after the first (e.g. an
            :class:`~mmdet_isal.active.trainer.MMEngineTrainer`); it also loads the shared
            step-0 model for the strategy (:meth:`model_of`), from the checkpoint path.
        run_dir: a run directory whose ledger has step 0 trained and evaluated (the runner's
            ``DIR/_step0/seed_K``).
    """

    def __init__(self, inner: Trainer, run_dir: str):
        super().__init__()
        self.inner = inner
        self.run_dir = osp.abspath(run_dir)
        self.primary_metric = inner.primary_metric
        self.metric_names = inner.metric_names

    @property
    def log(self) -> Callable[[str], None]:
        return self.inner.log

    @log.setter
    def log(self, value: Callable[[str], None]) -> None:
        # the loop sets the log once; the wrapped trainer writes to the same place
        if hasattr(self, 'inner'):
            self.inner.log = value

    def check_checkpoints(self, checks: Sequence[Tuple[str, str]]) -> None:
        self.inner.check_checkpoints(checks)

    def _shared(self) -> Dict[str, Any]:
        """The shared run's step-0 record (checkpoint and metrics), checked to be there."""
        path = osp.join(self.run_dir, _LEDGER)
        if not step0_done(self.run_dir):
            raise RuntimeError(f'--shared-step0 {self.run_dir}: it has no evaluated step 0 '
                               f'({path}); train it first (tools/al_experiment.py does) or '
                               f'leave out --shared-step0')
        rec = PoolLedger.load(path).steps[0]
        checkpoint = osp.join(self.run_dir, rec['checkpoint'])
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'{checkpoint} (the shared step-0 checkpoint of '
                                    f'{self.run_dir}) is missing')
        return dict(rec, checkpoint=checkpoint)

    def check_ready(self, labeled_ids: Sequence[Any]) -> None:
        """Before any training: the shared run has an evaluated step 0 with its checkpoint,
        trained on exactly ``labeled_ids`` (this run's step-0 images).

        Raises:
            RuntimeError: it has no evaluated step 0.
            FileNotFoundError: its checkpoint is missing.
            ValueError: it trained on other images (another seed, pool or initial budget).
        """
        self._shared()
        shared = PoolLedger.load(osp.join(self.run_dir, _LEDGER))
        own = set(labeled_ids)
        theirs = set(shared.labeled_ids(0))
        if own != theirs:
            raise ValueError(
                f'--shared-step0 {self.run_dir} trained step 0 on other images than this run '
                f'({len(theirs)} images there, {len(own)} here, {len(own ^ theirs)} differ): '
                f'the seed, the pool or active_learning.initial differ; use the shared step 0 '
                f'of the same seed and protocol')

    def train(self, job: StepJob) -> str:
        if job.step != 0:
            return self.inner.train(job)
        shared = self._shared()
        self.check_ready(read_image_ids(job.labeled_ann_file))
        self.log(f'step_0: the shared step 0 of {self.run_dir} (checkpoint '
                 f'{shared["checkpoint"]}), not trained again')
        return shared['checkpoint']

    def evaluate(self, job: StepJob) -> Dict[str, Any]:
        if job.step != 0:
            return self.inner.evaluate(job)
        shared = self._shared()
        out = {k: shared[k] for k in ('metrics',) + tuple(self.metric_names) if k in shared}
        out['step0_from'] = osp.relpath(self.run_dir, osp.dirname(job.work_dir))
        return out

    def model_of(self, job: StepJob) -> TrainedModel:
        return self.inner.model_of(job)

    def release(self) -> None:
        self.inner.release()
