"""Run active learning on an mmdet config with an ``active_learning = dict(...)`` block.

    python tools/al_loop.py CONFIG [--work-dir DIR] [--cfg-options k=v ...] [--resume]
        [--launcher {none,pytorch,slurm}] [--shared-step0 RUN_DIR]
    tools/dist_al_loop.sh CONFIG N [flags]            # N processes on this machine (torchrun)
    GPUS=16 tools/slurm_al_loop.sh PARTITION JOB CONFIG DIR [flags]   # a Slurm cluster

Writes DIR/ledger.json, DIR/summary.{csv,json}, DIR/ap_vs_boxes.png and one DIR/step_K per
step (see mmdet_isal.active.loop for the layout). DIR defaults to work_dirs/<config name>.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from mmdet_isal.engine import NonFiniteLossError
from mmdet_isal.utils.dist import exit_on_failure
from mmdet_isal.utils.signals import StopRequested, stop_on_signals


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Active learning with an mmdet detector.')
    parser.add_argument('config', help='mmdet config with an active_learning block')
    parser.add_argument('--work-dir', help='run directory (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. active_learning.steps=5 '
                             'train_dataloader.dataset.ann_file=...')
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in --work-dir from its last finished stage')
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
    import mmdet_isal  # noqa: F401  (registers modules and the checkpoint-loading allowances)
    from mmdet_isal.active import ActiveLearningLoop
    from mmdet_isal.apis import load_config

    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    try:
        loop = ActiveLearningLoop.from_cfg(cfg, launcher=args.launcher,
                                           shared_step0=args.shared_step0)
        loop.prepare(resume=args.resume)
    except (KeyError, ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        # Set-up errors name the input to fix; a traceback would only hide the message.
        sys.exit(f'{osp.basename(__file__)}: error: {e.args[0] if e.args else e}')
    run(loop, args)


def run(loop, args):
    """Run the loop; SIGINT/SIGTERM and a non-finite loss end it with a message saying how to
    continue (the ledger holds every finished stage)."""
    prog = osp.basename(__file__)
    resume = (f'python tools/{prog} {args.config} --work-dir {loop.work_dir} --resume' +
              (' --cfg-options ' + ' '.join(f'{k}={v}' for k, v in args.cfg_options.items())
               if args.cfg_options else ''))
    try:
        with stop_on_signals(), exit_on_failure(StopRequested):
            loop.run()
    except StopRequested as e:
        where = loop.ledger.next_stage(loop.al.steps) if loop.ledger else None
        print(f'{prog}: stopped by {e.name}{f" during {where}" if where else ""}; '
              f'{loop.ledger_path} holds every finished stage. Continue with:\n  {resume}',
              file=sys.stderr)
        sys.exit(e.exit_code)
    except NonFiniteLossError as e:
        sys.exit(f'{prog}: error: {e}\nAfter the fix, continue with:\n  {resume}')


if __name__ == '__main__':
    main()
