"""Overlay active-learning runs: AP against annotated boxes, grouped by strategy.

    python tools/plot_runs.py work_dirs/isal_s0 work_dirs/isal_s1 work_dirs/random_s0 \
        --out ap_vs_boxes.png [--ap 0.25]

Runs of one strategy (several seeds) are drawn as mean ± std per step. The printed table gives
AP per step and the boxes each strategy needed to reach a common AP (by default the highest
mean AP every strategy reaches).
"""
import argparse

from mmdet_isal.active import comparison_table, group_runs, load_summary, plot_ap_vs_boxes


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
    groups = group_runs([load_summary(d) for d in args.dirs])
    table, _ = comparison_table(groups, target_ap=args.ap)
    plot_ap_vs_boxes(groups, args.out)
    print(table)
    print(f'\nplot written to {args.out}')


if __name__ == '__main__':
    main()
