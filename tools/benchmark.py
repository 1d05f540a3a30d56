"""Time ISAL scoring against plain inference and the authors' per-image method.

    python tools/benchmark.py --model {tiny-fcos,tiny-faster-rcnn,fcos-r50,faster-rcnn-r50} \
        --images N [--image-size H W] [--checkpoint CKPT | --detections K] [--json OUT]

Writes synthetic images, builds the detector (random weights unless --checkpoint) and prints
t_infer, t_score, t_naive, t_lissa_iter, t_train_step, peak_mem_n, peak_mem_4n and their ratios
against the targets (README, "Speed"). Run with OMP_NUM_THREADS set: times are per process.
"""
import argparse
import json
import os.path as osp

from mmdet_isal.benchmark import MODELS, format_table, run_benchmark

# the tiny models' configs are this repository's, not installed with the package
CONFIGS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', required=True, choices=sorted(MODELS))
    parser.add_argument('--images', type=int, required=True, help='N, the images scored')
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='network input size (default: the model\'s)')
    parser.add_argument('--checkpoint', help='weights to load (default: random weights)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--hessian-batch-size', type=int, default=8)
    parser.add_argument('--repeats', type=int, default=3, help='each time is the best of these')
    parser.add_argument('--score-thr', type=float, default=0.1)
    parser.add_argument('--detections', type=int, metavar='K',
                        help='make the K best detections of every image its pseudo-boxes, '
                        'whatever their scores (for random weights)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-memory', action='store_true', help='skip peak_mem_n/4n')
    parser.add_argument('--json', help='write the results here')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    result = run_benchmark(args.model, args.images, args.image_size, args.checkpoint,
                           args.batch_size, args.hessian_batch_size, args.repeats,
                           args.score_thr, args.seed, memory=not args.no_memory,
                           detections=args.detections, configs_dir=CONFIGS)
    print(format_table(result))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
