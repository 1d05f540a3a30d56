"""Two strategies of an experiment at the same step, seed by seed: with a budget in annotator
seconds every step spends the same time, so this is the comparison at equal cost (e.g. ISAL
against its cost-matched random control).

    python tools/compare_steps.py work_dirs/experiment isal_cost:matched_cost isal_cost:entropy
    python tools/compare_steps.py work_dirs/experiment_classification --metric mean_class_accuracy \
        --seeds 1 2 3

Reads the experiment directory of tools/al_experiment.py (its experiment_meta.json and each
run's summary.json); without pairs, every strategy against random. Prints the table
(mmdet_isal.active.report.format_step_differences); --out also writes it to a file.
"""
import argparse
import sys

from mmdet_isal.active.experiment import read_experiment
from mmdet_isal.active.report import BASELINE, format_step_differences, step_differences
from mmdet_isal.utils.fileio import atomic_write


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Two strategies of an experiment at the same step, seed by seed.')
    parser.add_argument('work_dir', help='experiment directory (--work-dir of '
                        'tools/al_experiment.py)')
    parser.add_argument('pairs', nargs='*', metavar='A:B',
                        help='strategy labels to compare, A minus B; default: every strategy '
                             'minus random')
    parser.add_argument('--metric', metavar='NAME',
                        help='what to compare: a column of the runs\' summary.csv (e.g. '
                             'mean_class_accuracy) or a key the evaluator gave (a run\'s '
                             'summary.json "metrics", e.g. '
                             'classification/prior_corrected_accuracy); default the curve\'s '
                             'primary metric (bbox_mAP, accuracy)')
    parser.add_argument('--seeds', nargs='+', type=int, metavar='SEED',
                        help='compare on these seeds only (default: every seed both have)')
    parser.add_argument('--out', metavar='FILE', help='also write the table to FILE')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        results = read_experiment(args.work_dir)
        if args.seeds:
            results = {label: {seed: rows for seed, rows in by_seed.items()
                               if seed in args.seeds} for label, by_seed in results.items()}
            if not any(results.values()):
                raise ValueError(f'no run of seeds {args.seeds} in {args.work_dir}')
        pairs = []
        for text in args.pairs:
            a, sep, b = text.partition(':')
            if not sep or not a or not b:
                raise ValueError(f'pair {text!r}: write it as A:B, two strategy labels')
            pairs.append((a, b))
        if not pairs:
            if BASELINE not in results:
                raise ValueError(f'no {BASELINE!r} strategy in {args.work_dir}: name the pairs')
            pairs = [(label, BASELINE) for label in results if label != BASELINE]
        text = format_step_differences(step_differences(results, pairs, args.metric))
    except (FileNotFoundError, KeyError, ValueError) as e:
        sys.exit(f'compare_steps.py: error: {e.args[0] if isinstance(e, KeyError) else e}')
    print(text)
    if args.out:
        atomic_write(args.out, text + '\n')


if __name__ == '__main__':
    main()
