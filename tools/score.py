"""Score an unlabeled pool with ISAL from a trained checkpoint.

    python tools/score.py CONFIG CHECKPOINT --unlabeled ANN [--reference ANN] [--labeled ANN] \
        --out scores.json [--budget N] [--seed S] [--check-images {header,decode,none}]
        [--cfg-options k=v ...] [--launcher pytorch]
    tools/dist_score.sh CONFIG CHECKPOINT N --unlabeled ANN --out scores.json   # N processes

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
    parser.add_argument('--reference', help="annotations of the reference set (default: the "
                        "config's val_dataloader.dataset.ann_file)")
    parser.add_argument('--labeled', help='annotations of the labeled set (default: the '
                        "config's train_dataloader.dataset.ann_file)")
    parser.add_argument('--out', required=True, help='scores JSON to write')
    parser.add_argument('--budget', type=int, default=None,
                        help='images to select into selection.json (default: rank all)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default=None,
                        help='e.g. cpu or cuda:0 (default: cuda:LOCAL_RANK if CUDA, else cpu)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='pytorch: started by torchrun (tools/dist_score.sh); slurm: srun')
    parser.add_argument('--check-images', choices=['header', 'decode', 'none'], default='header',
                        help='how the images are checked before scoring: headers and file ends '
                             '(default), every pixel (cached), or not at all')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, e.g. active_learning.scorer.repeats=1')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'error: {what} file not found: {path}')
    import torch

    from mmdet_isal.apis import load_detector, score_from_config
    from mmdet_isal.datasets import AnnotationError, ImageLoadError
    from mmdet_isal.detection import ScorerOptions
    from mmengine.dist import is_main_process

    from mmdet_isal.utils.dist import exit_on_failure, init_distributed
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    try:  # parsed once, before the model is loaded: a misspelt or out-of-range option
        scorer = ScorerOptions.from_dict(cfg.get('active_learning', {}).get('scorer'),
                                         where='active_learning.scorer')
    except ValueError as e:
        sys.exit(f'score.py: error: {e}')
    init_distributed(args.launcher)
    device = args.device or (f'cuda:{torch.cuda.current_device()}' if torch.cuda.is_available()
                             else 'cpu')
    with exit_on_failure():
        model = load_detector(cfg, args.checkpoint, device=device)
        try:
            result = score_from_config(
                model, cfg, out=args.out, unlabeled=args.unlabeled, reference=args.reference,
                labeled=args.labeled, budget=args.budget, seed=args.seed, scorer=scorer,
                check_images=None if args.check_images == 'none' else args.check_images)
        except (FileNotFoundError, AnnotationError, ImageLoadError) as e:
            # a missing or malformed annotation file or image: found before any scoring (or,
            # an image that fails to load while scoring), named
            sys.exit(f'score.py: error: {e}')
    if is_main_process():
        print(f'wrote {result.paths["scores"]} and {result.paths["selection"]}')


if __name__ == '__main__':
    main()
