"""The tiny detector through eager, TorchScript and AOTInductor, in Python and in the C++ binary (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweep import store
from sweep.cli import app

pytestmark = pytest.mark.slow


def test_tiny_detector_through_every_cpu_runtime(write_matrix, cli, tmp_path: Path, native_binary: Path) -> None:
    """native_binary: the C++ binary is built up front (the orchestrator would build it on first need)."""
    path = write_matrix("""
        model: {name: dino-vitdet-tiny}
        device: cpu
        measure: {warmup: 3, iters: 5}
        jobs:
          - runtime: [python-eager, cpp-torchscript, cpp-aoti, python-aoti]
            model_precision: fp32
    """)
    res = cli.invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--artifacts", str(tmp_path / "a")])
    df = store.load(tmp_path / "r").set_index("runtime")
    assert res.exit_code == 0, (res.output, df[["status", "reason"]].to_string())
    assert set(df.index) == {"python-eager", "cpp-torchscript", "cpp-aoti", "python-aoti"}
    for runtime, row in df.iterrows():
        assert row["status"] == "ok", runtime
        assert len(row["samples_ms"]) == 5 and min(row["samples_ms"]) > 0
        # fp32 on the same CPU: the same numbers as the fp32 eager reference, up to compiler reassociation
        assert row["rel_err_sorted"] < 1e-4, runtime
        assert row["gflops"] > 0
    assert df.loc["cpp-aoti", "variant_key"] == df.loc["python-aoti", "variant_key"]
    assert df.loc["python-eager", "rel_err"] == 0.0
