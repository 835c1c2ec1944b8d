"""Shared test helpers: matrix files in a temp folder, the fixture models beside them, the CLI runner."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

FIXTURES = Path(__file__).parent / "fixtures"

pytest_plugins = ["tests.parallel"]  # how `make test` splits the suite over xdist workers


@pytest.fixture
def matrix_dir(tmp_path: Path) -> Path:
    """A folder holding the fault/small model factories, so matrices there can say factory: fault_models:small."""
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(FIXTURES / "fault_models.py", folder / "fault_models.py")
    shutil.copy(FIXTURES / "fixture_models.py", folder / "fixture_models.py")
    return folder


@pytest.fixture
def write_matrix(matrix_dir: Path):
    def write(text: str, name: str = "m.yaml") -> Path:
        path = matrix_dir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's compiled variants (tests/compiled.py): built once by the real compile step, then shared."""
    from tests.compiled import build

    return build(tmp_path_factory.mktemp("compiled"))


@pytest.fixture(scope="session")
def native_binary() -> Path:
    """native/build/sweep-bench, built once per session if missing or stale; skipped without cmake / a compiler."""
    from sweep import native

    try:
        return native.ensure_native()
    except native.NativeUnavailable as exc:
        pytest.skip(str(exc))
