"""mmdet-isal: influence-based active learning (ISAL, ICCV 2021) for MMDetection 3.x.

Importing the package checks the OpenMMLab versions, lets torch's ``weights_only`` loader read
mmengine checkpoints, and registers the package's components (``ISALHook`` into mmdet's HOOKS,
strategies into :data:`mmdet_isal.registry.STRATEGIES`), so that a config needs only
``custom_imports=dict(imports=['mmdet_isal'], allow_failed_imports=False)``; the image
classifier, its dataset and metric go into mmdet's registries too.
"""
from .utils.compat import check_dependencies
from .version import __version__

check_dependencies()

from .utils.checkpoint import register_checkpoint_safe_globals  # noqa: E402

register_checkpoint_safe_globals()

from . import classification, engine, models, strategies  # noqa: E402,F401  (registration)
from .datasets import samplers, wrappers  # noqa: E402,F401  (registration)
# the loop's image classification task (mmdet_isal.active.task) and its strategies
from .classification import strategies as _cls_strategies, task as _cls_task  # noqa: E402,F401

__all__ = ['__version__']
