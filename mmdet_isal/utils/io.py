"""File writing that never leaves a half-written file behind."""
import json
import os
import os.path as osp
import tempfile


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    A crash, a signal or a full disk leaves either the old file or the new one, never a mix;
    the temporary file is removed on failure.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-' + osp.basename(path) + '-')
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, obj, indent: int = 1) -> None:
    """:func:`atomic_write_text` of ``obj`` as JSON."""
    atomic_write_text(path, json.dumps(obj, indent=indent))
