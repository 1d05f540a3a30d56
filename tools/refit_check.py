"""The refit check of a classifier's ISAL ranking (simulation: the pool's true classes are read).

    python tools/refit_check.py CONFIG CHECKPOINT --unlabeled ANN [--labeled ANN]
        [--reference ANN] [--sizes 50 200 2000] [--l2 0.01] [--random-draws 5] [--seed 0]
        [--out refit.json]

E.g. the step-0 classifier of an active-learning run:

    python tools/refit_check.py RUN/step_0/config.py RUN/step_0/epoch_12.pth \\
        --unlabeled RUN/step_0/unlabeled.txt --reference data/shapes_cls/val.txt

With the classifier's backbone fixed, its last layer is fitted to the optimum of the mean
cross-entropy plus ``l2/2 |θ|²`` on the labeled images; then for every size m the top m of ISAL's
ranking (predicted classes), the top m of the same influence with the true classes, and random
sets of m are added with their true classes, the layer is fitted again, and the change of the
reference set's cross-entropy is printed beside its first-order prediction
(:mod:`mmdet_isal.classification.refit`). ``--labeled`` defaults to the config's training list,
``--reference`` to its ``active_learning.reference`` (a run's config.py has it, a step's does
not: give it). List paths are taken as given if they exist, else relative to the data set's
``data_root``.
"""
import argparse
import json
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the config the classifier was trained with')
    parser.add_argument('checkpoint', help='its checkpoint (.pth)')
    parser.add_argument('--unlabeled', required=True, help='list file of the pool, with its '
                        'true classes')
    parser.add_argument('--labeled', help="list file of the labeled set (default: the config's "
                        'train_dataloader.dataset.ann_file)')
    parser.add_argument('--reference', help="list file of the reference set (default: the "
                        "config's active_learning.reference; a step's config has none)")
    parser.add_argument('--sizes', type=int, nargs='+', default=[50, 200, 2000],
                        help='images added, one refit per size and set (default 50 200 2000)')
    parser.add_argument('--l2', type=float, default=0.01,
                        help="the refit objective's L2 weight, ISAL's damping (default 0.01)")
    parser.add_argument('--random-draws', type=int, default=5,
                        help='random sets per size (default 5)')
    parser.add_argument('--seed', type=int, default=0, help='draws the random sets')
    parser.add_argument('--out', help='also write the rows to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def _list_file(path, data_root, what):
    if osp.isfile(path):
        return osp.abspath(path)
    joined = osp.join(data_root or '', path)
    if osp.isfile(joined):
        return osp.abspath(joined)
    sys.exit(f'refit_check.py: error: {what} list {path} not found (as given, nor under the '
             f'data root {data_root!r})')


def main(argv=None):
    """Returns ``(reference loss before, rows)``."""
    args = parse_args(argv)
    for path, what in ((args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'refit_check.py: error: {what} file not found: {path}')
    if args.random_draws < 1 or args.l2 <= 0:
        sys.exit('refit_check.py: error: --random-draws must be >= 1 and --l2 > 0')
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    import mmdet_isal  # noqa: F401  (registers the classifier; allows the checkpoint's types)
    from mmdet_isal.apis import load_detector
    from mmdet_isal.classification.outputs import classify_list
    from mmdet_isal.classification.refit import refit_check
    from mmdet_isal.datasets import AnnotationError, ImageLoadError, explain_image_failures

    train = cfg.train_dataloader.dataset
    if train.get('type') != 'ClassificationListDataset':
        sys.exit(f'refit_check.py: error: {args.config} trains on a {train.get("type")}; the '
                 f'refit check is for a classifier (ClassificationListDataset)')
    data_root = train.get('data_root', '')
    reference = args.reference or cfg.get('active_learning', {}).get('reference')
    if not reference:
        sys.exit(f'refit_check.py: error: {args.config} has no active_learning.reference; give '
                 f'the reference list with --reference (e.g. the val split ISAL scored against)')
    lists = dict(labeled=_list_file(args.labeled or train.ann_file, data_root, 'labeled'),
                 pool=_list_file(args.unlabeled, data_root, 'unlabeled'),
                 reference=_list_file(reference, data_root, 'reference'))
    model = load_detector(cfg, args.checkpoint)
    try:
        with explain_image_failures('the refit check'):
            outputs = {k: classify_list(model, cfg, path, title=f'refit_check: {k}')
                       for k, path in lists.items()}
    except (ImageLoadError, AnnotationError, ValueError) as e:
        # an image that does not load, or a bad line of a list file: one message
        sys.exit(f'refit_check.py: error: {e}')
    both = set(outputs['labeled'].ids) & set(outputs['pool'].ids)
    if both:
        sys.exit(f'refit_check.py: error: {len(both)} images of the unlabeled list are also in '
                 f'the labeled list (e.g. {sorted(both)[0]}); give the pool of that labeled set '
                 f"(a step's unlabeled.txt)")
    data = {k: (o.features, o.labels) for k, o in outputs.items()}
    try:
        base, rows = refit_check(data['labeled'], data['pool'], data['reference'], args.sizes,
                                 l2=args.l2, random_draws=args.random_draws, seed=args.seed)
    except (ValueError, ArithmeticError) as e:
        sys.exit(f'refit_check.py: error: {e}')
    print(f'reference cross-entropy of the last layer fitted to the {len(data["labeled"][1])} '
          f'labeled images: {base:.4f} (l2 {args.l2})')
    print(f'{"set":18} {"images":>6}  {"change":18} {"first-order":>11} {"accuracy":>9}')
    for r in rows:
        change = f'{r.change:+.4f}' + (f' ± {r.change_std:.4f}' if r.draws > 1 else '')
        print(f'{r.name:18} {r.size:6d}  {change:18} {r.predicted:+11.4f} {r.accuracy:9.3f}'
              + (f'  ({r.draws} draws)' if r.draws > 1 else ''))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(lists={k: osp.relpath(v) for k, v in lists.items()}, l2=args.l2,
                           reference_loss=base,
                           rows=[r._asdict() for r in rows]), f, indent=1)
    return base, rows


if __name__ == '__main__':
    main()
