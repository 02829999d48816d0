# Two set-up commands (see README.md): `make run` and `make test`.
# Both create .venv on first use: the pinned CPU torch wheel first, then the package.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lightrestore-installed
ARGS ?=

.PHONY: setup run test test-gpu lint bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: setup
	$(PY) -m lightrestore experiment=ondemand_inpaint $(ARGS)

# one worker per core (pytest-xdist; at most 8): the suite is mostly single-threaded
# process start-up and tiny models. `make test TEST_JOBS=0` runs it in one process.
TEST_JOBS ?= auto
test: setup
	$(PY) -m pytest -n $(TEST_JOBS) --maxprocesses=8 $(ARGS)

# the GPU paths only (bf16, channels-last, compile, CUDA restore); they also run within
# `make test` on a machine with a GPU and are skipped without one
test-gpu: setup
	$(PY) -m pytest -m gpu $(ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests

clean-venv:
	rm -rf $(VENV)

bench: setup
	$(PY) -m benchmarks $(ARGS)
