"""Checks of image files before any training: what mmdet's loader would fail on, or read wrongly.

Real pools are messy. Three defects pass a check that only opens each file's header:

- a file **truncated** after its header: mmdet's ``LoadImageFromFile`` later stops training with
  ``AssertionError: failed to load image`` (OpenCV returns nothing for a PNG or JPEG cut
  short);
- two entries of an annotation file pointing at **one file**: one image labeled twice;
- an entry whose ``width``/``height`` **disagree with the file** (1024x768 claimed, 128x128 on
  disk). EXIF orientation makes this common with phone photos: OpenCV, and so mmdet, loads a
  photo rotated as its EXIF tag says, so its size is the displayed one, not the stored one.

:func:`check_image_entries` finds all three and every missing or unreadable file, and raises
one :class:`~mmdet_isal.datasets.validate.AnnotationError` listing each kind of problem with a
count and examples. Two depths:

- ``'header'`` (default, about 0.1 ms per image): each file's header (PIL) and EXIF orientation,
  plus a look at the file's last bytes for the formats that end in a known marker (PNG's
  ``IEND``, JPEG's ``EOI``, GIF's trailer, WebP's and BMP's declared sizes). A file whose end is
  missing is then decoded to confirm, so a truncated PNG or JPEG is found at this depth too.
- ``'decode'``: every image is decoded in full (PIL, strict) and its content hashed, once: the
  result is cached by path, size and modification time (:class:`DecodeCache`), so a re-run is
  instant. Files with identical content under different names are reported as a note.

:func:`explain_image_failures` turns an image that still fails to load during training or
scoring into one :class:`ImageLoadError` naming its image id and path, instead of a traceback.
"""
import hashlib
import json
import os
import os.path as osp
import re
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from PIL import Image, UnidentifiedImageError

from ..utils.fileio import atomic_write_json
from .validate import Problems

#: How deeply :func:`check_image_entries` looks at each file.
CHECK_DEPTHS = ('header', 'decode')
#: The EXIF tag of the orientation, and its values that swap width and height (90° turns).
EXIF_ORIENTATION = 0x0112
SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
#: Where the decode cache lives: ``$MMDET_ISAL_CACHE`` or ``~/.cache/mmdet_isal``.
CACHE_ENV = 'MMDET_ISAL_CACHE'
_PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'

MISSING = 'image files missing'
UNREADABLE = 'image files that cannot be read as images'
TRUNCATED = ('image files that are truncated or corrupt (their pixel data does not decode; '
             'mmdet would stop on them with "failed to load image")')
WRONG_SIZE = ('images whose width/height in the annotation file disagree with the file (boxes '
              'drawn for one size are wrong on the other)')
SAME_FILE = 'image entries that point at the same file (one image would be labeled twice)'
SAME_CONTENT = 'images with identical content under different names (byte-identical files)'
#: The kinds of a file's own problem, in a few words (for lists of files).
SHORT_KINDS = {MISSING: 'missing', UNREADABLE: 'not an image', TRUNCATED: 'truncated or corrupt'}


class ImageLoadError(RuntimeError):
    """An image failed to load during training or scoring; the message names its id and path."""


@dataclass(frozen=True)
class ImageEntry:
    """One image of an annotation file, for :func:`check_image_entries`.

    Args:
        image_id: its id in the file (int for COCO, the file stem for VOC).
        path: where its file is.
        width, height: the size the annotation file gives it, in pixels (``None``: not
            checked).
    """
    image_id: Any
    path: str
    width: Optional[float] = None
    height: Optional[float] = None


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`inspect_image` found in one file.

    Attributes:
        width, height: the size mmdet's loader gives the image, in pixels: the stored size,
            swapped when the EXIF orientation turns the image by 90°.
        stored: (width, height) as stored in the file.
        orientation: the EXIF orientation (1 when there is none).
        problem: ``None``, or ``(kind, detail)``: kind one of :data:`MISSING`,
            :data:`UNREADABLE`, :data:`TRUNCATED`.
        sha256: the file's content hash (decode depth only, else ``None``).
        file_key: ``(device, inode)`` of the file: one file under two spellings of its path,
            or through a link, has one key (``None`` for a missing file).
    """
    width: int = 0
    height: int = 0
    stored: Tuple[int, int] = (0, 0)
    orientation: int = 1
    problem: Optional[Tuple[str, str]] = None
    sha256: Optional[str] = None
    file_key: Optional[Tuple[int, int]] = None


def read_header(path) -> ImageInfo:
    """The size and EXIF orientation of the image at ``path`` (a path or an open binary
    file), from its header.

    Raises:
        FileNotFoundError: there is no file.
        OSError, ValueError, UnidentifiedImageError: it is not an image PIL can open.
    """
    with Image.open(path) as img:
        stored = img.size
        if min(stored) < 1:
            raise UnidentifiedImageError(f'size {stored}')
        orientation = _orientation(img)
    width, height = stored[::-1] if orientation in SWAPPING_ORIENTATIONS else stored
    return ImageInfo(width, height, tuple(stored), orientation)


def _orientation(img) -> int:
    """The EXIF orientation in an open image's header (1 without one). Read from the raw EXIF
    block the header holds (JPEG's APP1, WebP's chunk, TIFF's tags), never through
    ``getexif()`` on a PNG, which decodes the whole image to look for a late eXIf chunk."""
    try:
        if img.format == 'TIFF':
            tags = img.getexif()
        else:
            raw = img.info.get('exif')
            if not raw:
                return 1
            tags = Image.Exif()
            tags.load(raw)
        return int(tags.get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a malformed EXIF block: OpenCV's loader ignores it, and so do we
        return 1


def tail_intact(path: str) -> Optional[bool]:
    """Whether the file ends as its format says it must: ``True``/``False``, or ``None`` for a
    format without a cheap end check (then only the decode depth finds a truncation).

    Reads the first 16 and the last 16 bytes: a file cut after its header fails here.
    """
    with open(path, 'rb') as f:
        return _ends_intact(f, os.fstat(f.fileno()).st_size)


def _ends_intact(f, size: int) -> Optional[bool]:
    """:func:`tail_intact` of the open binary file ``f`` of ``size`` bytes (left at 0)."""
    f.seek(0)
    head = f.read(16)
    f.seek(max(0, size - 16))
    tail = f.read(16)
    f.seek(0)
    if head.startswith(b'\x89PNG\r\n\x1a\n'):
        return tail.endswith(_PNG_END)
    if head.startswith(b'\xff\xd8'):
        # some cameras pad after the end-of-image marker; a mismatch is confirmed by decoding
        return tail.rstrip(b'\x00\r\n ').endswith(b'\xff\xd9')
    if head[:6] in (b'GIF87a', b'GIF89a'):
        return tail.endswith(b';')
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return int.from_bytes(head[4:8], 'little') + 8 <= size
    if head[:2] == b'BM':
        return int.from_bytes(head[2:6], 'little') <= size
    return None


def decode_image(path: str) -> Tuple[Optional[str], str]:
    """Decode every pixel of ``path`` (PIL, refusing truncated data) and hash its bytes.

    Returns:
        (error or ``None``, the file's SHA-256 hex digest).
    """
    with open(path, 'rb') as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(path) as img:
            img.load()
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for bad data
        return f'{type(e).__name__}: {e}', digest
    return None, digest


def file_digest(path: str) -> str:
    """SHA-256 hex digest of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


class DecodeCache:
    """Results of :func:`decode_image` (or, without decoding, of :func:`file_digest`) by path,
    valid while the file's size and modification time (ns) are unchanged; kept in
    ``<dir>/decoded_images.json``.

    Args:
        directory: where the cache file is; default ``$MMDET_ISAL_CACHE`` or
            ``~/.cache/mmdet_isal``.
    """

    FILE = 'decoded_images.json'

    def __init__(self, directory: Optional[str] = None):
        directory = directory or os.environ.get(CACHE_ENV) or osp.join(
            osp.expanduser('~'), '.cache', 'mmdet_isal')
        self.path = osp.join(directory, self.FILE)
        self._entries: Optional[Dict[str, dict]] = None  # read at the first look-up
        self._changed = False

    def _load(self) -> Dict[str, dict]:
        if self._entries is None:
            try:
                with open(self.path) as f:
                    self._entries = {k: v for k, v in json.load(f).items()
                                     if isinstance(v, dict)}
            except (OSError, ValueError, TypeError, AttributeError):
                self._entries = {}  # no cache yet, or an unreadable one: start afresh
        return self._entries

    def lookup(self, path: str, decode: bool = True) -> Tuple[Optional[str], str]:
        """``(decoding error or None, SHA-256)`` of ``path``: from the cache when the file is
        unchanged (and, if ``decode``, was decoded), else computed and kept. Without
        ``decode`` the error is always ``None`` (the file is only hashed)."""
        st = os.stat(path)
        key, stamp = osp.realpath(path), [st.st_size, st.st_mtime_ns]
        entries = self._load()
        hit = entries.get(key)
        if hit is not None and hit.get('stamp') == stamp and (hit.get('decoded') or not decode):
            return (hit.get('error') if decode else None), hit['sha256']
        error, digest = decode_image(path) if decode else (None, file_digest(path))
        entries[key] = dict(stamp=stamp, decoded=decode, error=error, sha256=digest)
        self._changed = True
        return error, digest

    def save(self) -> None:
        """Write the cache if anything was added (atomically; a failure to write it, e.g. a
        read-only home, only costs the next run its speed)."""
        if self._changed:
            try:
                atomic_write_json(self.path, self._entries)
            except OSError:
                pass
            self._changed = False


def inspect_image(path: str, decode: bool = False, cache: Optional[DecodeCache] = None,
                  digest: bool = False) -> ImageInfo:
    """Look at one image file: header, size, orientation; the end check, and with ``decode``
    (or when the end check fails) a full decode; with ``decode`` or ``digest`` the content
    hash (through ``cache`` when given).

    Never raises for a bad file: the problem is in :attr:`ImageInfo.problem`.
    """
    try:
        with open(path, 'rb') as f:  # one open for the header and the file's ends
            st = os.fstat(f.fileno())
            info = read_header(f)
            intact = _ends_intact(f, st.st_size)
    except FileNotFoundError:
        return ImageInfo(problem=(MISSING, ''))
    except (UnidentifiedImageError, OSError, ValueError) as e:
        return ImageInfo(problem=(UNREADABLE, str(e)))
    key = (st.st_dev, st.st_ino)
    if decode or intact is False or digest:
        full = decode or intact is False
        error, sha = cache.lookup(path, full) if cache is not None else \
            (decode_image(path) if full else (None, file_digest(path)))
        problem = (TRUNCATED, error) if error is not None else None
        return ImageInfo(info.width, info.height, info.stored, info.orientation, problem,
                         sha if (decode or digest) else None, key)
    return replace(info, file_key=key)


def _size_text(info: ImageInfo) -> str:
    text = f'{info.width}x{info.height}'
    if info.orientation in SWAPPING_ORIENTATIONS:
        text += (f' as loaded (stored {info.stored[0]}x{info.stored[1]}, EXIF orientation '
                 f'{info.orientation} turns it by 90 degrees)')
    return text


def _num(value) -> str:
    return f'{value:g}' if isinstance(value, float) else str(value)


def check_image_entries(entries: Iterable[ImageEntry], source: str, depth: str = 'header',
                        cache: Optional[DecodeCache] = None,
                        progress: Optional[Callable[[int], None]] = None) -> List[str]:
    """Check the image files of an annotation file; see the module docstring.

    Args:
        entries: the images, each with the size its annotation file gives it (if any).
        source: the annotation file, for messages.
        depth: ``'header'`` or ``'decode'`` (:data:`CHECK_DEPTHS`).
        cache: the decode cache; default a :class:`DecodeCache` in its default place
            (decode depth only).
        progress: called with the number of images checked so far, now and then.

    Returns:
        notes: findings that do not stop a run (identical content under different names), one
        line each, for the caller to log.

    Raises:
        AnnotationError: naming every missing, unreadable, truncated or wrongly sized file and
            every file two entries share, by image id and path.
        ValueError: ``depth`` is not one of :data:`CHECK_DEPTHS`.
    """
    if depth not in CHECK_DEPTHS:
        raise ValueError(f'check_images must be one of {CHECK_DEPTHS}, got {depth!r}')
    decode = depth == 'decode'
    if cache is None:
        cache = DecodeCache()
    problems, notes = Problems(f'the images of {source}'), Problems(f'the images of {source}')
    by_file: Dict[Tuple[int, int], List[ImageEntry]] = defaultdict(list)
    by_content: Dict[str, List[ImageEntry]] = defaultdict(list)
    for n, entry in enumerate(entries):
        if progress is not None and n % 1000 == 0:
            progress(n)
        where = f'{entry.path} (image id {entry.image_id!r})'
        info = inspect_image(entry.path, decode, cache)
        if info.file_key is not None:
            by_file[info.file_key].append(entry)
        if info.problem is not None:
            kind, detail = info.problem
            problems.add(kind, where + (f': {detail}' if detail else ''))
            continue
        if info.sha256 is not None:
            by_content[info.sha256].append(entry)
        if entry.width is not None and entry.height is not None and \
                (entry.width, entry.height) != (info.width, info.height):
            problems.add(WRONG_SIZE, f'{where}: the annotation file says '
                                     f'{_num(entry.width)}x{_num(entry.height)}, the file is '
                                     f'{_size_text(info)}')
    cache.save()
    for shared in by_file.values():
        if len(shared) > 1:
            problems.add(SAME_FILE, f'{shared[0].path}: image ids '
                                    f'{", ".join(repr(e.image_id) for e in shared[:5])}')
    for shared in by_content.values():
        if len({osp.realpath(e.path) for e in shared}) > 1:
            notes.add(SAME_CONTENT, ' = '.join(f'{e.path} (image id {e.image_id!r})'
                                               for e in shared[:3]))
    problems.raise_if_any('Fix or remove these images (this tool never modifies them), or '
                          'check data_root and data_prefix of the dataset in the config, then '
                          'run again.')
    return notes.lines()


# --- failures during training and scoring -------------------------------------------------------
#: What mmcv's LoadImageFromFile says when a file does not decode (also inside the text of a
#: data loader worker's re-raised exception).
_FAILED_LOAD = re.compile(r'failed to load image: (\S[^\n]*?)\s*$', re.MULTILINE)


def failed_image_path(exc: BaseException) -> Optional[str]:
    """The path of the image whose loading raised ``exc``, when ``exc`` is mmcv's "failed to
    load image" (directly or re-raised from a data loader worker); else ``None``."""
    match = _FAILED_LOAD.search(str(exc))
    return match.group(1).strip().strip('\'"') if match else None


@contextmanager
def explain_image_failures(where: str, image_ids: Optional[Mapping[str, Any]] = None
                           ) -> Iterator[None]:
    """Turn an image that fails to load inside the block into one :class:`ImageLoadError`
    naming ``where`` (e.g. ``'step_1 train'``), the image's id (looked up by path in
    ``image_ids``) and its path, and what to do; other exceptions pass unchanged."""
    try:
        yield
    except ImageLoadError:
        raise
    except Exception as e:
        path = failed_image_path(e)
        if path is None:
            raise
        image_id = (image_ids or {}).get(osp.normcase(osp.realpath(path)))
        named = f'image id {image_id!r} ({path})' if image_id is not None else path
        raise ImageLoadError(
            f'{where}: {named} could not be loaded (its data does not decode: truncated or '
            f'corrupt). Replace or remove the file; check_images=\'decode\' finds every such '
            f'file before training') from None


def ids_by_path(entries: Iterable[Tuple[Any, str]]) -> Dict[str, Any]:
    """``{normalised real path: image id}`` of ``(image id, path)`` pairs, for
    :func:`explain_image_failures`."""
    return {osp.normcase(osp.realpath(path)): image_id for image_id, path in entries}


def check_image_files(paths: Iterable[Tuple[Any, str]], source: str,
                      depth: str = 'header') -> List[str]:
    """:func:`check_image_entries` of ``(image id, path)`` pairs, without a size to compare:
    every missing, unreadable or truncated file and every file two ids share.

    Raises:
        AnnotationError: naming the files at fault.
    """
    return check_image_entries((ImageEntry(i, p) for i, p in paths), source, depth)
