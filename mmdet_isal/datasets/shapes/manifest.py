"""``shapes_manifest.json``: what a folder of the synthetic shapes data set was made with.

The manifest records the generator, its version, the settings (``params``), whether the run
finished (``complete``), the summary it returned and each file's SHA-256. It lets a second run
with the same settings check the files instead of writing them again, and makes the generator
refuse a folder that holds someone else's files or a set made with other settings.

``num_test`` is recorded only when it is > 0: a set without a test split has the manifest that
sets written before the test split existed have, byte for byte, and such a manifest reads as
``num_test`` 0.
"""
import hashlib
import json
import os

from .writers import VERSION

MANIFEST = 'shapes_manifest.json'
# The module that first wrote these manifests; folders written before the generator became a
# subpackage carry this name, so it stays the mark of "written by this generator".
GENERATOR = 'mmdet_isal.datasets.synthetic'


def write_manifest(out_dir, params, summary=None, files=None, generator=GENERATOR,
                   version=VERSION):
    """Write the manifest: ``complete`` when given the summary and the files' hashes.

    Args:
        out_dir (str): The data set's folder.
        params (dict): The settings, as ``make_shapes_dataset`` checked them.
        summary (dict | None): The summary of a finished run; None for a run that starts.
        files (dict | None): Relative path -> SHA-256 of every file written.
        generator (str): The mark of the generator that wrote the folder (the classification
            sets have their own, so that neither generator takes the other's folder).
        version (int): The version of that generator's files.
    """
    recorded = dict(params)
    if not recorded.get('num_test'):
        recorded.pop('num_test', None)
    manifest = dict(generator=generator, version=version, params=recorded,
                    complete=summary is not None)
    if summary is not None:
        manifest.update(summary=summary, files=files)
    _write_json(os.path.join(out_dir, MANIFEST), manifest)


def check_out_dir(out_dir, params, generator=GENERATOR, version=VERSION):
    """Return the manifest of a previous run with the same params, or None for a new folder.

    A set without a test split (``num_test`` 0, or none recorded) may be asked for one: its
    manifest is returned, with ``params['num_test']`` filled in as 0. ``generator`` and
    ``version`` are the marks :func:`write_manifest` wrote.

    Raises:
        FileExistsError: ``out_dir`` is a file, or a non-empty folder with no manifest of this
            generator, or a set made with other settings.
    """
    if not os.path.exists(out_dir):
        return None
    if not os.path.isdir(out_dir):
        raise FileExistsError(f'{out_dir} exists and is not a folder; pass a new folder')
    if not os.listdir(out_dir):
        return None
    manifest_path = os.path.join(out_dir, MANIFEST)
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get('generator') != generator:
        raise FileExistsError(
            f'{out_dir} is not empty and was not written by this generator (no valid '
            f'{MANIFEST}); pass a new or empty folder. Nothing was changed.')
    manifest['params'] = dict(manifest.get('params') or {})
    manifest['params'].setdefault('num_test', 0)
    there = dict(manifest['params'], version=manifest.get('version'))
    asked = dict(params, version=version)
    differ = [k for k, v in asked.items() if there.get(k) != v]
    if differ == ['num_test'] and there['num_test'] == 0:
        return manifest  # a set without a test split: the caller adds one
    if differ:
        diff = ', '.join(f'{k} {there.get(k)!r} there, {asked[k]!r} asked' for k in differ)
        hint = ''
        if differ == ['num_test'] and generator == GENERATOR:
            hint = (f' To use this set, ask for its test split: num_test={there["num_test"]!r} '
                    f'(tools/make_toy_dataset.py --num-test {there["num_test"]!r}).')
        raise FileExistsError(
            f'{out_dir} holds a shapes data set made with other settings ({diff}); pass '
            f'another folder, or delete that one yourself. Nothing was changed.{hint}')
    return manifest


def files_intact(out_dir, hashes):
    """Whether every file listed in a complete manifest exists with its recorded SHA-256."""
    if not hashes:
        return False
    for rel_path, digest in hashes.items():
        try:
            with open(os.path.join(out_dir, rel_path), 'rb') as f:
                if hashlib.sha256(f.read()).hexdigest() != digest:
                    return False
        except OSError:
            return False
    return True


def _write_json(path, obj):
    """Write obj as JSON; return the bytes written."""
    data = json.dumps(obj, indent=1).encode() + b'\n'
    with open(path, 'wb') as f:
        f.write(data)
    return data
