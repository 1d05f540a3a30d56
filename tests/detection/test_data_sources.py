"""Which image folder ISAL reads an annotation file's images from: the training set's, and the
validation set's own for its file when the validation images are elsewhere (a labeled
validation folder next to a folder of unlabeled images, as a user's own data often is)."""
import os.path as osp
import shutil

from mmdet_isal.detection.data import build_scoring_dataset, image_dir, scoring_source
from mmdet_isal.detection.isal import check_isal_inputs
from tests.conftest import toy_config


def test_the_validation_file_keeps_the_validation_folder(shapes_coco, tmp_path):
    # the unlabeled images in one folder, the validation set in another
    mine = tmp_path / 'mine'
    shutil.copytree(osp.join(shapes_coco, 'images'), mine / 'photos')
    shutil.copytree(osp.join(shapes_coco, 'annotations'), mine / 'annotations')
    for f in (mine / 'photos').glob('val_*'):
        f.unlink()  # no validation image in the folder of my photos
    cfg = toy_config('fcos_shapes', shapes_coco, **{
        'train_dataloader.dataset.data_root': str(mine) + '/',
        'train_dataloader.dataset.data_prefix': dict(img='photos/')})
    val_file = osp.join(shapes_coco, 'annotations', 'instances_val.json')
    for given in ('annotations/instances_val.json', val_file):  # the val set's string, or path
        ds_cfg, path = scoring_source(cfg, given)
        assert path == val_file and ds_cfg['data_root'] == shapes_coco.rstrip('/') + '/'
    assert image_dir(cfg, val_file) == osp.join(shapes_coco, 'images/')
    reference = build_scoring_dataset(cfg, val_file, with_boxes=True)
    assert reference[0]['data_samples'].img_path.startswith(osp.join(shapes_coco, 'images'))
    # the training set's files are read as before: relative to its root, its folder
    ds_cfg, path = scoring_source(cfg, 'annotations/instances_train.json')
    assert path == str(mine / 'annotations' / 'instances_train.json')
    assert ds_cfg['ann_file'] == 'annotations/instances_train.json'
    assert image_dir(cfg, path) == str(mine / 'photos') + '/'
    pool = build_scoring_dataset(cfg, 'annotations/instances_train.json', with_boxes=False)
    assert pool[0]['data_samples'].img_path.startswith(str(mine / 'photos'))
    # the hook's and score.py's checks look for each file's images where ISAL will
    check_isal_inputs(cfg, 'annotations/instances_train.json', val_file)


def test_one_folder_for_both_reads_as_before(shapes_coco):
    cfg = toy_config('fcos_shapes', shapes_coco)
    ds_cfg, path = scoring_source(cfg, 'annotations/instances_val.json')
    assert ds_cfg['ann_file'] == 'annotations/instances_val.json'  # the training set's config
    assert ds_cfg['data_root'] == cfg.train_dataloader.dataset.data_root
    assert path == osp.join(cfg.train_dataloader.dataset.data_root,
                            'annotations/instances_val.json')
