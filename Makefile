# Two commands for a fresh machine: `make train` and `make test`. `make data` installs Fashion-MNIST.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: train test data lint bench clean docs-numbers docs

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

train: $(VENV)/.installed
	$(PY) scripts/train.py --depth-adapt

test: $(VENV)/.installed
	$(PY) -m pytest -n auto --dist loadfile --no-loadscope-reorder --durations=15  # one worker per core; a file's tests share a worker (and its compiled code), heavy files first (tests/conftest.py); the 15 slowest listed

# Fashion-MNIST: Debian's dataset-fashion-mnist (the four IDX files, where resflow's loader looks
# by default). Installs it with apt-get (as root, or through sudo; `apt-get update` first only when
# apt does not know the package); elsewhere says what to do. Already there: says so, exit 0.
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist
FASHION_MNIST_FILES := train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
FASHION_MNIST_PKG := dataset-fashion-mnist

data:
	@have() { for f in $(FASHION_MNIST_FILES); do \
	    [ -f "$(FASHION_MNIST_DIR)/$$f" ] || [ -f "$(FASHION_MNIST_DIR)/$$f.gz" ] || return 1; done; }; \
	if have; then echo "make data: Fashion-MNIST is already installed in $(FASHION_MNIST_DIR)"; exit 0; fi; \
	manual="put the four IDX files ($(FASHION_MNIST_FILES); .gz or not) into $(FASHION_MNIST_DIR), or pass --data-path <folder> to scripts/train.py"; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "make data: no apt-get on this machine: $$manual" >&2; exit 1; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "make data: installing $(FASHION_MNIST_PKG) needs root and there is no sudo: run apt-get install $(FASHION_MNIST_PKG) as root, or $$manual" >&2; exit 1; fi; \
	apt-cache show $(FASHION_MNIST_PKG) >/dev/null 2>&1 || $$sudo apt-get update || true; \
	if ! $$sudo apt-get install -y $(FASHION_MNIST_PKG); then \
	    echo "make data: apt-get could not install $(FASHION_MNIST_PKG): $$manual" >&2; exit 1; fi; \
	if ! have; then echo "make data: $(FASHION_MNIST_PKG) is installed but $(FASHION_MNIST_DIR) lacks the IDX files: $$manual" >&2; exit 1; fi; \
	echo "make data: Fashion-MNIST installed in $(FASHION_MNIST_DIR)"

# Rerun everything that writes docs/results/*.json and the numbers the pages quote: the examples
# in docs/examples (training_runs.py: `make train`'s digits run and the circles study, about 4
# minutes; the dynamics examples, a few minutes each) and the noise study; then rewrite the
# marked numbers in README.md, docs/ and benchmarks/ (scripts/docs_numbers.py --write). Run it
# whenever a change of the training or analysis code moves numbers (tests/test_docs_numbers.py
# reruns the circles headline and fails until then). Not rerun here: the full reproduction
# (python scripts/reproduce.py, about an hour; it rewrites docs/results.md itself) and the
# benchmarks' timings (make bench).
DOCS_EXAMPLES := $(sort $(wildcard docs/examples/*.py))

docs-numbers: $(VENV)/.installed
	set -e; for example in $(DOCS_EXAMPLES); do echo "== $$example"; $(PY) $$example; done
	$(PY) scripts/noise_robustness.py --out docs/results/noise_robustness \
	    --numbers docs/results/noise_robustness.json --no-progress
	$(PY) scripts/docs_numbers.py --write

# The documentation site (mkdocs.yml) into site/: open site/index.html, nothing is fetched from the
# network. Strict: a broken link or an unresolvable docstring reference fails the build. The
# gallery shows the committed figures; RESFLOW_DOCS_RUN_EXAMPLES=1 reruns the examples first.
docs: $(VENV)/.installed
	$(PY) -m mkdocs build --strict

bench: $(VENV)/.installed
	-$(PY) -m pip install -q -e ".[bench]"  # torch for vs_torch; without it that benchmark says so and skips
	$(PY) benchmarks/run_all.py --quick

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check resflow scripts tests benchmarks
	$(VENV)/bin/ruff format --check resflow scripts tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache site
