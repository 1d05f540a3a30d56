"""How fast ISAL scoring is, side by side with plain inference and the per-image method.

:func:`run_benchmark` builds one detector (random weights or a checkpoint), writes synthetic
shapes images at the requested size and measures, on the same images in one run:

- ``t_infer``: plain mmdet inference (``model.test_step`` under ``torch.no_grad``) over the N
  pool images, in batches of ``batch_size``;
- ``t_score``: ISAL's single pass over the same images,
  :func:`~mmdet_isal.detection.scoring.pool_influences` as ``score_pool`` runs it (one forward
  gives pseudo-labels and per-image losses, one backward to the selected layers' outputs gives
  every ``∇θ l(z) · s_test`` of the batch; ``score_mode`` and ``loss_path`` in the result);
- ``t_naive``: the authors' per-image method: an inference pass, then for every image alone a
  batch of one with its detections as targets, its loss, ``torch.autograd.grad`` over the
  selected parameters and a dot product with ``s_test``. These three are timed in turn, round
  after round (``repeats`` rounds), so that the ratios compare runs under the same load;
- ``t_lissa_iter`` / ``t_train_step``: one LiSSA iteration (one Hessian-vector product on a
  batch of ``hessian_batch_size`` labeled images, as ``score_pool`` runs it, with the batch's
  backbone features in the :class:`~mmdet_isal.detection.FeatureCache`: LiSSA draws every
  Hessian batch ``repeats`` times and more) against one mmdet training step
  (``model.train_step``: forward, backward through the whole network, SGD, on a copy of the
  model in train mode) on the same pre-collated batch; ``t_lissa_iter_uncached`` is the
  iteration that computes the features (a batch's first draw). These three are timed in
  turn, round after round (3 × ``repeats`` rounds), so that they see the same load;
- ``peak_mem_n`` / ``peak_mem_4n``: peak resident memory while scoring N and 4N images, each
  in a fresh child process (see :func:`peak_scoring_memory`).

Times are CPU seconds of this process (``time.process_time``), the minimum over the rounds:
on a machine shared with other jobs, wall-clock time measures the neighbours as much as
the code, while the process's own CPU time barely moves (run with one thread,
``OMP_NUM_THREADS=1``, so that CPU time is also the time to wait). Wall-clock minima are
reported alongside (``*_wall``). On CUDA, CPU time is not the cost: there compare the wall
times.
"""
import copy
import math
import multiprocessing
import os.path as osp
import re
import tempfile
import time
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import mmdet
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.structures import InstanceData

from .datasets import SHAPES_CLASSES, make_shapes_dataset
from .detection import (BatchSequence, FeatureCache, PseudoLabeler, build_scoring_dataset,
                        detector_spec, parameter_preset, per_image_losses, pool_influences)
from .influence import InfluenceScorer, LiSSA, restrict_grad
from .influence.checks import check_int

#: name -> config, default network input size (H, W), and config changes beyond the data. A
#: config ``mmdet::...`` ships with the installed mmdet; the others are paths relative to the
#: repository's ``configs/``, which is not installed with the package: the caller says where it
#: is (``configs_dir``; ``tools/benchmark.py`` passes the repository's).
MODELS = {
    'tiny-fcos': dict(config='toy/fcos_shapes.py', image_size=(128, 128), model={}),
    'tiny-faster-rcnn': dict(config='toy/faster_rcnn_shapes.py', image_size=(128, 128),
                             model={}),
    'fcos-r50': dict(config='mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
                     image_size=(320, 320),
                     model={'model.backbone.init_cfg': None,
                            'model.bbox_head.num_classes': len(SHAPES_CLASSES)}),
    'faster-rcnn-r50': dict(config='mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
                            image_size=(320, 320),
                            model={'model.backbone.init_cfg': None,
                                   'model.roi_head.bbox_head.num_classes': len(SHAPES_CLASSES)}),
}

#: the targets of issue 9: key -> (comparison, bound)
TARGETS = {
    'score_over_infer': ('<=', 1.3),
    'naive_over_score': ('>=', 2.0),
    'mem_4n_over_n': ('<=', 1.1),
    'lissa_over_train': ('<=', 0.6),
}

POOL_ANN = 'annotations/instances_val.json'      # the N scored images
LARGE_ANN = 'annotations/instances_train.json'   # 4N images: the memory run, labeled batches


def config_path(name: str, configs_dir: Optional[str] = None) -> str:
    """The config file of model ``name`` of :data:`MODELS`: inside the installed mmdet, or
    under ``configs_dir`` (the repository's ``configs/``)."""
    if name not in MODELS:
        raise ValueError(f'unknown benchmark model {name!r}; choose one of {sorted(MODELS)}')
    path = MODELS[name]['config']
    if path.startswith('mmdet::'):  # a config shipped inside the installed mmdet package
        return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', path[len('mmdet::'):])
    if configs_dir is None:
        raise ValueError(f'benchmark model {name!r} is configs/{path} of the mmdet-isal '
                         f'repository, which is not installed with the package: pass '
                         f'configs_dir=<repository>/configs (tools/benchmark.py does)')
    full = osp.join(configs_dir, path)
    if not osp.isfile(full):
        raise FileNotFoundError(f'benchmark model {name!r}: no config {full}; configs_dir '
                                f'must be the mmdet-isal repository\'s configs/ folder')
    return full


def benchmark_config(name: str, data_root: str, image_size: Tuple[int, int],
                     detections: Optional[int] = None,
                     configs_dir: Optional[str] = None) -> Config:
    """The config of model ``name`` of :data:`MODELS` pointed at synthetic data in
    ``data_root``, every pipeline resizing to exactly ``image_size`` = (H, W).

    ``detections``: if given, the model's test-time output is its ``detections`` best boxes of
    every image whatever their scores (``score_thr`` 0): random weights score below any
    threshold, and a loss without targets is cheaper than a trained model's.
    ``configs_dir``: the repository's ``configs/`` (see :func:`config_path`)."""
    path = config_path(name, configs_dir)
    spec = MODELS[name]
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(spec['model'])
    if detections is not None:
        test_cfg = cfg.model.test_cfg.get('rcnn', cfg.model.test_cfg)
        test_cfg.update(score_thr=0.0, max_per_img=detections)
    height, width = image_size
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = cfg[loader].dataset
        while 'dataset' in dataset:  # RepeatDataset and the like
            dataset = dataset.dataset
        dataset.data_root = data_root.rstrip('/') + '/'
        dataset.ann_file = POOL_ANN
        dataset.data_prefix = dict(img='images/')
        dataset.metainfo = dict(classes=SHAPES_CLASSES)
        for step in dataset.pipeline:
            if step['type'] == 'Resize':
                step.update(scale=(width, height), keep_ratio=False)
    return cfg


def build_detector(cfg: Config, checkpoint: Optional[str] = None, seed: int = 0):
    """The detector of ``cfg`` in eval mode: ``checkpoint``'s weights, or random weights from
    ``seed`` (mmdet's own initialisation, no pretrained download)."""
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import load_checkpoint
    register_all_modules(init_default_scope=True)
    torch.manual_seed(seed)
    model = MMDET_MODELS.build(cfg.model)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu')
    else:
        model.init_weights()
    return model.eval()


def _timed(fn: Callable[[], object]) -> Tuple[float, float, object]:
    """``(CPU seconds of this process, wall-clock seconds, result)`` of one call of ``fn``."""
    start, start_wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - start, time.perf_counter() - start_wall, result


def _interleaved_best(result: dict, steps: Dict[str, Callable[[], object]],
                      rounds: int) -> Dict[str, object]:
    """Run every step once per round, in turn, for ``rounds`` rounds; write into ``result``
    each step's minimum CPU seconds (``key``) and wall-clock seconds (``key_wall``); return
    each step's last output."""
    outputs = {}
    for key in steps:
        result[key] = result[f'{key}_wall'] = math.inf
    for _ in range(rounds):
        for key, step in steps.items():
            cpu, wall, outputs[key] = _timed(step)
            result[key] = min(result[key], cpu)
            result[f'{key}_wall'] = min(result[f'{key}_wall'], wall)
    return outputs


def infer(model, batches) -> List[object]:
    """Plain mmdet inference over ``batches``: the predicted data samples, in order."""
    out = []
    with torch.no_grad():
        for batch in batches:
            out.extend(model.test_step(batch))
    return out


def naive_scores(model, params: Dict[str, torch.nn.Parameter], dataset, s_test,
                 score_thr: float, seed: int, batch_size: int) -> torch.Tensor:
    """The authors' per-image method: inference over ``dataset`` in batches, then for every
    image alone (read again, batch of one) its loss with its detections above ``score_thr``
    as targets, ``torch.autograd.grad`` over ``params`` and ``− grad · s_test``.

    Detections come back from ``test_step`` in original-image coordinates; they are scaled
    into network-input coordinates as ``LoadAnnotations`` + ``Resize`` would scale boxes read
    from a file, so the targets are ISAL's pseudo-labels.
    """
    labeler = PseudoLabeler(score_thr)
    preds = infer(model, BatchSequence(dataset, batch_size))
    tensors = list(params.values())
    out = []
    with restrict_grad(model, tensors):
        for k, pred in enumerate(preds):
            batch = pseudo_collate([dataset[k]])
            sample = batch['data_samples'][0]
            targets = labeler(pred.pred_instances)
            sx, sy = sample.metainfo['scale_factor']
            scale = targets.bboxes.new_tensor([sx, sy, sx, sy])
            sample.gt_instances = InstanceData(bboxes=targets.bboxes * scale,
                                               labels=targets.labels)
            sample.ignored_instances = sample.gt_instances[:0]
            loss = per_image_losses(model, batch, seed=seed)[0]
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            out.append(-sum((g * s).sum() for g, s in zip(grads, s_test) if g is not None))
    return torch.stack(out).detach()


def _rss_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(rf'{field}:\s+(\d+)', f.read()).group(1))


def _memory_child(cfg_text: str, state_path: str, ann_file: str, batch_size: int,
                  score_thr: float, seed: int, queue) -> None:
    torch.set_num_threads(1)
    cfg = Config.fromstring(cfg_text, '.py')
    model = build_detector(cfg)
    model.load_state_dict(torch.load(state_path, weights_only=True))
    saved = torch.load(state_path + '.s_test', weights_only=True)
    params = dict(zip(saved['names'], [dict(model.named_parameters())[n] for n in saved['names']]))
    batches = BatchSequence(build_scoring_dataset(cfg, ann_file, False), batch_size)
    before = _rss_kb('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:  # resets VmHWM to the current RSS
        f.write('5')
    scores, _, _ = pool_influences(model, params, batches, saved['s_test'],
                                   score_thr=score_thr, seed=seed)
    queue.put(dict(peak=_rss_kb('VmHWM') * 1024, before=before * 1024, images=len(scores)))


def peak_scoring_memory(cfg: Config, model, names: Sequence[str], s_test, ann_file: str,
                        batch_size: int, score_thr: float, seed: int, work_dir: str) -> dict:
    """Peak resident memory (bytes) of a fresh process while it scores ``ann_file``.

    The child builds the model and data, resets the kernel's RSS high-water mark
    (``/proc/self/clear_refs``), scores, and reports ``VmHWM``: the peak RSS of the scoring
    itself, which includes the resident model, libraries and data already loaded
    (``before``: the RSS at the reset). Linux only.
    """
    state_path = osp.join(work_dir, 'state.pth')
    torch.save(model.state_dict(), state_path)
    torch.save(dict(names=list(names), s_test=list(s_test)), state_path + '.s_test')
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    child = ctx.Process(target=_memory_child, args=(cfg.pretty_text, state_path, ann_file,
                                                     batch_size, score_thr, seed, queue))
    child.start()
    try:
        result = queue.get(timeout=3600)
    finally:
        child.join()
    if child.exitcode != 0:
        raise RuntimeError(f'the memory child process for {ann_file} exited with '
                           f'{child.exitcode}')
    return result


def run_benchmark(name: str, num_images: int, image_size: Optional[Tuple[int, int]] = None,
                  checkpoint: Optional[str] = None, batch_size: int = 8,
                  hessian_batch_size: int = 8, repeats: int = 3, score_thr: float = 0.1,
                  seed: int = 0, work_dir: Optional[str] = None, memory: bool = True,
                  detections: Optional[int] = None, log: Callable[[str], None] = print,
                  configs_dir: Optional[str] = None) -> dict:
    """Measure model ``name`` of :data:`MODELS` on ``num_images`` synthetic images.

    Args:
        name: a key of :data:`MODELS`.
        num_images: N, the images scored and inferred (≥ 1); the memory run also scores 4N.
        image_size: network input (H, W); default the model's (:data:`MODELS`).
        checkpoint: weights to load; default random weights from ``seed``.
        batch_size: images per batch of inference and scoring.
        hessian_batch_size: images of the batch of the LiSSA iteration and the training step.
        repeats: every time is the best of this many runs (≥ 1).
        score_thr: the pseudo-label threshold.
        seed: synthetic images, random weights, samplers.
        work_dir: where the images go (default: a temporary folder, removed afterwards).
        memory: also measure ``peak_mem_n`` / ``peak_mem_4n`` (two child processes).
        detections: see :func:`benchmark_config`; with it every detection is a pseudo-box
            (``score_thr`` becomes 0).
        log: called with each progress line.
        configs_dir: the repository's ``configs/``, for the tiny models (:func:`config_path`).

    Returns:
        A dict with the times (CPU seconds; ``*_wall``: wall-clock seconds), peaks (bytes),
        the ratios of :data:`TARGETS` (of CPU times),
        ``pseudo_boxes_per_image`` and ``naive_max_rel_diff`` (the largest difference between
        the per-image method's influences and ISAL's, relative to ISAL's largest magnitude:
        both compute the same numbers).
    """
    check_int(num_images, 'num_images', minimum=1)
    check_int(repeats, 'repeats', minimum=1)
    config_path(name, configs_dir)  # an unknown name or a missing config fails first
    image_size = tuple(image_size or MODELS[name]['image_size'])
    if len(image_size) != 2 or min(image_size) < 32:
        raise ValueError(f'image_size must be (H, W) with both >= 32, got {image_size!r}')
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix='isal_bench_') as tmp:
            return run_benchmark(name, num_images, image_size, checkpoint, batch_size,
                                 hessian_batch_size, repeats, score_thr, seed, tmp, memory,
                                 detections, log, configs_dir)
    data_root = osp.join(work_dir, 'data')
    make_shapes_dataset(data_root, seed=seed, num_train=max(4 * num_images, hessian_batch_size),
                        num_val=num_images, image_size=min(max(image_size), 1024))
    cfg = benchmark_config(name, data_root, image_size, detections, configs_dir)
    if detections is not None:
        score_thr = 0.0
    model = build_detector(cfg, checkpoint, seed)
    names = parameter_preset(model)
    params = {n: dict(model.named_parameters())[n] for n in names}
    pool_ds = build_scoring_dataset(cfg, POOL_ANN, False)
    pool = BatchSequence(pool_ds, batch_size)
    labeled = BatchSequence(build_scoring_dataset(cfg, LARGE_ANN, True), hessian_batch_size,
                            list(range(hessian_batch_size)))
    hessian_batch = labeled[0]

    # s_test as score_pool gets it, on a small problem: the mean ground-truth gradient of the
    # pool images, and LiSSA over the labeled batch (its values do not change the timings)
    reference = BatchSequence(build_scoring_dataset(cfg, POOL_ANN, True), batch_size)
    gt_scorer = InfluenceScorer(model, params, partial(per_image_losses, seed=seed),
                                LiSSA(damping=0.01, scale='auto', depth=2, repeats=1, seed=seed,
                                      power_iters=3))
    v = gt_scorer.reference_gradient(reference, reduction='mean')
    s_test = gt_scorer.inverse_hvp(v, [hessian_batch])
    log(f'{name}: {num_images} images of {image_size[0]}x{image_size[1]}, '
        f'{sum(p.numel() for p in params.values())} selected parameters')

    result = dict(model=name, images=num_images, image_size=list(image_size),
                  checkpoint=checkpoint, detections=detections, score_thr=score_thr,
                  batch_size=batch_size,
                  hessian_batch_size=hessian_batch_size, repeats=repeats,
                  threads=torch.get_num_threads(), device='cpu')
    # interleaved: a CPU's speed drifts over minutes (this machine's by tens of percent)
    outputs = _interleaved_best(result, dict(
        t_infer=lambda: infer(model, pool),
        t_score=lambda: pool_influences(model, params, pool, s_test, score_thr=score_thr,
                                        seed=seed),
        t_naive=lambda: naive_scores(model, params, pool_ds, s_test, score_thr, seed,
                                     batch_size)), repeats)
    ours, records, result['score_mode'] = outputs['t_score']
    naive = outputs['t_naive']
    result['loss_path'] = detector_spec(model).loss_path(model)
    log(f'  t_infer {result["t_infer"]:.3f} s, t_score {result["t_score"]:.3f} s, '
        f't_naive {result["t_naive"]:.3f} s')
    # the three short steps interleaved, 3 x repeats rounds: each round sees the same load
    scorers = {key: InfluenceScorer(model, params, partial(per_image_losses, seed=seed,
                                                           feature_cache=cache), LiSSA())
               for key, cache in (('t_lissa_iter_uncached', FeatureCache(0)),
                                  ('t_lissa_iter', FeatureCache()))}
    products = [scorer.hvp(s_test, [hessian_batch]) for scorer in scorers.values()]
    if not all(torch.equal(a, b) for a, b in zip(*products)):  # the cache changes no number
        raise RuntimeError('the Hessian-vector product differs with the feature cache')
    trainee = copy.deepcopy(model).train()
    optim = OptimWrapper(torch.optim.SGD(trainee.parameters(), lr=1e-5, momentum=0.9))
    rounds = 3 * repeats
    train_batches = [copy.deepcopy(hessian_batch) for _ in range(rounds)]  # outside the clock
    steps = {key: partial(scorer.hvp, s_test, [hessian_batch]) for key, scorer in scorers.items()}
    steps['t_train_step'] = lambda: trainee.train_step(train_batches.pop(), optim)
    _interleaved_best(result, steps, rounds)
    log(f'  t_lissa_iter {result["t_lissa_iter"]:.3f} s (uncached '
        f'{result["t_lissa_iter_uncached"]:.3f} s), t_train_step '
        f'{result["t_train_step"]:.3f} s')
    result['pseudo_boxes_per_image'] = float(np.mean([r['num_targets'] for r in records]))
    finite = torch.isfinite(ours)
    magnitude = float(ours[finite].abs().max()) if finite.any() else 0.0
    result['naive_max_rel_diff'] = (float((naive - ours)[finite].abs().max()) / magnitude
                                    if magnitude > 0 else 0.0)
    if memory:
        for key, ann in (('n', POOL_ANN), ('4n', LARGE_ANN)):
            peak = peak_scoring_memory(cfg, model, names, s_test, ann, batch_size, score_thr,
                                       seed, work_dir)
            result[f'peak_mem_{key}'] = peak['peak']
            result[f'mem_before_{key}'] = peak['before']
            log(f'  peak_mem_{key} {peak["peak"] / 2**20:.0f} MiB ({peak["images"]} images)')
        result['mem_4n_over_n'] = result['peak_mem_4n'] / result['peak_mem_n']
    result['score_over_infer'] = result['t_score'] / result['t_infer']
    result['naive_over_score'] = result['t_naive'] / result['t_score']
    result['lissa_over_train'] = result['t_lissa_iter'] / result['t_train_step']
    result['targets'] = {key: f'{op} {bound}' for key, (op, bound) in TARGETS.items()}
    return result


def format_table(result: dict) -> str:
    """A plain-text table of the times, peaks and ratios against :data:`TARGETS`."""
    rows = [('t_infer', 's'), ('t_score', 's'), ('t_naive', 's'), ('t_lissa_iter', 's'),
            ('t_lissa_iter_uncached', 's'), ('t_train_step', 's'), ('peak_mem_n', 'MiB'),
            ('peak_mem_4n', 'MiB'),
            ('score_over_infer', ''), ('naive_over_score', ''), ('lissa_over_train', ''),
            ('mem_4n_over_n', ''), ('pseudo_boxes_per_image', ''), ('naive_max_rel_diff', '')]
    lines = [f'{result["model"]}, {result["images"]} images of '
             f'{result["image_size"][0]}x{result["image_size"][1]}, batch '
             f'{result["batch_size"]}, best of {result["repeats"]}, CPU seconds (wall)',
             f'{"key":<24}{"value":>12}  target']
    for key, unit in rows:
        if key not in result:
            continue
        value = result[key] / 2**20 if unit == 'MiB' else result[key]
        target = ''
        if key in TARGETS:
            op, bound = TARGETS[key]
            met = value <= bound if op == '<=' else value >= bound
            target = f'{op} {bound}  {"met" if met else "NOT met"}'
        text = f'{value:.4g}' if key != 'naive_max_rel_diff' else f'{value:.2e}'
        if f'{key}_wall' in result:
            target = f'({result[key + "_wall"]:.4g} s wall)'
        lines.append(f'{key:<24}{text + (" " + unit if unit else ""):>12}  {target}')
    return '\n'.join(lines)
