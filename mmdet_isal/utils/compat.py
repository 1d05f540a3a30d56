"""Version guard for the OpenMMLab stack, run when ``mmdet_isal`` is imported."""
from importlib import metadata

from packaging.version import Version

# (distribution, lowest allowed, first refused, what to install)
SUPPORTED = (
    ('mmcv', '2.0.0rc4', '2.2.0', '"mmcv>=2.0.0rc4,<2.2.0" (mmdet 3.3 refuses mmcv 2.2)'),
    ('mmengine', '0.7.1', '1.0.0', '"mmengine>=0.7.1,<1.0.0"'),
    ('mmdet', '3.0.0', '3.4.0', '"mmdet>=3.0.0,<3.4.0"'),
)


def check_dependencies(supported=SUPPORTED):
    """Raise ``ImportError`` naming every missing or out-of-range package and what to install.

    Reads installed distribution metadata only, so it is cheap and cannot itself fail on a
    half-broken install.
    """
    problems = []
    for dist, low, high, hint in supported:
        try:
            found = metadata.version(dist)
        except metadata.PackageNotFoundError:
            problems.append(f'{dist} is not installed: pip install {hint}')
            continue
        if not Version(low) <= Version(found) < Version(high):
            problems.append(f'{dist} {found} is installed but mmdet-isal needs '
                            f'{low} <= {dist} < {high}: pip install {hint}')
    if problems:
        raise ImportError('mmdet-isal cannot start:\n  ' + '\n  '.join(problems) +
                          '\nSee README.md, "Install", for the CPU and GPU recipes.')
