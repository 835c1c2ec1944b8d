"""Where things live: the project root, the environment runners start with, and the default folders."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NATIVE_BINARY = PROJECT_ROOT / "native" / "build" / "sweep-bench"

# Defaults of the command line, relative to where `sweep` runs. `results/` holds the committed GPU rows, so a
# newcomer's first run must never write there: rows go to sweep-results/ (gitignored) unless --results says.
DEFAULT_RESULTS = Path("sweep-results")
DEFAULT_ARTIFACTS = Path("artifacts")


def runner_env() -> dict[str, str]:
    """Runners import `sweep` and `runners` from this tree even when the package is not installed."""
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{path}" if path else str(PROJECT_ROOT)}
