"""Write the synthetic shapes detection data set (mmdet_isal.datasets.make_shapes_dataset).

Example::

    python tools/make_toy_dataset.py --out data/shapes --seed 0
    python tools/make_toy_dataset.py --out data/shapes_voc --format voc

Splits: train (the active-learning pool), val and a held-out test split (--num-test, default
500; 0 for none). The folder given by --out must be new or empty, or hold a set this tool wrote
with the same settings (then only missing or changed files are rewritten) or with the same
settings but no test split (then the test split is added, train and val are left alone);
anything else is refused and nothing is deleted.
"""
import argparse
import sys

from mmdet_isal.datasets import make_shapes_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write the synthetic shapes detection data set (COCO or VOC layout).')
    parser.add_argument('--out', required=True, help='output folder, e.g. data/shapes')
    parser.add_argument('--seed', type=int, default=0, help='random seed, >= 0 (default 0)')
    parser.add_argument('--format', dest='fmt', choices=('coco', 'voc'), default='coco',
                        help='annotation layout (default coco)')
    parser.add_argument('--num-train', type=int, default=2000,
                        help='train images, the active-learning pool (default 2000)')
    parser.add_argument('--num-val', type=int, default=300, help='val images (default 300)')
    # 500: at seed 0 about 3000 objects and 71 of the rarest class (val's 300 images: 1707 and
    # 48), so the held-out score is less noisy than val's, for a fifth more images to render
    # than train and val together (19 MB of PNG at 128 px).
    parser.add_argument('--num-test', type=int, default=500,
                        help='held-out test images, 0 for no test split (default 500)')
    parser.add_argument('--image-size', type=int, default=128,
                        help='image side in px, 32 to 1024 (default 128)')
    return parser, parser.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    try:
        summary = make_shapes_dataset(args.out, seed=args.seed, fmt=args.fmt,
                                      num_train=args.num_train, num_val=args.num_val,
                                      image_size=args.image_size, num_test=args.num_test)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    except OSError as e:
        print(f'{parser.prog}: error: could not write {args.out}: {e}', file=sys.stderr)
        return 1
    state = {'up-to-date': 'already up to date', 'written': 'written',
             'test-split-added': 'test split added, train and val kept'}[summary['status']]
    print(f'{summary["out_dir"]}: {summary["format"]} layout, seed {summary["seed"]}, '
          f'{summary["image_size"]} px, {state}')
    for split, info in summary['splits'].items():
        classes = ', '.join(f'{name} {n}' for name, n in info['class_counts'].items())
        print(f'  {split}: {info["images"]} images, {info["objects"]} objects '
              f'({info["empty_images"]} empty images, at most {info["max_objects"]} '
              f'per image); {classes}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
