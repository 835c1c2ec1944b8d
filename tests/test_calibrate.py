"""sweep calibrate on the CPU: it runs, stores its JSON beside the rows, and the report shows it.

A benchmark, not a test: nothing here asserts a time, only that every figure was measured and kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweep.cli import app

pytestmark = pytest.mark.slow


def test_calibrate_stores_ceilings_floor_and_timer_ratio(cli, tmp_path: Path) -> None:
    res = cli.invoke(app, ["calibrate", "--model", "tiny", "--iters", "5", "--results", str(tmp_path)])
    assert res.exit_code == 0, res.output
    (path,) = tmp_path.glob("calibration-*.json")
    report = json.loads(path.read_text())
    assert set(report["forms"]) == {"eager", "torch.compile"}
    for form in report["forms"].values():
        assert form["ours_host_ms"] > 0 and form["torch_benchmark_ms"] > 0
        assert form["ratio_ours_host_vs_independent"] > 0
    assert report["peak"]["matmul_tflops"] > 0 and report["peak"]["copy_gbps"] > 0
    assert report["floor_ms"] == pytest.approx(report["model_gflops"] / report["peak"]["matmul_tflops"])
    rendered = cli.invoke(app, ["report", "--results", str(tmp_path)])
    assert rendered.exit_code == 0 and "## Calibration" in rendered.stdout


def test_calibrate_rejects_unknown_model(cli, tmp_path: Path) -> None:
    res = cli.invoke(app, ["calibrate", "--model", "resnet", "--results", str(tmp_path)])
    assert res.exit_code == 2 and "--model: unknown model 'resnet'" in res.stderr
    assert not list(tmp_path.iterdir())
