"""Safe defaults for a newcomer: rows never go into the committed results/ folder unless asked."""

from __future__ import annotations

import inspect
from pathlib import Path

from sweep import cli
from sweep.paths import DEFAULT_RESULTS, PROJECT_ROOT


def test_default_results_folder_is_not_the_committed_one() -> None:
    assert DEFAULT_RESULTS == Path("sweep-results")
    for command in (cli.run, cli.report, cli.calibrate):
        assert inspect.signature(command).parameters["results"].default == DEFAULT_RESULTS, command
    ignored = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert "/sweep-results/" in ignored
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "RESULTS ?= sweep-results" in makefile
    assert "TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu" in makefile
