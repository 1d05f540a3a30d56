"""The image classification task of the active-learning loop (:mod:`mmdet_isal.active.task`):
a pool of "file label" lines (:class:`~.pool.ListPool`), a
:class:`~.trainer.ClassifierTrainer` (accuracy), and the strategies on the classifier's
outputs (:mod:`.strategies`). Registered for ``ClassificationListDataset`` when
:mod:`mmdet_isal` is imported.
"""
import copy
from typing import Any, Dict, Union

from mmdet_isal.active.subsets import pool_dataset_cfg
from mmdet_isal.active.task import Task, register_task
from mmdet_isal.classification.pool import build_list_pool
from mmdet_isal.classification.trainer import ClassifierTrainer
from mmdet_isal.registry import STRATEGIES

__all__ = ['ClassificationTask', 'STRATEGY_TYPES']

#: The strategy names of a classification run and the registered classes they build: the
#: classifier's own where a strategy reads model outputs, the shared ones otherwise.
STRATEGY_TYPES = {
    'isal': 'classifier_isal',
    'entropy': 'classifier_entropy',
    'least_confidence': 'classifier_least_confidence',
    'coreset': 'classifier_coreset',
    'random': 'random',
    'matched_random': 'matched_random',
}


class ClassificationTask(Task):
    """Image classification: list-file pools, accuracy, the classifier's strategies."""
    name = 'classification'
    labels_are_boxes = False

    def build_pool(self, dataset_cfg, check_images):
        return build_list_pool(dataset_cfg, check_images=check_images)

    def check_inputs(self, cfg, pool, reference, check_images):
        """The validation (evaluation) set's list file and images, and the reference set's
        list file (its images are the pool's directory's: the reference pass reads them
        there)."""
        build_list_pool(cfg.val_dataloader.dataset, check_images=check_images)
        if reference != pool.ann_file:
            # the pool's data set inside any wrapper (RepeatToMinLength, ...), on the reference
            dataset = pool_dataset_cfg(copy.deepcopy(cfg.train_dataloader.dataset))
            build_list_pool(dict(dataset, ann_file=reference), check_images=check_images)

    def check_active_learning(self, al):
        if al.manual:
            raise ValueError("active_learning.annotator='manual' is for detection pools (COCO "
                             "files without boxes); a classification run is simulated: the "
                             "list file's labels are revealed when an image is picked")

    def trainer(self, cfg, seed, launcher, finetune_cfg):
        return ClassifierTrainer(cfg, seed=seed, launcher=launcher, finetune_cfg=finetune_cfg)

    def strategy_class(self, name: str):
        """The classifier's strategy class of ``name`` (ValueError for a strategy that needs
        detections)."""
        return STRATEGIES.get(translate(name)['type'])

    def build_strategy(self, strategy: Union[str, Dict[str, Any]]):
        """The classifier's strategy of ``strategy`` (:data:`STRATEGY_TYPES`; also in
        ``matched_random``'s inner strategy).

        Raises:
            ValueError: a strategy that needs detections (e.g. ``fewest_detections``), or an
                option the classifier's strategy does not take.
        """
        spec = translate(strategy)
        try:
            return super().build_strategy(spec)
        except TypeError as e:
            raise ValueError(f'active_learning.strategy {strategy!r}: {e}; a classification '
                             f'run builds {spec["type"]} '
                             f'({STRATEGIES.get(spec["type"]).__module__})') from None


def translate(strategy: Union[str, Dict[str, Any]]) -> Dict[str, Any]:
    """``strategy`` (a name or a dict) with its type, and its inner strategy's, replaced by the
    classifier's (:data:`STRATEGY_TYPES`).

    Raises:
        ValueError: the name has no classification strategy, naming those that have one.
    """
    spec = dict(type=strategy) if isinstance(strategy, str) else copy.deepcopy(dict(strategy))
    name = spec['type']
    if name not in STRATEGY_TYPES and name not in STRATEGY_TYPES.values():
        raise ValueError(f'active_learning.strategy {name!r} has no classification version '
                         f'(it reads a detector\'s outputs); a classification run takes '
                         f'{", ".join(STRATEGY_TYPES)}')
    spec['type'] = STRATEGY_TYPES.get(name, name)
    if spec['type'] == 'matched_random':
        spec['strategy'] = translate(spec.get('strategy', 'isal'))
    return spec


TASK = register_task(ClassificationTask(), ('ClassificationListDataset',))
