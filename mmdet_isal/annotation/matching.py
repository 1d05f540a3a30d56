"""Finding the pool image an exported image name stands for.

Annotation tools renumber image ids and rewrite paths: CVAT keeps the uploaded file's name
(with the folders it was uploaded in, if any), Label Studio prefixes uploads with eight hex
digits and a dash (``1a2b3c4d-img_001.jpg``) or keeps a local-files URL
(``/data/local-files/?d=photos/img_001.jpg``), a VOC file may name only the stem. An exported
name is matched to the pool's relative file names by the first rule that finds anything:

1. the same path (after normalising separators, URL quoting and ``./``);
2. one path ends with the other, by whole folder names (``images/a/x.jpg`` and ``a/x.jpg``);
3. the same file name (``x.jpg``);
4. the same file name once a Label Studio upload prefix is removed;
5. the same stem, for a name without an extension.

More than one pool image at the first rule that finds any is an ambiguity, reported, never
resolved by guessing.
"""
import os.path as osp
import re
import urllib.parse
from collections import defaultdict
from typing import Any, Dict, Hashable, List, Mapping, Tuple

#: Label Studio's prefix of uploaded files: 8 hex digits and a dash.
UPLOAD_PREFIX = re.compile(r'^[0-9a-f]{8}-')


def normalise(name: str) -> str:
    """A path or URL as a ``/``-separated relative path: URL scheme, host and quoting removed,
    Label Studio's local-files ``?d=`` taken, backslashes and ``./`` and leading ``/``
    dropped."""
    name = str(name).strip().replace('\\', '/')
    if '?d=' in name:
        name = name.split('?d=', 1)[1]
    parsed = urllib.parse.urlparse(name)
    if parsed.scheme in ('http', 'https', 's3', 'gs', 'azure-blob', 'file'):
        name = parsed.path
    name = urllib.parse.unquote(name)
    parts = [p for p in name.split('/') if p not in ('', '.')]
    return '/'.join(parts)


class NameMatcher:
    """Matches exported names to keys (pool image ids) by their relative file names.

    Args:
        names: ``{key: relative file name}``.
    """

    def __init__(self, names: Mapping[Hashable, str]):
        self.names = {k: normalise(v) for k, v in names.items()}
        self._exact: Dict[str, List[Hashable]] = defaultdict(list)
        self._base: Dict[str, List[Hashable]] = defaultdict(list)
        self._stem: Dict[str, List[Hashable]] = defaultdict(list)
        for key, name in self.names.items():
            self._exact[name].append(key)
            base = name.rsplit('/', 1)[-1]
            self._base[base].append(key)
            self._stem[osp.splitext(base)[0]].append(key)

    def _suffix(self, name: str) -> List[Hashable]:
        parts = name.split('/')
        found = []
        for key in self._base.get(parts[-1], []):  # a suffix match shares the file name
            other = self.names[key].split('/')
            n = min(len(parts), len(other))
            if n > 1 and parts[-n:] == other[-n:]:
                found.append(key)
        return found

    def match(self, name: str) -> List[Hashable]:
        """The keys ``name`` stands for, by the first rule (module docstring) that finds any;
        ``[]`` if none does."""
        norm = normalise(name)
        base = norm.rsplit('/', 1)[-1]
        rules = (lambda: self._exact.get(norm, []), lambda: self._suffix(norm),
                 lambda: self._base.get(base, []),
                 lambda: self._base.get(UPLOAD_PREFIX.sub('', base), [])
                 if UPLOAD_PREFIX.match(base) else [],
                 lambda: self._stem.get(base, []) if not osp.splitext(base)[1] else [])
        for rule in rules:
            found = rule()
            if found:
                return list(found)
        return []

    def match_all(self, names: List[Tuple[Any, str]]
                  ) -> Tuple[Dict[Any, Hashable], List[Any], Dict[Any, List[Hashable]]]:
        """Match ``(item, name)`` pairs.

        Returns:
            (``{item: key}`` for the unique matches, the items matching nothing,
            ``{item: keys}`` for the ambiguous ones).
        """
        matched, unmatched, ambiguous = {}, [], {}
        for item, name in names:
            keys = self.match(name)
            if len(keys) == 1:
                matched[item] = keys[0]
            elif keys:
                ambiguous[item] = keys
            else:
                unmatched.append(item)
        return matched, unmatched, ambiguous
