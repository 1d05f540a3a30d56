"""Image classification with mmengine, the task the paper's main results are on: a list-file
dataset (:mod:`.data`), a ResNet classifier (:mod:`.model`), its accuracy metric
(:mod:`.metric`) and the pretraining of a backbone for the detectors (:mod:`.pretrain`).

Importing the package registers the dataset, the transform, the model and the metric in mmdet's
registries.
"""
from .data import ClassificationListDataset, PackClassificationInputs, read_label_list
from .metric import ClassificationAccuracy
from .model import ImageClassifier

__all__ = ['ClassificationListDataset', 'PackClassificationInputs', 'read_label_list',
           'ClassificationAccuracy', 'ImageClassifier']
