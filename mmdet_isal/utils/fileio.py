"""Atomic file writes: a reader (or a resumed run) never sees a half-written file."""
import json
import os
import tempfile
from typing import Any, Union


def atomic_write(path: str, data: Union[str, bytes]) -> None:
    """Write ``data`` (text or bytes) to ``path`` through a temporary file in the same directory
    and a rename.

    ``os.replace`` is atomic within one file system, which is why the temporary file lives next
    to the target rather than in the system's temp directory.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.',
                               suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb' if isinstance(data, bytes) else 'w') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; use what open() would
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str, obj: Any, indent: int = None) -> None:
    """Serialise ``obj`` as JSON and write it atomically.

    NaN, infinities and objects JSON has no form for are refused (``ValueError`` /
    ``TypeError`` naming ``path``; the file keeps its previous content): nothing is silently
    written as ``null`` or a string.
    """
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False)
    except ValueError as e:
        raise ValueError(f'{path} was not written: the data holds NaN or an infinity ({e})') \
            from None
    except TypeError as e:
        raise TypeError(f'{path} was not written: {e}') from None
    atomic_write(path, text)
