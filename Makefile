# Set-up is part of every target: a fresh machine needs nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# A CPU build of PyTorch; a newer or unpinned torch may pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test test-all lint docs bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@# The fused C++ kernels, built once for this CPU (otherwise on first use; without a compiler
	@# tkam warns and runs its eager PyTorch code).
	$(PY) -c "import sys; from tkam.kan.native import main; sys.exit(main())" || \
		echo "note: the fused kernels could not be built; tkam will use its eager code"
	@# Fashion-MNIST from Debian (offline data for the fmnist config and its tests); optional.
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1)) || \
		echo "note: could not install dataset-fashion-mnist; the fmnist tests will be skipped"; \
	fi
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tkam train digits --out runs/demo --overwrite

# The static checks first (lint), then the tests.
test: lint
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

# Lint, the formatter's check and the type checker (mypy on src/tkam, set up in pyproject.toml).
lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m mypy

# The documentation (docs/, mkdocs.yml) into site/; any warning (a broken link or anchor, a
# docstring that disagrees with its signature) fails the build.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

bench: $(STAMP)
	$(PY) benchmarks/prior_sampling.py

clean:
	rm -rf $(VENV) runs site .pytest_cache
