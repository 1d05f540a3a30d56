"""Write a synthetic single-object classification set
(mmdet_isal.datasets.make_shapes_classification).

Example::

    python tools/make_classification_dataset.py --out data/shapes_cls --class-set shapes
    python tools/make_classification_dataset.py --out data/other_shapes --class-set other_shapes

Class sets: ``shapes`` (the detection set's 8 classes, long-tailed, 32 px: the classification
task of the active-learning loop) and ``other_shapes`` (10 shapes that are no detection class,
balanced, 64 px: the backbone's pretraining set). Splits: train, val, test, each an image folder
and a list file of "file label" lines. The folder given by --out must be new or empty, or hold a
set this tool wrote with the same settings (then it is only checked); anything else is refused
and nothing is deleted.
"""
import argparse
import sys

from mmdet_isal.datasets import CLASS_SETS, make_shapes_classification


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write a synthetic single-object classification set.')
    parser.add_argument('--out', required=True, help='output folder, e.g. data/shapes_cls')
    parser.add_argument('--class-set', choices=tuple(CLASS_SETS), default='shapes',
                        help='shapes (default) or other_shapes')
    parser.add_argument('--seed', type=int, default=0, help='random seed, >= 0 (default 0)')
    parser.add_argument('--num-train', type=int, default=20000,
                        help='train images (default 20000)')
    parser.add_argument('--num-val', type=int, default=1000, help='val images (default 1000)')
    parser.add_argument('--num-test', type=int, default=5000, help='test images (default 5000)')
    parser.add_argument('--image-size', type=int, default=None,
                        help="image side in px, 32 to 1024 (default: the class set's, 32 for "
                             "shapes, 64 for other_shapes)")
    return parser, parser.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        summary = make_shapes_classification(
            args.out, class_set=args.class_set, seed=args.seed, num_train=args.num_train,
            num_val=args.num_val, num_test=args.num_test, image_size=args.image_size)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    except OSError as e:
        print(f'{parser.prog}: error: could not write {args.out}: {e}', file=sys.stderr)
        return 1
    state = dict(written='written', **{'up-to-date': 'already up to date'})[summary['status']]
    print(f'{summary["out_dir"]}: {summary["class_set"]}, seed {summary["seed"]}, '
          f'{summary["image_size"]} px, {state}')
    for split, info in summary['splits'].items():
        classes = ', '.join(f'{name} {n}' for name, n in info['class_counts'].items())
        print(f'  {split}: {info["images"]} images; {classes}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
