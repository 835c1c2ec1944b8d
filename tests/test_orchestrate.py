"""Orchestrator rules that need no full sweep: resume keys, fidelity failures that must not cost a row."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sweep import execute, store
from sweep.matrix import load
from sweep.orchestrate import Machine, Orchestrator, done_keys


def _ok_row(job_key: str, runtime: str, trt: str) -> dict[str, object]:
    now = datetime.now(timezone.utc)
    return {"job_key": job_key, "process": 0, "run_id": "r", "runtime": runtime, "status": "ok", "device_name": "GPU X",
            "torch_version": "2.11.0", "torch_tensorrt_version": trt, "tensorrt_version": "10.0",
            "started_at": now, "finished_at": now}


def test_tensorrt_upgrade_reruns_only_tensorrt_jobs(tmp_path: Path) -> None:
    store.append_row(tmp_path, _ok_row("a" * 20, "python-trt", "2.9.0"))
    store.append_row(tmp_path, _ok_row("b" * 20, "python-eager", "2.9.0"))
    done = done_keys(tmp_path)
    same = Machine("GPU X", "2.11.0", "h", torch_tensorrt_version="2.9.0", tensorrt_version="10.0")
    upgraded = Machine("GPU X", "2.11.0", "h", torch_tensorrt_version="2.10.0", tensorrt_version="10.0")
    assert same.resume_key("a" * 20, "python-trt") in done
    assert upgraded.resume_key("a" * 20, "python-trt") not in done
    assert upgraded.resume_key("b" * 20, "python-eager") in done
    other_torch = Machine("GPU X", "2.12.0", "h", torch_tensorrt_version="2.9.0", tensorrt_version="10.0")
    assert other_torch.resume_key("b" * 20, "python-eager") not in done


def test_outputs_that_cannot_be_compared_keep_the_row(write_matrix, tmp_path: Path) -> None:
    job = load(write_matrix("""
        model: {factory: "fault_models:small", input_shape: [2, 8]}
        jobs: [{runtime: python-eager}]
    """)).jobs[0]
    orch = Orchestrator(tmp_path / "r", tmp_path / "a")
    garbage = tmp_path / "outputs.pt"
    garbage.write_bytes(b"\x00 truncated by a full disk")
    outcome = execute.Outcome(status="ok", result={"samples_ms": [1.0]})
    errors, gflops = orch._fidelity(job, garbage, outcome, timeout_s=120)
    assert errors is None
    assert "outputs could not be compared" in outcome.result["extra"]["fidelity"]
    missing = execute.Outcome(status="ok", result={})
    errors, gflops = orch._fidelity(job, tmp_path / "none.pt", missing, timeout_s=120)
    assert errors is None and missing.result["extra"]["fidelity"] == "the runner saved no outputs"
    assert gflops is not None and gflops > 0  # the reference ran and counted the model's FLOPs
