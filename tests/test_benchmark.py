"""tools/benchmark.py on 2 tiny images: every key is written, every measure is a positive, finite
number (times are not asserted: they depend on the machine) and the per-image method computes
ISAL's influences; the package finds the repository's tiny configs only where it is told."""
import json
import math
import os.path as osp
import runpy

import pytest
import torch

from mmdet_isal.benchmark import (TARGETS, benchmark_config, build_detector, config_path,
                                  naive_scores)
from mmdet_isal.datasets import make_shapes_dataset
from mmdet_isal.detection import (BatchSequence, build_scoring_dataset, parameter_preset,
                                  pool_influences)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(REPO, 'configs')

MEASURES = ('t_infer', 't_score', 't_naive', 't_lissa_iter', 't_lissa_iter_uncached',
            't_train_step', 'peak_mem_n', 'peak_mem_4n', 'score_over_infer', 'naive_over_score',
            'lissa_over_train', 'mem_4n_over_n')


@pytest.mark.slow  # runs the tool end to end, training step included
def test_benchmark_tool_writes_every_key(tmp_path):
    out = tmp_path / 'bench.json'
    tool = runpy.run_path(osp.join(REPO, 'tools', 'benchmark.py'), run_name='tool')
    # random weights score below any threshold: 3 detections of any score per image
    tool['main'](['--model', 'tiny-fcos', '--images', '2', '--image-size', '64', '64',
                  '--repeats', '1', '--hessian-batch-size', '2', '--detections', '3',
                  '--json', str(out)])
    result = json.loads(out.read_text())
    for key in MEASURES:
        assert isinstance(result[key], (int, float)) and math.isfinite(result[key]) \
            and result[key] > 0, (key, result[key])
    assert set(TARGETS) <= set(result['targets'])
    assert result['images'] == 2 and result['image_size'] == [64, 64]
    assert result['loss_path'] == 'vectorised'  # FCOS's losses in one call per group
    # every detection became a pseudo-box, and the per-image method agreed with ISAL's pass
    assert result['pseudo_boxes_per_image'] == 3.0
    assert result['naive_max_rel_diff'] < 1e-4


def test_the_repository_configs_are_found_only_where_the_caller_says():
    with pytest.raises(ValueError, match=r"'tiny-fcos' is configs/toy/fcos_shapes.py.*"
                                         r"configs_dir"):
        config_path('tiny-fcos')
    with pytest.raises(FileNotFoundError, match='no config'):
        config_path('tiny-fcos', str(REPO))  # the repository, not its configs/
    assert config_path('tiny-fcos', CONFIGS) == osp.join(CONFIGS, 'toy', 'fcos_shapes.py')
    assert osp.isfile(config_path('fcos-r50'))  # shipped with mmdet, no configs_dir needed
    with pytest.raises(ValueError, match='unknown benchmark model'):
        config_path('yolo')


@pytest.mark.parametrize('name', ['tiny-fcos', 'tiny-faster-rcnn'])
def test_the_per_image_method_gives_isal_s_influences(name, tmp_path):
    # the baseline is only a fair one if it computes the same numbers, image by image
    make_shapes_dataset(tmp_path, seed=0, num_train=1, num_val=3, image_size=64)
    # random weights score below mmdet's test threshold: 5 detections of any score
    cfg = benchmark_config(name, str(tmp_path), (64, 64), detections=5, configs_dir=CONFIGS)
    model = build_detector(cfg, seed=0)
    params = {n: dict(model.named_parameters())[n] for n in parameter_preset(model)}
    torch.manual_seed(1)
    s_test = [torch.randn_like(p) for p in params.values()]
    dataset = build_scoring_dataset(cfg, 'annotations/instances_val.json', False)
    ours, records, mode = pool_influences(model, params, BatchSequence(dataset, 2), s_test,
                                          score_thr=0.0, seed=0)
    assert mode == 'layerwise'
    naive = naive_scores(model, params, dataset, s_test, 0.0, 0, batch_size=2)
    assert [r['num_targets'] for r in records] == [5, 5, 5]
    assert torch.allclose(naive, ours, rtol=1e-4, atol=1e-6 * float(ours.abs().max()))
