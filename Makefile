# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# everything on first use (about 15 minutes, most of it building mmcv's CPU ops once; pip's
# wheel cache makes later installs take seconds).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
DATA := data/shapes
DEMO := work_dirs/demo

.PHONY: install demo test data clean

install: $(STAMP)

# Order matters: the pinned CPU torch first (a bare "torch" pulls a CUDA build), then mmcv
# built against it with the old setuptools its setup.py needs, then the rest.
$(STAMP): setup.py requirements/*.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements/cpu.txt
	$(PIP) install -r requirements/build.txt
	MMCV_WITH_OPS=1 MAX_JOBS=2 $(PIP) install --no-build-isolation "mmcv==2.1.0"
	$(PIP) install -r requirements/runtime.txt -r requirements/tests.txt
	$(PIP) install --no-build-isolation --no-deps -e .
	$(PY) -c "import mmdet_isal, mmcv.ops; print('mmdet-isal', mmdet_isal.__version__, 'installed')"
	touch $(STAMP)

data: $(STAMP)
	test -f $(DATA)/annotations/instances_train.json || $(PY) tools/make_toy_dataset.py --out $(DATA) --seed 0

demo: data
	$(PY) tools/train.py configs/toy/fcos_shapes.py --work-dir $(DEMO)/fcos_shapes

test: $(STAMP)
	$(PY) -m pytest tests -q

clean:
	rm -rf $(VENV) $(DEMO)
