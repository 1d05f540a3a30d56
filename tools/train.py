"""Train a config (an mmdet detector, or mmdet_isal's ImageClassifier), on one process or
distributed (mmdet's tools/train.py flags).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm}]
    tools/dist_train.sh CONFIG N [flags]      # N processes on this machine (torchrun)

Configs reach mmdet-isal's components (ISALHook, ...) through
``custom_imports=dict(imports=['mmdet_isal'], allow_failed_imports=False)``. Unlike mmdet's
script, ``--launcher pytorch`` also works without a GPU (gloo; see mmdet_isal.utils.dist).
"""
import argparse
import sys


def parse_args(argv=None):
    from mmdet_isal.apis import add_runner_arguments, parse_runner_args
    parser = argparse.ArgumentParser(description='Train a detector or a classifier.')
    parser.add_argument('config', help='train config file path')
    add_runner_arguments(parser, 'the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help="scale the learning rate by the config's auto_scale_lr")
    parser.add_argument('--resume', nargs='?', const='auto',
                        help='resume from CKPT, or without a value from the latest checkpoint '
                             'in the work directory')
    return parse_runner_args(parser, argv)


def main(argv=None):
    args = parse_args(argv)
    from mmdet_isal.apis import build_runner, load_config
    from mmdet_isal.datasets import AnnotationError, ImageLoadError, explain_image_failures
    from mmdet_isal.utils.dist import exit_on_failure

    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    try:
        with exit_on_failure(), explain_image_failures('training'):
            runner = build_runner(cfg, launcher=args.launcher, resume=args.resume, amp=args.amp,
                                  auto_scale_lr=args.auto_scale_lr)
            runner.train()
    except (ImageLoadError, AnnotationError) as e:
        # an image that does not load, or (an ISALHook's check before training) a bad
        # annotation file or image: one message naming it, not a traceback
        sys.exit(f'train.py: error: {e}')


if __name__ == '__main__':
    main()
