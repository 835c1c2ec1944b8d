"""On a CUDA machine: the eager runner times with CUDA events and records NVML telemetry (skipped on CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sweep import store
from sweep.cli import app

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_cuda_eager_rows_have_events_memory_and_telemetry(write_matrix, cli, tmp_path: Path) -> None:
    path = write_matrix("""
        model: {name: tiny}
        device: cuda
        measure: {warmup: 3, iters: 20}
        jobs: [{runtime: python-eager, model_precision: [fp32, bf16], amp_dtype: fp32}]
    """)
    res = cli.invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--artifacts", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    df = store.load(tmp_path / "r")
    assert (df["status"] == "ok").all()
    for row in df.itertuples():
        assert len(row.samples_cuda_ms) == 20 and min(row.samples_cuda_ms) > 0
        # host clock around a synchronize can't be faster than the device work it waits for
        assert row.latency_ms_p50 >= row.cuda_ms_p50 * 0.95
        assert row.peak_mem_mb > 0 and row.reserved_mem_mb >= row.peak_mem_mb
        assert row.device_name and "unknown" not in row.device_name
        assert row.telemetry["before"]["sm_clock_mhz"] is not None
    fp32 = df[df["model_precision"] == "fp32"].iloc[0]
    assert fp32["rel_err"] < 1e-2  # TF32 convolutions may be on; fp32 reference has them off
