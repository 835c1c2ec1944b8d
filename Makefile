# make setup | test | demo | report | native | lint | slurm-up | slurm-down — what CI and a newcomer run.
# On a GPU machine whose image already has torch, skip the venv: PYTHONPATH=. python3 -m sweep ...
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch comes from PyTorch's CPU index: a plain `pip install torch` would pull the multi-GB CUDA build. Pinned;
# for a CUDA venv: make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130 (pip's own configuration,
# e.g. a local wheel folder, is still consulted, which is how this machine gets it without a network).
TORCH_VERSION ?= 2.13.0
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
TORCH ?= torch==$(TORCH_VERSION)
# One stamp per (TORCH, TORCH_INDEX_URL): changing either names a stamp that does not exist yet, so setup reruns.
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s %s' '$(TORCH)' '$(TORCH_INDEX_URL)' | cksum | cut -d' ' -f1)
RESULTS ?= sweep-results

.PHONY: setup test test-fast demo report native lint clean slurm-up slurm-down

setup: $(VENV)/.installed

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(TORCH_STAMP): | $(PY)
	$(PY) -m pip install -q --index-url $(TORCH_INDEX_URL) '$(TORCH)'
	rm -f $(VENV)/.torch-*
	touch $@

$(VENV)/.installed: pyproject.toml $(TORCH_STAMP)
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
