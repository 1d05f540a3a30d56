"""Run under torchrun by tests/distributed/test_distributed.py (not a test module).

    torchrun --nproc_per_node N score_worker.py CONFIG CHECKPOINT OUT_DIR MODE

MODE ``score``: every process scores the pool with the exact solver and twice with LiSSA
(fixed seed); the main process writes ``OUT_DIR/exact.json`` and ``OUT_DIR/lissa_{1,2}.json``.
MODE ``fail``: process rank 1 raises before scoring while rank 0 scores (and waits in its
first collective): the job must end, naming rank 1.
"""
import json
import os.path as osp
import sys

import torch
from mmengine.config import Config
from mmengine.dist import get_rank, is_main_process

from mmdet_isal.apis import load_detector
from mmdet_isal.detection import run_isal
from mmdet_isal.utils import dist

# the biases of the FCOS head's last layers: few enough parameters for the exact solver
SCORER = dict(params=['bbox_head.conv_cls.bias', 'bbox_head.conv_reg.bias',
                      'bbox_head.conv_centerness.bias'],
              hessian_images=8, batch_size=3, hessian_batch_size=2, score_thr=0.0, damping=0.1)
LISSA = dict(SCORER, solver='lissa', damping=0.01, repeats=2, depth=3, power_iters=3)


def main(config, checkpoint, out_dir, mode):
    torch.set_num_threads(1)
    dist.init_distributed('pytorch')
    cfg = Config.fromfile(config)
    model = load_detector(cfg, checkpoint)
    with dist.exit_on_failure():
        if mode == 'fail' and get_rank() == 1:
            raise RuntimeError('injected failure on this process')
        results = dict(exact=run_isal(model, cfg, unlabeled_ann_file=cfg.pool_ann_file,
                                      scorer=dict(SCORER, solver='exact'), seed=3))
        for k in (1, 2):
            results[f'lissa_{k}'] = run_isal(model, cfg, unlabeled_ann_file=cfg.pool_ann_file,
                                             scorer=LISSA, seed=3)
    if is_main_process():
        for name, result in results.items():
            with open(osp.join(out_dir, f'{name}.json'), 'w') as f:
                json.dump(dict(scores=list(result.scores.items()), order=result.order,
                               world_size=result.diagnostics['world_size']), f)


if __name__ == '__main__':
    main(*sys.argv[1:5])
