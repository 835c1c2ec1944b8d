# make setup | test | demo | report | native | lint | slurm-up | slurm-down — what CI and a newcomer run.
# On a GPU machine whose image already has torch, skip the venv: PYTHONPATH=. python3 -m sweep ...
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch (pip takes it from local disk here); a plain `torch` would pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0
RESULTS ?= demo-results

.PHONY: setup test test-fast demo report native lint clean slurm-up slurm-down

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -ra -m "not slow"

demo: setup
	$(VENV)/bin/sweep run matrices/cpu.yaml --results $(RESULTS)
	$(VENV)/bin/sweep report --results $(RESULTS)

report: setup
	$(VENV)/bin/sweep report --results $(RESULTS) --out $(RESULTS)/RESULTS.md

# The same build `sweep run` does on first need (sweep/native.py): against the installed torch's libtorch,
# rebuilt when the sources or the torch it was built against change.
native: setup
	$(PY) -c 'from sweep.native import ensure_native; print(ensure_native())'

lint: setup
	$(VENV)/bin/ruff check sweep runners tests
	$(VENV)/bin/mypy sweep runners

# A single-node Slurm 22.05 with accounting (slurmdbd + MariaDB) on this machine, for `--executor slurm` and its
# tests (root; installs Debian's packages on first use; daemons run without systemd). Idempotent.
slurm-up:
	bash scripts/slurm/slurm.sh up

slurm-down:
	bash scripts/slurm/slurm.sh down

clean:
	rm -rf native/build artifacts $(RESULTS) .pytest_cache
