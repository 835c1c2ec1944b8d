"""The tiny detector through eager, TorchScript and AOTInductor, in Python and in the C++ binary (CPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sweep import store
from sweep.cli import app
from tests.compiled import package

pytestmark = pytest.mark.slow


def test_tiny_detector_through_every_cpu_runtime(
        write_matrix, cli, tmp_path: Path, native_binary: Path, compiled: dict[str, Any]) -> None:
    """native_binary: the C++ binary is built up front (the orchestrator would build it on first need).
    compiled: the session's artifacts folder already holds the detector's AOTInductor package (built once for
    this test, test_models.py and test_compile.py); the sweep must find and reuse it, not build it again."""
    art = compiled["art"]
    aoti = package(compiled, "dino-vitdet-tiny")
    built_at = json.loads((aoti.parent / "manifest.json").read_text())["built_at"]
    path = write_matrix("""
        model: {name: dino-vitdet-tiny}
        device: cpu
        measure: {warmup: 3, iters: 5}
        jobs:
          - runtime: [python-eager, cpp-torchscript, cpp-aoti, python-aoti]
            model_precision: fp32
    """)
    res = cli.invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--artifacts", str(art)])
    df = store.load(tmp_path / "r").set_index("runtime")
    assert res.exit_code == 0, (res.output, df[["status", "reason"]].to_string())
    assert set(df.index) == {"python-eager", "cpp-torchscript", "cpp-aoti", "python-aoti"}
    for runtime, row in df.iterrows():
        assert row["status"] == "ok", runtime
        assert len(row["samples_ms"]) == 5 and min(row["samples_ms"]) > 0
        # fp32 on the same CPU: the same numbers as the fp32 eager reference, up to compiler reassociation
        assert row["rel_err_sorted"] < 1e-4, runtime
        assert row["gflops"] > 0
    assert df.loc["cpp-aoti", "variant_key"] == df.loc["python-aoti", "variant_key"] == aoti.parent.name
    assert json.loads((aoti.parent / "manifest.json").read_text())["built_at"] == built_at  # reused, not rebuilt
    assert df.loc["python-eager", "rel_err"] == 0.0
