"""The checks of image files (mmdet_isal.datasets.images): the three defects a header check let
through (a file truncated after its header, two entries on one file, a size in the JSON that
is not the file's, EXIF orientation included), the decode depth and its cache, and an image
that fails to load later named by id and path."""
import os

import mmcv
import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from PIL import Image

from mmdet_isal.datasets import AnnotationError, check_coco
from mmdet_isal.datasets import images as images_module
from mmdet_isal.datasets.images import (DecodeCache, ImageEntry, ImageLoadError,
                                        check_image_entries, explain_image_failures,
                                        ids_by_path, inspect_image)


def noise_image(path, width=64, height=48, seed=0, fmt='PNG', exif=None):
    """A random RGB image of ``width`` x ``height`` (stored size) at ``path``."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    options = {}
    if exif is not None:
        tags = Image.Exif()
        tags[0x0112] = exif
        options['exif'] = tags.tobytes()
    image.save(path, format=fmt, **options)
    return str(path)


def truncate(path, keep):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:keep])


def test_a_png_truncated_after_its_header_is_named_by_id_and_path(tmp_path):
    good = noise_image(tmp_path / 'good.png')
    bad = noise_image(tmp_path / 'bad.png', seed=1)
    truncate(bad, 200)  # the header (and the start of the pixel data) only
    with Image.open(bad) as img:
        assert img.size == (64, 48)  # the header check alone passes it
    with open(bad, 'rb') as f:
        assert mmcv.imfrombytes(f.read()) is None  # what mmdet's loader then gets
    with pytest.raises(AnnotationError) as err:
        check_image_entries([ImageEntry(1, good, 64, 48), ImageEntry(7, bad, 64, 48)], 'x.json')
    message = str(err.value)
    assert message.startswith('the images of x.json cannot be used:\n  - 1 image files that '
                              'are truncated or corrupt')
    assert f'e.g. {bad} (image id 7): ' in message and 'truncated' in message
    assert 'good.png' not in message


def test_a_jpeg_cut_short_is_found_at_the_header_depth(tmp_path):
    bad = noise_image(tmp_path / 'bad.jpg', 96, 96, fmt='JPEG')
    truncate(bad, os.path.getsize(bad) // 2)
    with open(bad, 'rb') as f:
        assert mmcv.imfrombytes(f.read()) is None  # mmdet's loader would fail on it
    info = inspect_image(bad)
    assert (info.width, info.height) == (96, 96)
    assert info.problem[0] == images_module.TRUNCATED and 'truncated' in info.problem[1]


def test_two_entries_sharing_a_file_name_are_refused(tmp_path):
    coco = dict(images=[dict(id=1, file_name='a.png', width=64, height=48),
                        dict(id=2, file_name='b.png', width=64, height=48),
                        dict(id=3, file_name='a.png', width=64, height=48)],
                annotations=[], categories=[dict(id=1, name='x')])
    with pytest.raises(AnnotationError, match=r"1 images sharing one file_name \(one image "
                                              r"would be labeled twice\), e.g. file_name "
                                              r"'a.png': image ids 1, 3"):
        check_coco(coco, 'pool.json')
    # the same file through another spelling of its path
    noise_image(tmp_path / 'a.png')
    entries = [ImageEntry(1, str(tmp_path / 'a.png')), ImageEntry(2, f'{tmp_path}/./a.png')]
    with pytest.raises(AnnotationError, match=r'1 image entries that point at the same file .*'
                                              r"a.png: image ids 1, 2"):
        check_image_entries(entries, 'pool.json')


def test_a_size_in_the_json_that_is_not_the_files_is_refused(tmp_path):
    path = noise_image(tmp_path / 'small.png', 128, 128)
    with pytest.raises(AnnotationError) as err:
        check_image_entries([ImageEntry(5, path, 1024, 768)], 'pool.json')
    assert (f'1 images whose width/height in the annotation file disagree with the file '
            f'(boxes drawn for one size are wrong on the other), e.g. {path} (image id 5): the '
            f'annotation file says 1024x768, the file is 128x128') in str(err.value)
    assert check_image_entries([ImageEntry(5, path, 128, 128)], 'pool.json') == []


def test_the_size_is_the_one_after_the_exif_rotation_as_mmdet_loads_it(tmp_path):
    # a phone photo: stored 160 wide and 120 high, EXIF orientation 6 (turn 90 degrees)
    path = noise_image(tmp_path / 'phone.jpg', 160, 120, fmt='JPEG', exif=6)
    assert mmcv.imread(path).shape[:2] == (160, 120)  # mmdet loads it 120 wide, 160 high
    info = inspect_image(path)
    assert (info.width, info.height, info.stored, info.orientation) == (120, 160, (160, 120), 6)
    assert check_image_entries([ImageEntry(1, path, 120, 160)], 'pool.json') == []
    with pytest.raises(AnnotationError, match=r'the annotation file says 160x120, the file is '
                                              r'120x160 as loaded \(stored 160x120, EXIF '
                                              r'orientation 6 turns it by 90 degrees\)'):
        check_image_entries([ImageEntry(1, path, 160, 120)], 'pool.json')


def test_decoding_finds_corrupt_pixel_data_once_and_the_cache_makes_a_rerun_instant(
        tmp_path, monkeypatch):
    paths = [noise_image(tmp_path / f'{k}.png', seed=k) for k in range(4)]
    with open(paths[2], 'rb') as f:
        data = bytearray(f.read())
    data[len(data) // 2:len(data) // 2 + 16] = bytes(16)  # corrupt the middle, keep the end
    with open(paths[2], 'wb') as f:
        f.write(bytes(data))
    entries = [ImageEntry(k, p, 64, 48) for k, p in enumerate(paths)]
    assert check_image_entries(entries, 'pool.json') == []  # headers and ends are intact
    decoded = []
    real = images_module.decode_image
    monkeypatch.setattr(images_module, 'decode_image', lambda p: decoded.append(p) or real(p))
    cache = DecodeCache(str(tmp_path / 'cache'))
    with pytest.raises(AnnotationError, match=r'1 image files that are truncated or corrupt.*'
                                              r'2.png \(image id 2\)'):
        check_image_entries(entries, 'pool.json', 'decode', cache)
    assert decoded == paths
    decoded.clear()
    with pytest.raises(AnnotationError, match=r'2.png \(image id 2\)'):
        check_image_entries(entries, 'pool.json', 'decode', DecodeCache(str(tmp_path / 'cache')))
    assert decoded == []  # every result from the cache
    noise_image(paths[2], seed=2)  # the file repaired: new size and time, decoded again
    assert check_image_entries(entries, 'pool.json', 'decode',
                               DecodeCache(str(tmp_path / 'cache'))) == []
    assert decoded == [paths[2]]


def test_identical_content_under_two_names_is_a_note(tmp_path):
    a = noise_image(tmp_path / 'a.png')
    b = tmp_path / 'copy_of_a.png'
    b.write_bytes(open(a, 'rb').read())
    notes = check_image_entries([ImageEntry(1, a), ImageEntry(2, str(b))], 'pool.json', 'decode',
                                DecodeCache(str(tmp_path / 'cache')))
    assert notes == [f'1 images with identical content under different names (byte-identical '
                     f'files), e.g. {a} (image id 1) = {b} (image id 2)']


def test_an_image_that_fails_to_load_later_is_named_by_id_and_path(tmp_path):
    bad = noise_image(tmp_path / 'bad.png')
    truncate(bad, 200)
    ids = ids_by_path([(3, str(tmp_path / 'ok.png')), (42, bad)])
    with pytest.raises(ImageLoadError) as err:
        with explain_image_failures('step_1 train', ids):
            LoadImageFromFile()(dict(img_path=bad))  # what mmdet's pipeline does
    assert str(err.value).startswith(f'step_1 train: image id 42 ({bad}) could not be loaded')
    assert "check_images='decode'" in str(err.value)
    with pytest.raises(KeyError):  # anything else passes unchanged
        with explain_image_failures('x', ids):
            raise KeyError('other')
    # a data loader worker re-raises the error inside a longer text
    worker = AssertionError(f'Caught AssertionError in DataLoader worker process 0.\nOriginal '
                            f'Traceback (most recent call last):\n  ...\nAssertionError: failed '
                            f'to load image: {bad}\n')
    with pytest.raises(ImageLoadError, match=r'image id 42 '):
        with explain_image_failures('scoring', ids):
            raise worker

