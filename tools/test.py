"""Evaluate a trained checkpoint of a config (an mmdet detector, or mmdet_isal's ImageClassifier)
with its ``test_dataloader`` and ``test_evaluator`` (mmdet's tools/test.py flags).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm}]

E.g. a classifier of an active-learning run graded on the test split, with its predictions
also corrected from the class mix it trained on to equal class shares:

    python tools/test.py work_dirs/cls/step_2/config.py work_dirs/cls/step_2/epoch_12.pth \\
        --cfg-options "test_evaluator.target_prior=[1,1,1,1,1,1,1,1]"

Prints the metrics (also in the work dir's log). The checkpoint is loaded with torch's
``weights_only=True`` (mmdet_isal allows the types mmengine's checkpoints hold).
"""
import argparse
import json
import os.path as osp
import sys


def parse_args(argv=None):
    from mmdet_isal.apis import add_runner_arguments, parse_runner_args
    parser = argparse.ArgumentParser(description='Evaluate a trained detector or classifier.')
    parser.add_argument('config', help='config file path (e.g. a step\'s config.py)')
    parser.add_argument('checkpoint', help='checkpoint file')
    add_runner_arguments(parser, 'the dir to save logs in (default: work_dirs/<config name>)')
    return parse_runner_args(parser, argv)


def main(argv=None):
    """Returns the metrics (a dict, plain numbers where they are numbers)."""
    args = parse_args(argv)
    from mmdet_isal.apis import build_runner, load_config
    from mmdet_isal.datasets import AnnotationError, ImageLoadError, explain_image_failures
    from mmdet_isal.utils.dist import exit_on_failure

    if not osp.isfile(args.checkpoint):
        sys.exit(f'test.py: error: checkpoint {args.checkpoint} does not exist')
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    missing = [k for k in ('test_dataloader', 'test_evaluator', 'test_cfg')
               if cfg.get(k) is None]
    if missing:
        sys.exit(f'test.py: error: {args.config} has no {", ".join(missing)}; a config to test '
                 f'needs test_dataloader, test_evaluator and test_cfg (e.g. test_cfg = dict())')
    cfg.load_from = args.checkpoint
    try:
        with exit_on_failure(), explain_image_failures('testing'):
            metrics = build_runner(cfg, launcher=args.launcher).test() or {}
    except (ImageLoadError, AnnotationError, ValueError) as e:
        # an image that does not load, a bad annotation file, or an evaluator's check (e.g. a
        # target_prior of another number of classes): one message, not a traceback
        sys.exit(f'test.py: error: {e}')
    plain = {k: float(v) if isinstance(v, (int, float)) else str(v) for k, v in metrics.items()}
    print(json.dumps(plain, indent=1))
    return plain


if __name__ == '__main__':
    main()
