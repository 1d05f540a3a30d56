"""Overlay active-learning runs: AP against annotated boxes and against labeled images, grouped
by strategy.

    python tools/plot_runs.py work_dirs/isal_s0 work_dirs/isal_s1 work_dirs/random_s0 \
        --out ap_vs_boxes.png [--ap 0.25]

Runs of one strategy (several seeds) are drawn as mean ± std per step (sample std over seeds).
The printed report is an experiment's (mmdet_isal.active.report): AP per strategy and step,
what the selections picked, each strategy against random seed by seed (when random is among
the runs), and the boxes each strategy's mean curve needs to reach a common AP (by default the
highest mean AP every strategy reaches).
"""
import argparse
import sys

from mmdet_isal.active.report import (BASELINE, common_ap, format_report, group_runs,
                                      load_summary, plot_curves, report_data)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Overlay active-learning runs (their summary.json) as AP against boxes.')
    parser.add_argument('dirs', nargs='+', metavar='DIR', help='run directories (--work-dir '
                        'of tools/al_loop.py)')
    parser.add_argument('--out', required=True, metavar='FILE.png', help='plot to write')
    parser.add_argument('--ap', type=float, default=None,
                        help='common bbox mAP (0-1) to compare box counts at; default: the '
                             'highest mean AP that every strategy reaches')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        results = group_runs([load_summary(d) for d in args.dirs], sources=args.dirs)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'plot_runs.py: error: {e}')
    data = report_data(results, baseline=BASELINE if BASELINE in results else None)
    plot_curves(data['rows'], args.out, savings=(data['comparisons'] or {}).get('savings'))
    target = args.ap if args.ap is not None else common_ap(data['rows'])
    print(format_report(data, target_ap=target))
    print(f'\nplot written to {args.out}')


if __name__ == '__main__':
    main()
