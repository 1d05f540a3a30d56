"""The classifier's pool pass on 2 processes (gloo): each classifies its share of the images and
every process ends with the outputs of all of them, in file order, equal to one process's."""
import os.path as osp

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmdet.registry import MODELS
from mmengine.config import Config

from mmdet_isal.classification.outputs import classify_list
from mmdet_isal.datasets import make_shapes_classification

# two spawned processes with a process group each: about 20 s of start-up
pytestmark = pytest.mark.slow

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'classification', 'resnet18_shapes.py')


def _classify(root):
    """A tiny classifier (seeded weights) over the 13 train images, 4 per batch (uneven
    shares: 6 and 7 images, the last batches partial)."""
    import mmdet_isal  # noqa: F401  (registers the classifier and its data set)
    cfg = Config.fromfile(CONFIG)
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = root
    cfg.model.backbone.base_channels = 4
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    return classify_list(model, cfg, osp.join(root, 'train.txt'), batch_size=4)


def _worker(rank, world, init_file, root, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world)
    try:
        out = _classify(root)
    finally:
        dist.destroy_process_group()
    torch.save(out._asdict(), osp.join(out_dir, f'rank_{rank}.pt'))


def test_two_processes_classify_the_pool_as_one(tmp_path):
    root = str(tmp_path / 'set')
    make_shapes_classification(root, num_train=13, num_val=4, num_test=4)
    one = _classify(root)
    assert len(one.ids) == 13 and one.features.shape[0] == 13
    mp.start_processes(_worker, args=(2, str(tmp_path / 'init'), root, str(tmp_path)),
                       nprocs=2, start_method='spawn', join=True)
    for rank in (0, 1):
        got = torch.load(tmp_path / f'rank_{rank}.pt')
        assert got['ids'] == one.ids
        assert torch.equal(got['labels'], one.labels)
        torch.testing.assert_close(got['features'], one.features, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got['logits'], one.logits, rtol=1e-5, atol=1e-6)
