# make setup | test | demo | report | native | lint | bench-overhead | slurm-up | slurm-down — what CI and a
# newcomer run.
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
# pytest-xdist workers for `make test`: three on the 2-core machine overlap the compiles with the Slurm waits and the
# runner processes (tests/parallel.py keeps tests that share a build on one worker); PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 3

.PHONY: setup test test-fast demo report native lint bench-overhead clean slurm-up slurm-down

setup: $(VENV)/.installed

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# torch alone from its index, reinstalled when the stamp is new (a +cpu build satisfies torch==X too); --no-deps:
# its own dependencies come with the package's, from the usual index.
$(TORCH_STAMP): | $(PY)
	$(PY) -m pip install -q --no-deps --force-reinstall --index-url $(TORCH_INDEX_URL) '$(TORCH)'
	rm -f $(VENV)/.torch-*
	touch $@

$(VENV)/.installed: pyproject.toml $(TORCH_STAMP)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test: setup
	$(PY) -m pytest -q -ra -n $(PYTEST_WORKERS)

test-fast: setup
	$(PY) -m pytest -q -ra -n $(PYTEST_WORKERS) -m "not slow"

demo: setup
	$(VENV)/bin/sweep run matrices/cpu.yaml --results $(RESULTS)
	$(VENV)/bin/sweep report --results $(RESULTS)

report: setup
	$(VENV)/bin/sweep report --results $(RESULTS) --out $(RESULTS)/RESULTS.md

# The same build `sweep run` does on first need (sweep/native.py): against the installed torch's libtorch,
# rebuilt when the sources or the torch it was built against change.
native: setup
	$(PY) -c 'from sweep.native import ensure_native; print(ensure_native())'

# What the orchestrator itself costs on this machine (plan, a rerun that launches nothing, overhead per job);
# the figures are kept in bench/results/.
bench-overhead: setup
	$(PY) bench/overhead.py --out bench/results/overhead.json > bench/results/overhead.txt
	cat bench/results/overhead.txt

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
