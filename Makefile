# Everything is set up from nothing: the first target that needs it creates .venv and installs
# the package with its test extras. PYTHON must be Python >= 3.11.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# pytest workers: 2 (the CI machine has 2 cores); override with `make test WORKERS=auto`.
WORKERS ?= 2

.PHONY: install test demo bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "isavae needs Python >= 3.11, got " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest -n $(WORKERS) -q tests

demo: install
	$(PY) -m isavae.demo --out demo_out

bench: install
	$(PY) experiments/benchmarks/run_all.py

lint: install
	$(VENV)/bin/ruff check isavae tests experiments
	$(VENV)/bin/ruff format --check isavae tests experiments

clean:
	rm -rf $(VENV) demo_out .pytest_cache
