"""Compare strategies fairly: every strategy with every seed under one protocol, then the
table, the savings against random and the plots.

    python tools/al_experiment.py CONFIG --strategies isal random fewest_detections \
        --seeds 1 2 3 --work-dir DIR [--cfg-options k=v ...] [--jobs N]

A strategy is a registered name or LABEL=TYPE(key=value, ...), e.g.
'isal_per_image=isal(scorer.loss_normalizer=per_image)'. Each run goes to DIR/<label>/seed_<k>
(output in its console.log); rerunning the command continues unfinished runs and skips finished
ones. Writes DIR/experiment.{csv,json,png} and DIR/report.txt, the report it prints at the end
(see mmdet_isal.active.experiment).
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Strategies x seeds under one protocol.')
    parser.add_argument('config', help='mmdet config with an active_learning block')
    parser.add_argument('--strategies', nargs='+', required=True, metavar='SPEC',
                        help='NAME or LABEL=TYPE(key=value, ...); "random" is the baseline')
    parser.add_argument('--seeds', nargs='+', type=int, required=True, help='e.g. 1 2 3')
    parser.add_argument('--work-dir', required=True, help='experiment directory')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries for every run, e.g. train_cfg.max_epochs=6')
    parser.add_argument('--jobs', type=int, default=1, help='runs in parallel (default 1)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmdet_isal  # noqa: F401  (registers modules and the checkpoint-loading allowances)
    from mmdet_isal.active.experiment import Experiment, experiment_config

    try:
        cfg = experiment_config(args.config, args.cfg_options)
        experiment = Experiment(cfg, args.strategies, args.seeds, args.work_dir, args.config)
        experiment.prepare()
    except (KeyError, ValueError, FileNotFoundError, FileExistsError) as e:
        sys.exit(f'{osp.basename(__file__)}: error: {e.args[0] if e.args else e}')
    loop_script = osp.join(osp.dirname(osp.abspath(__file__)), 'al_loop.py')
    outcomes = experiment.run(loop_script, jobs=args.jobs)
    print('\n' + experiment.report())
    print(f'\nwritten: {osp.join(args.work_dir, "experiment.{csv,json,png}")} and '
          f'{osp.join(args.work_dir, "report.txt")}')
    failed = [o for o in outcomes if o.status == 'failed']
    if failed:
        sys.exit(f'{len(failed)} run(s) failed, the report covers the others: ' +
                 ', '.join(f'{o.run.name} ({o.run.log_file})' for o in failed) +
                 '. Fix the cause and rerun the same command to continue.')


if __name__ == '__main__':
    main()
