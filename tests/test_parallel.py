"""The xdist split of the suite (tests/parallel.py): which work unit a test lands in, and the shared-build check."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests import parallel


@pytest.mark.parametrize(("nodeid", "scope"), [
    ("tests/test_compile.py::test_compile_builds_once_then_everything_is_cached", "compiled"),
    ("tests/test_detector_e2e.py::test_tiny_detector_through_every_cpu_runtime", "compiled"),
    ("tests/test_models.py::test_aot_inductor", "compiled"),
    ("tests/test_models.py::test_aot_inductor[x]", "compiled"),
    ("tests/test_models.py::test_aot_inductor_elsewhere", "tests/test_models.py"),  # a prefix ends at a boundary
    ("tests/test_models.py::test_torch_export[strict]", "tests/test_models.py"),
    ("tests/test_compile.pyx::test_a", "tests/test_compile.pyx"),
    ("tests/test_report.py::TestX::test_y", "tests/test_report.py"),  # one unit per file, classes included
])
def test_scope_of(nodeid: str, scope: str) -> None:
    assert parallel.scope_of(nodeid) == scope


def item(nodeid: str, *fixtures: str) -> Any:
    return SimpleNamespace(nodeid=nodeid, fixturenames=list(fixtures))


def test_a_test_using_the_shared_build_outside_its_group_stops_the_run() -> None:
    parallel.check_groups([item("tests/test_compile.py::test_a", "compiled", "tmp_path"),
                           item("tests/test_models.py::test_aot_inductor", "compiled"),
                           item("tests/test_report.py::test_b", "tmp_path")])
    with pytest.raises(pytest.UsageError, match=r"tests/test_report.py::test_new \(uses `compiled`\)"):
        parallel.check_groups([item("tests/test_compile.py::test_a", "compiled"),
                               item("tests/test_report.py::test_new", "compiled")])


def test_this_session_passed_the_check(request: pytest.FixtureRequest) -> None:
    """Every test collected in this session (all of them, in `make test`) is where its shared builds are."""
    items = request.session.items
    if not any("compiled" in getattr(i, "fixturenames", ()) for i in items):
        pytest.skip("no test of this session uses `compiled` (e.g. make test-fast): nothing to check")
    parallel.check_groups(items)


def test_heavy_units_go_first() -> None:
    ranks = [parallel._rank(s) for s in ("compiled", "tests/test_slurm.py", "tests/test_report.py")]
    assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] == len(parallel.FIRST)
