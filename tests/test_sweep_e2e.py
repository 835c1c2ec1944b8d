"""End to end on the CPU: real runner subprocesses, real Parquet rows, faults, resume after SIGKILL."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sweep import store
from sweep.cli import app

ROOT = Path(__file__).resolve().parent.parent

FAULTS = """
name: faults
model: {factory: "fault_models:small", input_shape: [2, 8]}
device: cpu
measure: {warmup: 1, iters: 5, timeout_s: 60, seed: 0}
jobs:
  - runtime: python-eager
    amp_dtype: [fp32, bf16]
  - runtime: python-eager
    model: {factory: "fault_models:segfault", input_shape: [2, 8]}
  - runtime: python-eager
    model: {factory: "fault_models:exit123", input_shape: [2, 8]}
  - runtime: python-eager
    model: {factory: "fault_models:boom", input_shape: [2, 8]}
  - runtime: python-eager
    model: {factory: "fault_models:hang", input_shape: [2, 8]}
    measure: {timeout_s: 3}
  - runtime: python-eager
    device: cuda
    measure: {processes: 1}
"""


def test_faults_become_rows_and_the_sweep_goes_on(write_matrix, cli, tmp_path: Path) -> None:
    results = tmp_path / "results"
    res = cli.invoke(app, ["run", str(write_matrix(FAULTS)), "--results", str(results),
                           "--artifacts", str(tmp_path / "art")])
    assert res.exit_code == 1, res.output  # some jobs failed; all rows still written
    df = store.load(results)
    assert len(df) == 7
    by = {(r.model, r.amp_dtype, r.device): r for r in df.itertuples()}
    ok = by[("fault_models:small", "fp32", "cpu")]
    assert ok.status == "ok" and len(ok.samples_ms) == 5 and ok.latency_ms_mean > 0
    assert ok.rel_err == 0.0  # same model, same inputs, same precision as the reference
    bf16 = by[("fault_models:small", "bf16", "cpu")]
    assert bf16.status == "ok" and 0 < bf16.rel_err < 0.05
    assert by[("fault_models:segfault", "fp32", "cpu")].status == "failed"
    assert "killed by SIGSEGV" in by[("fault_models:segfault", "fp32", "cpu")].reason
    assert "exit code 123" in by[("fault_models:exit123", "fp32", "cpu")].reason
    assert "RuntimeError: forward exploded" in by[("fault_models:boom", "fp32", "cpu")].reason
    hang = by[("fault_models:hang", "fp32", "cpu")]
    assert hang.status == "timeout" and math.isnan(hang.latency_ms_mean)
    cuda = by[("fault_models:small", "fp32", "cuda")]
    assert cuda.status == "unavailable" and "CUDA is not available" in cuda.reason
    for r in df.itertuples():
        assert r.schema_version == store.SCHEMA_VERSION and r.torch_version and r.device_name
        assert r.process == 0 and r.processes == 1 and r.executor == "local" and len(r.model_key) == 20


def test_sigkill_mid_sweep_then_rerun_has_every_job_once(write_matrix, tmp_path: Path) -> None:
    path = write_matrix("""
        model: {factory: "fault_models:small", input_shape: [2, 8]}
        measure: {warmup: 1, iters: 200}
        jobs: [{runtime: python-eager, model_precision: [fp32, bf16, fp16], amp_dtype: [fp32, bf16]}]
    """)
    results = tmp_path / "r"
    cmd = [sys.executable, "-m", "sweep", "run", str(path), "--results", str(results), "--artifacts",
           str(tmp_path / "a")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(store.row_files(results)) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(store.row_files(results))
    assert 2 <= written < 6, "the kill must land mid-sweep"
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    df = store.load(results)
    assert sorted(df["job_key"].value_counts().tolist()) == [1] * 6
    assert (df["status"] == "ok").all()
    assert not list(results.glob(".*.tmp"))


def test_unknown_schema_version_is_refused(tmp_path: Path, cli) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp_path.joinpath("r").mkdir()
    table = pa.table({"x": [1]}).replace_schema_metadata({b"sweep_schema_version": b"99"})
    pq.write_table(table, tmp_path / "r" / "future.parquet")
    res = cli.invoke(app, ["report", "--results", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert "schema_version 99 is newer than this sweep reads (2); upgrade sweep" in res.stderr


def test_user_model_files_torchscript_and_exported(write_matrix, cli, matrix_dir: Path, tmp_path: Path) -> None:
    """Models users bring as files: a TorchScript module and a saved ExportedProgram, shapes from the matrix."""
    import torch

    from tests.fixtures.fault_models import Small

    torch.manual_seed(0)
    model = Small().eval()
    example = torch.rand(2, 8)
    torch.jit.trace(model, example).save(str(matrix_dir / "small.ts"))
    torch.export.save(torch.export.export(model, (example,)), str(matrix_dir / "small.pt2"))
    path = write_matrix("""
        measure: {warmup: 1, iters: 3}
        jobs:
          - runtime: python-eager
            model: {torchscript: small.ts, input_shape: [2, 8]}
          - runtime: python-eager
            model: {exported: small.pt2, input_shape: [2, 8]}
            amp_dtype: [fp32, bf16]
    """)
    res = cli.invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--artifacts", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    df = store.load(tmp_path / "r")
    assert sorted(df["model"]) == ["small.pt2", "small.pt2", "small.ts"]
    assert (df["status"] == "ok").all()
    assert (df[df["amp_dtype"] == "fp32"]["rel_err"] == 0.0).all()
