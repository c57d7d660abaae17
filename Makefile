# Two commands for a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: train test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

train: $(VENV)/.installed
	$(PY) scripts/train.py --depth-adapt

test: $(VENV)/.installed
	$(PY) -m pytest -n auto --dist loadfile  # one worker per core; a file's tests share a worker (and its compiled code)

bench: $(VENV)/.installed
	-$(PY) -m pip install -q -e ".[bench]"  # torch for vs_torch; without it that benchmark says so and skips
	$(PY) benchmarks/run_all.py --quick

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check resflow scripts tests benchmarks
	$(VENV)/bin/ruff format --check resflow scripts tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
