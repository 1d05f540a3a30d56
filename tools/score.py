"""Score an unlabeled pool with ISAL from a trained checkpoint.

    python tools/score.py CONFIG CHECKPOINT --unlabeled ANN --reference ANN [--labeled ANN] \
        --out scores.json [--budget N] [--seed S] [--cfg-options k=v ...]

Writes ``--out`` (per image: influence, number of pseudo boxes) and ``selection.json`` next to
it, in the format of ``ISALHook``. Annotation paths are relative to the data set's data_root
unless absolute.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the mmdet config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint file (.pth) written by mmengine')
    parser.add_argument('--unlabeled', required=True, help='annotations of the pool to score')
    parser.add_argument('--reference', required=True, help='annotations of the reference set')
    parser.add_argument('--labeled', help='annotations of the labeled set (default: the '
                        "config's train_dataloader.dataset.ann_file)")
    parser.add_argument('--out', required=True, help='scores JSON to write')
    parser.add_argument('--budget', type=int, default=None,
                        help='images to select into selection.json (default: rank all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, e.g. active_learning.scorer.repeats=1')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'error: {what} file not found: {path}')
    from mmdet_isal.apis import load_detector, score_from_config
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    model = load_detector(cfg, args.checkpoint, device=args.device)
    paths = score_from_config(model, cfg, out=args.out, unlabeled=args.unlabeled,
                              reference=args.reference, labeled=args.labeled,
                              budget=args.budget, seed=args.seed)
    print(f'wrote {paths["scores"]} and {paths["selection"]}')


if __name__ == '__main__':
    main()
