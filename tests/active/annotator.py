"""A scripted annotator for manual-mode tests, and the files of a manual run on a test pool.

:func:`scripted_export` plays a person with an annotation tool: it reads what the loop asked
for (``to_annotate/selection.json``), copies the true boxes of those images from a ground-truth
file the loop never reads, and exports them as a tool would: image ids renumbered, paths
rewritten (``uploads/<name>``), category ids changed (names kept), as COCO or as a folder of VOC
XML files.
"""
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET


def manual_files(data_root, out_dir, labeled=8):
    """From a test pool's ``annotations/instances_train.json`` (the ground truth): an
    images-only pool of all but its first ``labeled`` images, and ``labeled.json`` with those
    (and their boxes). Returns ``(pool, labeled, ground truth)`` paths."""
    truth = osp.join(str(data_root), 'annotations', 'instances_train.json')
    with open(truth) as f:
        coco = json.load(f)
    first = {img['id'] for img in coco['images'][:labeled]}
    pool = dict(coco, images=[im for im in coco['images'] if im['id'] not in first],
                annotations=[])
    labeled_set = dict(coco, images=[im for im in coco['images'] if im['id'] in first],
                       annotations=[a for a in coco['annotations'] if a['image_id'] in first])
    os.makedirs(out_dir, exist_ok=True)
    paths = osp.join(out_dir, 'pool.json'), osp.join(out_dir, 'labeled.json')
    for path, data in zip(paths, (pool, labeled_set)):
        with open(path, 'w') as f:
            json.dump(data, f)
    return paths[0], paths[1], truth


def selection(to_annotate):
    """The ``images`` of ``to_annotate/selection.json``."""
    with open(osp.join(to_annotate, 'selection.json')) as f:
        return json.load(f)['images']


def scripted_export(to_annotate, truth_file, out, fmt='coco', skip=(), drop=(), extra=None,
                    rename=None):
    """Annotate the selection of ``to_annotate`` with the true boxes of ``truth_file``.

    Args:
        to_annotate: the loop's ``to_annotate/`` folder.
        truth_file: a COCO file holding the true boxes (the loop never reads it).
        out: the export to write: a ``.json`` file (COCO) or a folder (VOC).
        fmt: ``'coco'`` or ``'voc'``.
        skip: file names the annotator skips (left out of the export).
        drop: file names left out by mistake (a partial export).
        extra: a ``dict(file_name=..., width=..., height=...)`` of an image added to the
            export (one that was not selected).
        rename: ``{class name: new name}`` applied to the exported classes.

    Returns:
        the export's path.
    """
    with open(truth_file) as f:
        truth = json.load(f)
    names = {c['id']: c['name'] for c in truth['categories']}
    by_name = {im['file_name']: im for im in truth['images']}
    picked = [by_name[p['file_name']] for p in selection(to_annotate)
              if p['file_name'] not in skip and p['file_name'] not in drop]
    if extra is not None:
        picked.append(dict(extra, id=-1))
    boxes = {im['id']: [] for im in picked}
    for ann in truth['annotations']:
        if ann['image_id'] in boxes:
            name = names[ann['category_id']]
            boxes[ann['image_id']].append((ann['bbox'], (rename or {}).get(name, name)))
    if fmt == 'voc':
        return _voc(picked, boxes, out)
    classes = sorted({n for b in boxes.values() for _, n in b} | set(names.values()))
    cat_ids = {n: 100 - k for k, n in enumerate(classes)}  # a tool's own category ids
    export = dict(images=[], annotations=[],
                  categories=[dict(id=cat_ids[n], name=n) for n in classes])
    for k, img in enumerate(picked):
        new_id = 5000 + k  # tools renumber images
        export['images'].append(dict(id=new_id, file_name=f'uploads/{img["file_name"]}',
                                     width=img['width'], height=img['height']))
        for bbox, name in boxes[img['id']]:
            export['annotations'].append(dict(
                id=len(export['annotations']) + 1, image_id=new_id,
                category_id=cat_ids[name], bbox=list(bbox), area=bbox[2] * bbox[3],
                iscrowd=0, segmentation=[]))
    with open(out, 'w') as f:
        json.dump(export, f)
    return out


def _voc(picked, boxes, folder):
    """A folder of VOC XML files (1-based inclusive corners) of ``picked``."""
    os.makedirs(osp.join(folder, 'Annotations'), exist_ok=True)
    for img in picked:
        root = ET.Element('annotation')
        ET.SubElement(root, 'filename').text = osp.basename(img['file_name'])
        size = ET.SubElement(root, 'size')
        ET.SubElement(size, 'width').text = str(img['width'])
        ET.SubElement(size, 'height').text = str(img['height'])
        for (x, y, w, h), name in boxes[img['id']]:
            obj = ET.SubElement(root, 'object')
            ET.SubElement(obj, 'name').text = name
            box = ET.SubElement(obj, 'bndbox')
            for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'),
                                  (x + 1, y + 1, x + w, y + h)):
                ET.SubElement(box, tag).text = f'{value:g}'
        stem = osp.splitext(osp.basename(img['file_name']))[0]
        ET.ElementTree(root).write(osp.join(folder, 'Annotations', f'{stem}.xml'))
    return folder


def true_boxes(truth_file, file_names):
    """``{file name: sorted [(bbox, class name)]}`` of ``file_names`` in ``truth_file``."""
    with open(truth_file) as f:
        truth = json.load(f)
    names = {c['id']: c['name'] for c in truth['categories']}
    ids = {im['id']: im['file_name'] for im in truth['images'] if im['file_name'] in file_names}
    out = {n: [] for n in file_names}
    for ann in truth['annotations']:
        if ann['image_id'] in ids:
            out[ids[ann['image_id']]].append((list(ann['bbox']), names[ann['category_id']]))
    return {n: sorted(b) for n, b in out.items()}
