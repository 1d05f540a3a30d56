"""The files of the synthetic shapes data set: COCO and VOC layouts.

A writer takes rendered images with their records (``index``, ``objects``, ``scene``, and for a
duplicate ``duplicate_of``, the source's index) split by split, writes each image file at once
and the split's annotation list on ``finish_split``, and records every file's SHA-256.
"""
import hashlib
import io
import json
import os
import xml.etree.ElementTree as ET

from PIL import Image

from .design import SHAPES_CLASSES

# The version written into each COCO file's ``info`` (and the manifest): the files of a version
# are the same bytes for the same settings.
VERSION = 1
JPEG_QUALITY = 95
# COCO image ids: image n (1-based) of a split has id FIRST_IMAGE_ID[split] + n - 1. Train and
# val both start at 1 (as they always have); test starts above every train and val id (splits
# hold at most MAX_IMAGES images), so that detections on one split cannot be scored against
# another split's annotations by mistake.
MAX_IMAGES = 999_999  # per split: six-digit file numbers
FIRST_IMAGE_ID = dict(train=1, val=1, test=1_000_001)


class Writer:
    """Writes files under out_dir and records their SHA-256 (``hashes``, by relative path)."""

    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.hashes = {}

    def _write(self, rel_path, data):
        with open(os.path.join(self.out_dir, rel_path), 'wb') as f:
            f.write(data)
        self.hashes[rel_path] = hashlib.sha256(data).hexdigest()


class CocoWriter(Writer):
    """COCO layout: annotations/instances_{split}.json and images/{split}_{nnnnnn}.png.

    Image ids start at ``FIRST_IMAGE_ID[split]`` (1 for train and val, 1000001 for test),
    annotation ids at 1 in each split.
    """

    def __init__(self, out_dir):
        super().__init__(out_dir)
        os.makedirs(os.path.join(out_dir, 'images'), exist_ok=True)
        os.makedirs(os.path.join(out_dir, 'annotations'), exist_ok=True)
        self._images = {}
        self._annotations = {}

    def add_image(self, split, record, image):
        """Write one image (uint8 HxWx3) and keep its record for the split's file."""
        first_id = FIRST_IMAGE_ID[split]
        image_id = record['index'] + first_id
        file_name = f'{split}_{record["index"] + 1:06d}.png'
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format='PNG', compress_level=1)
        self._write(f'images/{file_name}', buf.getvalue())
        height, width = image.shape[:2]
        entry = dict(id=image_id, file_name=file_name, width=width, height=height,
                     scene=record['scene'])
        if 'duplicate_of' in record:
            entry['duplicate_of'] = record['duplicate_of'] + first_id
        self._images.setdefault(split, []).append(entry)
        annotations = self._annotations.setdefault(split, [])
        for obj in record['objects']:
            x0, y0, x1, y1 = obj['box']
            annotations.append(
                dict(id=len(annotations) + 1, image_id=image_id,
                     category_id=obj['label'] + 1, bbox=[x0, y0, x1 - x0, y1 - y0],
                     area=obj['area'], iscrowd=0))

    def finish_split(self, split):
        """Write the split's annotation file."""
        coco = dict(
            info=dict(description=f'mmdet-isal synthetic shapes, {split} split',
                      version=str(VERSION), url='', contributor='mmdet_isal', year=2024,
                      date_created=''),
            licenses=[],
            images=self._images.pop(split, []),
            annotations=self._annotations.pop(split, []),
            categories=[dict(id=i + 1, name=name, supercategory='shape')
                        for i, name in enumerate(SHAPES_CLASSES)])
        data = json.dumps(coco, separators=(',', ':')).encode() + b'\n'
        self._write(f'annotations/instances_{split}.json', data)


class VocWriter(Writer):
    """VOC layout under VOC2012/ (the folder name mmdet's VOCDataset takes the year from).

    Image ids are ``{split}_{nnnnnn}``. Boxes use VOC's 1-based inclusive pixel coordinates:
    a box covering pixel columns c0..c1 (0-based) is written xmin=c0+1, xmax=c1+1.
    """

    def __init__(self, out_dir):
        super().__init__(out_dir)
        for sub in ('Annotations', 'JPEGImages', 'ImageSets/Main'):
            os.makedirs(os.path.join(out_dir, 'VOC2012', sub), exist_ok=True)
        self._ids = {}

    def add_image(self, split, record, image):
        """Write one image (uint8 HxWx3) and its XML annotation."""
        image_id = f'{split}_{record["index"] + 1:06d}'
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format='JPEG', quality=JPEG_QUALITY, subsampling=0)
        self._write(f'VOC2012/JPEGImages/{image_id}.jpg', buf.getvalue())
        height, width = image.shape[:2]
        root = ET.Element('annotation')
        _sub(root, 'folder', 'VOC2012')
        _sub(root, 'filename', f'{image_id}.jpg')
        _sub(root, 'scene', record['scene'])
        if 'duplicate_of' in record:
            _sub(root, 'duplicate_of', f'{split}_{record["duplicate_of"] + 1:06d}')
        size = _sub(root, 'size')
        _sub(size, 'width', width)
        _sub(size, 'height', height)
        _sub(size, 'depth', 3)
        _sub(root, 'segmented', 0)
        for obj in record['objects']:
            x0, y0, x1, y1 = obj['box']
            node = _sub(root, 'object')
            _sub(node, 'name', SHAPES_CLASSES[obj['label']])
            _sub(node, 'pose', 'Unspecified')
            _sub(node, 'truncated', int(x0 == 0 or y0 == 0 or x1 == width or y1 == height))
            _sub(node, 'difficult', 0)
            box = _sub(node, 'bndbox')
            _sub(box, 'xmin', x0 + 1)
            _sub(box, 'ymin', y0 + 1)
            _sub(box, 'xmax', x1)
            _sub(box, 'ymax', y1)
        ET.indent(root)
        self._write(f'VOC2012/Annotations/{image_id}.xml',
                    ET.tostring(root, encoding='utf-8', xml_declaration=False) + b'\n')
        self._ids.setdefault(split, []).append(image_id)

    def finish_split(self, split):
        """Write the split's image list."""
        self._write(f'VOC2012/ImageSets/Main/{split}.txt',
                    ''.join(f'{i}\n' for i in self._ids.pop(split, [])).encode())


WRITERS = dict(coco=CocoWriter, voc=VocWriter)


def _sub(parent, tag, text=None):
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = str(text)
    return node
