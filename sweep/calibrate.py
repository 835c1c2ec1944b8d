"""`sweep calibrate`: run `python -m runners.calibrate` (torch lives there, not here) and keep its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sweep import atomic
from sweep.errors import SweepError
from sweep.paths import runner_env


class CalibrationFailed(SweepError):
    """The calibration runner crashed: its traceback is on stderr above the message."""

    exit_code = 1


def calibrate(model: str, device: str, precision: str = "fp32", iters: int = 100) -> dict[str, Any]:
    """The report of one calibration, measured in a fresh process whose stderr goes straight to the user's."""
    with tempfile.TemporaryDirectory(prefix="sweep-calibrate-") as tmp:
        out = Path(tmp) / "calibration.json"
        command = [sys.executable, "-m", "runners.calibrate", "--model", model, "--device", device,
                   "--precision", precision, "--iters", str(iters), "--out", str(out)]
        done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              env={**os.environ, **runner_env()}, check=False)
        if done.returncode != 0 or not out.is_file():
            raise CalibrationFailed(f"python -m runners.calibrate failed (exit code {done.returncode}); "
                                    f"its output is above")
        report: dict[str, Any] = json.loads(out.read_text())
    if report.get("status") == "unavailable":
        raise SweepError(f"--device {device}: {report.get('reason', 'not available here')}")
    return report


def save(report: dict[str, Any], results_dir: Path) -> Path:
    """Stored beside the rows so the report can show the device's ceilings and the model's floor."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"calibration-{report['device'].replace(':', '')}-{report['model']}.json"
    return atomic.write_json(path, report, indent=1)
