"""Run active learning on an mmdet config with an ``active_learning = dict(...)`` block.

    python tools/al_loop.py CONFIG [--work-dir DIR] [--cfg-options k=v ...] [--resume]
        [--annotations FILE [--skipped FILE]] [--launcher {none,pytorch,slurm}]
        [--shared-step0 RUN_DIR]
    tools/dist_al_loop.sh CONFIG N [flags]            # N processes on this machine (torchrun)
    GPUS=16 tools/slurm_al_loop.sh PARTITION JOB CONFIG DIR [flags]   # a Slurm cluster

Writes DIR/ledger.json, DIR/summary.{csv,json}, DIR/ap_vs_boxes.png and one DIR/step_K per
step (see mmdet_isal.active.loop for the layout). DIR defaults to work_dirs/<config name>.

Manual mode (active_learning.annotator='manual'): after each selection the run stops (exit code
0) and prints what to annotate, where the files are (DIR/step_K/to_annotate/) and the command
that continues: --resume --annotations EXPORT (a COCO file or a folder of VOC XML files) merges
the labels and goes on; --skipped FILE lists the selected images left unannotated.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.dist import is_main_process

from mmdet_isal.datasets import ImageLoadError
from mmdet_isal.engine import NonFiniteLossError
from mmdet_isal.utils.dist import exit_on_failure
from mmdet_isal.utils.signals import StopRequested, stop_on_signals


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Active learning with an mmdet detector or an image classifier.')
    parser.add_argument('config', help='mmdet (or classification) config with an '
                        'active_learning block')
    parser.add_argument('--work-dir', help='run directory (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. active_learning.steps=5 '
                             'train_dataloader.dataset.ann_file=...')
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in --work-dir from its last finished stage')
    parser.add_argument('--annotations', metavar='EXPORT',
                        help="manual mode: the labels of the selection that awaits them, as an "
                             "annotation tool exported them (COCO file or folder of VOC XML "
                             "files); merged, then the run continues (needs --resume)")
    parser.add_argument('--skipped', metavar='FILE',
                        help='with --annotations: the selected images you did not annotate, one '
                             'per line (id, file name or path); they leave the pool')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='pytorch: started by torchrun (tools/dist_al_loop.sh); slurm: by '
                             'srun (tools/slurm_al_loop.sh)')
    parser.add_argument('--shared-step0', metavar='RUN_DIR',
                        help='take step 0 (its checkpoint and evaluation) from this run '
                             'directory of the same seed and protocol instead of training it; '
                             'tools/al_experiment.py trains one per seed in DIR/_step0/seed_K')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    prog = osp.basename(__file__)
    if args.annotations and not args.resume:
        sys.exit(f'{prog}: error: --annotations merges labels into a run that awaits them: add '
                 f'--resume (and the --work-dir of the run)')
    if args.skipped and not args.annotations:
        sys.exit(f'{prog}: error: --skipped goes with --annotations EXPORT')
    import mmdet_isal  # noqa: F401  (registers modules and the checkpoint-loading allowances)
    from mmdet_isal.active import ActiveLearningLoop
    from mmdet_isal.apis import load_config

    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    try:
        loop = ActiveLearningLoop.from_cfg(cfg, launcher=args.launcher,
                                           shared_step0=args.shared_step0)
        loop.prepare(resume=args.resume)
        if args.annotations:
            loop.import_annotations(args.annotations, args.skipped)  # logs what it merged
    except (KeyError, ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        # Set-up errors name the input to fix; a traceback would only hide the message.
        sys.exit(f'{prog}: error: {e.args[0] if e.args else e}')
    run(loop, args)
    if loop.pending is not None and is_main_process():
        # manual mode: the run waits for labels; a pause, not a failure (exit code 0)
        print(f'{prog}: {loop.pending.message(continue_command(loop, args))}')


def continue_command(loop, args) -> str:
    """The command that continues the run of ``loop``."""
    return (f'python tools/{osp.basename(__file__)} {args.config} --work-dir {loop.work_dir} '
            f'--resume' + (' --cfg-options ' + ' '.join(f'{k}={v}' for k, v in
                                                        args.cfg_options.items())
                           if args.cfg_options else ''))


def run(loop, args):
    """Run the loop; SIGINT/SIGTERM, a non-finite loss and an image that fails to load end it
    with a message saying how to continue (the ledger holds every finished stage)."""
    prog = osp.basename(__file__)
    resume = continue_command(loop, args)
    try:
        with stop_on_signals(), exit_on_failure(StopRequested):
            loop.run()
    except StopRequested as e:
        where = loop.ledger.next_stage(loop.al.steps) if loop.ledger else None
        print(f'{prog}: stopped by {e.name}{f" during {where}" if where else ""}; '
              f'{loop.ledger_path} holds every finished stage. Continue with:\n  {resume}',
              file=sys.stderr)
        sys.exit(e.exit_code)
    except (NonFiniteLossError, ImageLoadError) as e:
        sys.exit(f'{prog}: error: {e}\nAfter the fix, continue with:\n  {resume}')


if __name__ == '__main__':
    main()
