"""Pretrain a detector's backbone on a classification task (once; cached).

    python tools/pretrain_backbone.py configs/classification/resnet18_other_shapes.py \
        --out data/pretrained/other_shapes_r18c16.pth [--cfg-options k=v ...]

Trains the config's ImageClassifier with mmengine's Runner (logs and the full checkpoint in
OUT without .pth plus _work/), writes its backbone's weights to OUT and a record to OUT with
.json (validation accuracy, seconds, this command, SHA-256s). Nothing happens when OUT is there,
intact, and made from the same config and data. A detector starts from it with
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=OUT)``.
"""
import argparse
import shlex
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Pretrain a detector's backbone (cached).")
    parser.add_argument('config', help='an ImageClassifier config, e.g. '
                                       'configs/classification/resnet18_other_shapes.py')
    parser.add_argument('--out', required=True, help='the backbone weights file to write (.pth)')
    parser.add_argument('--work-dir', help="the Runner's directory (default: OUT without .pth, "
                                           "plus _work)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_epochs=1')
    return parser, parser.parse_args(argv)


def main(argv=None):
    parser, args = parse_args(argv)
    import mmdet_isal  # noqa: F401  (registers the classifier, its dataset and metric)
    from mmengine.config import Config
    from mmdet_isal.classification.pretrain import pretrain_backbone, record_path

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    command = 'python ' + ' '.join(shlex.quote(a) for a in
                                   ['tools/pretrain_backbone.py'] + sys.argv[1:])
    try:
        record = pretrain_backbone(cfg, args.out, args.work_dir, command)
    except FileNotFoundError as e:
        parser.error(str(e))
    state = 'already there, intact' if record['status'] == 'up-to-date' else 'written'
    print(f'{args.out}: {state}; val accuracy {record["val_accuracy"]:.4f}, trained in '
          f'{record["seconds"]:.0f} s; record {record_path(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
