"""Make an unlabeled pool (a COCO file with images only) from a folder of images.

    python tools/make_pool.py IMAGES_DIR --classes A B ... --out pool.json \
        [--data-root DIR] [--labeled FILE_OR_VOC_DIR --labeled-out labeled.json] [--decode]

Walks IMAGES_DIR recursively. File names are relative to --data-root (default IMAGES_DIR), sizes
come from the headers with the EXIF orientation applied, ids are numbered in sorted order.
Files that cannot be used (not images, truncated) and repeated content are listed in
OUT.rejected.txt and left out; they do not stop the tool. With --labeled (a COCO file or a
folder of VOC XML files), the images already labeled are left out of the pool;
--labeled-out writes them as a COCO file of the same classes and image folder, for the loop's
``active_learning.labeled``. See mmdet_isal.annotation.pool.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('images_dir', help='folder of images (searched recursively)')
    parser.add_argument('--classes', nargs='+', required=True,
                        help='the class names, in the order of their category ids 1..N')
    parser.add_argument('--out', required=True, help='the pool file to write (COCO json)')
    parser.add_argument('--data-root', help='file names are relative to it (default: '
                        'IMAGES_DIR); the config\'s data_root + data_prefix.img')
    parser.add_argument('--labeled', help='images already labeled: a COCO file or a folder of '
                        'VOC XML files; left out of the pool')
    parser.add_argument('--labeled-out', help='write the labeled images as a COCO file of the '
                        'same classes and image folder (needs --labeled)')
    parser.add_argument('--decode', action='store_true', help='decode every image in full '
                        '(cached by path, size and modification time), not only its header')
    return parser.parse_args(argv)


def _examples(items, n=3):
    more = f' ... ({len(items) - n} more)' if len(items) > n else ''
    return '; '.join(items[:n]) + more


def main(argv=None):
    args = parse_args(argv)
    prog = osp.basename(__file__)
    if args.labeled_out and not args.labeled:
        sys.exit(f'{prog}: error: --labeled-out writes the images of --labeled: give --labeled')
    from mmdet_isal.annotation import make_pool
    from mmdet_isal.datasets import AnnotationError
    from mmdet_isal.utils.fileio import atomic_write, atomic_write_json
    try:
        made = make_pool(args.images_dir, args.classes, args.data_root, args.labeled,
                         args.decode)
    except (FileNotFoundError, ValueError, AnnotationError) as e:
        sys.exit(f'{prog}: error: {e}')
    if args.labeled_out and made.labeled_missing:
        sys.exit(f'{prog}: error: {len(made.labeled_missing)} labeled image(s) of '
                 f'{args.labeled} are not in {args.images_dir}, e.g. '
                 f'{_examples(made.labeled_missing)}; --labeled-out needs every labeled image '
                 f'in the folder (the loop trains on them)')
    root = osp.abspath(args.data_root or args.images_dir)
    images = made.pool['images']
    if not images:
        sys.exit(f'{prog}: error: no usable image left in {args.images_dir} '
                 f'({len(made.rejected)} rejected, {len(made.left_out)} labeled, '
                 f'{len(made.duplicates)} duplicates); nothing written')
    atomic_write_json(args.out, made.pool)
    print(f'{prog}: wrote {args.out}: {len(images)} images, {len(args.classes)} classes; file '
          f'names are relative to {root}')
    if args.labeled:
        print(f'  left out {len(made.left_out)} labeled image(s) of {args.labeled}')
        if made.labeled_missing:
            print(f'  note: {len(made.labeled_missing)} labeled image(s) are not in the folder, '
                  f'e.g. {_examples(made.labeled_missing)}')
    if args.labeled_out:
        atomic_write_json(args.labeled_out, made.labeled)
        print(f'  wrote {args.labeled_out}: {len(made.labeled["images"])} labeled images, '
              f'{len(made.labeled["annotations"])} boxes (for active_learning.labeled)')
    lines = [f'{rel}\t{why}' for rel, why in made.rejected] + \
        [f'{rel}\tsame content as {of}' for rel, of in made.duplicates]
    if lines:
        rejected = osp.splitext(args.out)[0] + '.rejected.txt'
        atomic_write(rejected, ''.join(f'{line}\n' for line in lines))
        if made.rejected:
            print(f'  left out {len(made.rejected)} file(s) that cannot be used, e.g. '
                  f'{_examples([f"{r} ({w})" for r, w in made.rejected])}')
        if made.duplicates:
            print(f'  left out {len(made.duplicates)} duplicate(s) (same content as another '
                  f'file), e.g. {_examples([f"{r} = {o}" for r, o in made.duplicates])}')
        print(f'  the full list: {rejected}')
    if made.shared_names:
        print(f'  note: {len(made.shared_names)} file name(s) occur in several folders, e.g. '
              f'{_examples(made.shared_names)}: annotation tools that drop folders cannot tell '
              f'them apart, so export with the folder names')
    print(f'Next: point train_dataloader.dataset at it (data_root={root!r}, '
          f"ann_file={osp.abspath(args.out)!r}, data_prefix=dict(img='')) and set "
          f"active_learning.annotator='manual' (README: \"Use it on your own images\").")


if __name__ == '__main__':
    main()
