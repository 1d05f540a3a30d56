"""Train an mmdet config with mmdet-isal importable: mmdet's own tools/train.py, unchanged.

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--cfg-options k=v ...]

mmdet ships its training script inside the installed package (mmdet/.mim/tools/train.py); this
runs it, so every flag of mmdet's script works here. Configs reach mmdet-isal's components
through ``custom_imports=dict(imports=['mmdet_isal'], allow_failed_imports=False)``.
"""
import os.path as osp
import runpy
import sys

import mmdet


def main():
    script = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    if not osp.isfile(script):
        sys.exit(f'error: mmdet {mmdet.__version__} has no {script}; reinstall mmdet 3.x')
    sys.argv[0] = script
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
