"""Fixtures of the data set tests."""
import hashlib
import os

import pytest


def _file_hashes(root):
    """Relative path -> SHA-256 of every file under root."""
    hashes = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                hashes[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


@pytest.fixture
def file_hashes():
    """``file_hashes(root)``: relative path -> SHA-256 of every file under root."""
    return _file_hashes
