"""Image classification with mmengine, the task the paper's main results are on: a list-file
dataset (:mod:`.data`), a ResNet classifier (:mod:`.model`), its accuracy metric
(:mod:`.metric`) and the pretraining of a backbone for the detectors (:mod:`.pretrain`).

Importing the package registers the dataset, the transform, the model and the metric in mmdet's
registries. The active-learning loop's classification task is in :mod:`.task` (the list-file
pool :mod:`.pool`, the accuracy trainer :mod:`.trainer`, the strategies :mod:`.strategies` on
the classifier's outputs :mod:`.outputs`, ISAL's influence :mod:`.influence`); they import the
loop's modules, so :mod:`mmdet_isal` imports them after the rest of the package.
"""
from .data import ClassificationListDataset, PackClassificationInputs, read_label_list
from .metric import ClassificationAccuracy
from .model import ImageClassifier

__all__ = ['ClassificationListDataset', 'PackClassificationInputs', 'read_label_list',
           'ClassificationAccuracy', 'ImageClassifier']
