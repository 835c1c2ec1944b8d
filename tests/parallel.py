"""How `make test` splits the suite over pytest-xdist workers: tests that share a built thing run on one worker.

`make test` runs three workers on the 2-core machine (`-n 3`, PYTEST_WORKERS). The suite's long parts are CPU-bound
compiles and idle waits on Slurm; the workers overlap them. Two rules keep that correct and quick:

* Tests that share a session-scoped build run on one worker, so it is built once per run: every test that
  uses the `compiled` fixture (tests/compiled.py: the AOTInductor packages, minutes on 2 cores) is in the
  "compiled" group. The scheduler only sees node ids, so the groups are a table (GROUPS) and every collected
  test is checked against it: a test that asks for `compiled` outside its group stops the run with a message
  naming it, instead of silently building everything twice. The native binary needs no group: its build
  takes a lock and the second worker finds it built (sweep/native.py).
* The rest runs one test file per work unit, heaviest first (FIRST), so that the long units start at once
  and the short ones fill in at the end.

Three workers on two cores oversubscribe them on purpose, and OpenMP threads that spin while they wait would burn
the CPU the other workers need: workers (and the runner processes they start) default OMP_WAIT_POLICY to PASSIVE.
On the 2-core machine that took a cold `-n 3` run from 465 s to 446 s (bench/results/test-suite-timing.md).

pytest-xdist's own `--dist loadgroup` would do the grouping, but it marks groups by rewriting node ids, which
pytest 9.2 no longer honours (pytest-xdist issue 1386): here the scheduler is pytest-xdist's load-scope
scheduler with its documented hook (`pytest_xdist_make_scheduler`) and our scope function. Without xdist
(`pytest` with no `-n`) nothing here changes the run.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

# group name -> the node-id prefixes (a file, or file::test) that must run on one worker
GROUPS: dict[str, tuple[str, ...]] = {
    "compiled": (
        "tests/test_compile.py",
        "tests/test_detector_e2e.py",
        "tests/test_models.py::test_aot_inductor",
    ),
}
# fixture name -> the group every test using it must be in
SHARED_FIXTURES = {"compiled": "compiled"}

# Work units in the order they are handed out (heaviest first, from `--durations` on the 2-core machine);
# units not listed follow in collection order. Only the wall time depends on this, never a result.
FIRST = (
    "compiled",  # the shared AOTInductor builds (~2 min), then every test that runs them; the native build
    "tests/test_slurm.py",  # mostly waiting on Slurm (a time limit alone is a minute)
    "tests/test_models.py",  # a full Inductor compile of the tiny detector
    "tests/test_sweep_e2e.py",
    "tests/test_compare.py",
    "tests/test_runner_fidelity.py",
    "tests/test_orchestrate.py",
    "tests/test_calibrate.py",
    "tests/test_native.py",
    "tests/test_execute.py",
    "tests/test_matrix_bombs.py",
    "tests/test_pool_cpus.py",
)


def _path_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def scope_of(nodeid: str) -> str:
    """The work unit of a test: its group when GROUPS names it, else its file."""
    for group, prefixes in GROUPS.items():
        for prefix in prefixes:
            if nodeid == prefix or nodeid.startswith(prefix + "::") or (
                    "::" in prefix and nodeid.startswith(prefix + "[")):
                return group
    return _path_of(nodeid)


def _rank(scope: str) -> int:
    return FIRST.index(scope) if scope in FIRST else len(FIRST)


def check_groups(items: list[pytest.Item]) -> None:
    """A test that uses a shared fixture outside that fixture's group: stop, naming the test and the table."""
    wrong = [f"{item.nodeid} (uses `{fixture}`)"
             for item in items
             for fixture, group in SHARED_FIXTURES.items()
             if fixture in getattr(item, "fixturenames", ()) and scope_of(item.nodeid) != group]
    if wrong:
        raise pytest.UsageError(f"tests/parallel.py: these tests share a session build but are not in its GROUPS "
                                f"entry, so two workers would each build it: {', '.join(wrong)}")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # before any test module imports torch (and so loads OpenMP)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    check_groups(items)
    if hasattr(config, "workerinput"):  # an xdist worker: hand the scheduler its units heaviest first
        items.sort(key=lambda item: _rank(scope_of(item.nodeid)))  # stable: file order is kept within a unit


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Load-scope scheduling over scope_of's units, in collection order (which the workers sorted by FIRST)."""
    if config.getvalue("dist") in ("no", "each"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    config.option.loadscopereorder = False  # keep FIRST's order, not "most tests first"
    return GroupScheduling(config, log)
