"""Every config with an active_learning block loads, its block is valid, reads back as itself
from the form the ledger stores, and its strategy builds."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

from mmdet_isal.active import ActiveLearningConfig
from mmdet_isal.registry import STRATEGIES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
AL_CONFIGS = sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                                            recursive=True)
    if 'active_learning' in open(p).read())


def test_the_toy_al_configs_exist():
    assert {'configs/toy/fcos_shapes_isal.py', 'configs/toy/fcos_shapes_random.py',
            'configs/toy/faster_rcnn_shapes_isal.py'} <= set(AL_CONFIGS)


@pytest.mark.parametrize('path', AL_CONFIGS)
def test_active_learning_block_is_valid(path):
    cfg = Config.fromfile(osp.join(REPO, path))
    al = ActiveLearningConfig.from_dict(cfg.active_learning)  # validates every key and value
    # a resumed run compares the settings the ledger stores (to_dict) with the config's
    assert ActiveLearningConfig.from_dict(al.to_dict()) == al
    strategy = al.strategy if isinstance(al.strategy, dict) else dict(type=al.strategy)
    built = STRATEGIES.build(dict(strategy, _scope_=STRATEGIES.scope))
    assert isinstance(built, STRATEGIES.get(al.strategy_name))


def test_random_toy_config_differs_from_isal_only_in_strategy():
    isal = Config.fromfile(osp.join(REPO, 'configs/toy/fcos_shapes_isal.py'))
    rand = Config.fromfile(osp.join(REPO, 'configs/toy/fcos_shapes_random.py'))
    assert rand.active_learning.strategy == 'random'
    rand.active_learning.strategy = 'isal'
    assert rand.to_dict() == isal.to_dict()
