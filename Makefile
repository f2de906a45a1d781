# Two commands do everything on a fresh machine with Python 3.11+:
#   make run   - check, report, compile and run the standard-library patterns
#   make test  - lint, type-check and run the test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint gpu-test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the CPU build of torch; an unpinned torch would pull a multi-gigabyte CUDA build
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m patternc.mainjob

lint: $(STAMP)
	$(VENV)/bin/ruff check patternc tests benchmarks examples
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -n 2 -q

gpu-test: $(STAMP)
	$(PY) -m pytest -q -m gpu

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
