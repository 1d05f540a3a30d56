"""A dataset wrapper registered into mmdet's ``DATASETS``: repeat a small training set to a
minimum length, so that a schedule in epochs gives a small labeled set enough iterations.

An active-learning step trains on a few hundred images; with a schedule of 14 epochs that is
a few hundred iterations, and the detector is left undertrained at the small sizes only, which
bends the learning curve at the start (measured on the shapes set: 300 images, 14 epochs, bbox
mAP 0.094; the same images for 40 epochs, 0.133). Wrapping the training set in
``RepeatToMinLength(min_length=N)`` makes every epoch at least ``N`` samples long (the set is
repeated a whole number of times), so that a set of any size gets at least
``epochs x N / batch size`` iterations, and a set of ``N`` images or more trains exactly as
without the wrapper. Epoch-based schedulers see the longer epoch (their ``convert_to_iter_based``
uses the data loader's length), so the schedule keeps its shape.
"""
import math

from mmdet.registry import DATASETS
from mmengine.dataset import RepeatDataset

from ..influence.checks import check_int


@DATASETS.register_module()
class RepeatToMinLength(RepeatDataset):
    """``dataset`` repeated ``ceil(min_length / len(dataset))`` times (at least once).

    Args:
        dataset: the wrapped data set (a config dict or a built data set).
        min_length: the least number of samples of the wrapper, >= 1.
        lazy_init: load the annotations only when first needed.
    """

    def __init__(self, dataset, min_length: int, lazy_init: bool = False):
        check_int(min_length, 'min_length', minimum=1, owner='RepeatToMinLength')
        self.min_length = min_length
        super().__init__(dataset, times=1, lazy_init=True)
        if not lazy_init:
            self.full_init()

    def full_init(self):
        if self._fully_initialized:
            return
        self.dataset.full_init()
        # an empty data set stays empty (the Runner then refuses it, naming the file)
        self.times = max(1, math.ceil(self.min_length / max(len(self.dataset), 1)))
        super().full_init()
