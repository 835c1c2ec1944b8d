"""On a CUDA machine: CUDA graphs (replayed outputs judged), capture errors, TF32 as asked, kernel-busy, energy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_runner_fidelity import factory, job_doc, judged, launch, make_reference

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def dino(tmp: Path, **fields: object) -> dict:
    return job_doc(tmp, {"kind": "builtin", "name": "dino-vitdet-tiny"}, [[3, 128, 128]], 0.0, 255.0,
                   device="cuda", warmup=5, iters=20, fidelity={"measure": "elementwise", "outputs": [3, 4]}, **fields)


def test_graph_replay_is_judged_profiled_and_metered(tmp_path: Path) -> None:
    base = dino(tmp_path)
    reference = make_reference(base, tmp_path)
    for name, fields in {"eager": {}, "graphs": {"cuda_graphs": True},
                         "graphs-fp16": {"cuda_graphs": True, "model_precision": "fp16"},
                         "graphs-bf16-autocast": {"cuda_graphs": True, "amp_dtype": "bf16"}}.items():
        verdict, note, result = judged(base, reference, tmp_path, name, **fields)
        assert verdict == "pass", (name, note, result["fidelity"])
        assert result["cuda_graphs"] is bool(fields.get("cuda_graphs"))
        assert len(result["samples_cuda_ms"]) == 20
        assert result["kernel_busy_ms"] > 0 and result["kernels_per_forward"] >= 1, result["profile_note"]
        if result["energy_mj_per_forward"] is None:  # only where NVML has no counter, and then it says why
            assert result["energy_note"]
        else:
            assert result["energy_mj_per_forward"] > 0 and 0 < result["mean_power_w"] < 2000


def test_a_graph_that_cannot_be_captured_is_unsupported_with_the_error(tmp_path: Path) -> None:
    doc = job_doc(tmp_path, factory("host_sync"), [[4, 16]], -1.0, 1.0, device="cuda", cuda_graphs=True)
    proc, result = launch(doc, tmp_path, "sync")
    assert proc.returncode == 0 and result["status"] == "unsupported", proc.stderr[-2000:]
    assert result["reason"].startswith("CUDA graph capture failed")
    proc, result = launch({**doc, "cuda_graphs": False}, tmp_path, "eager")
    assert result["status"] == "ok"  # the same model runs eagerly: it was the capture, not the model


@pytest.mark.parametrize(("tf32", "matmul", "cudnn"), [("on", True, True), ("off", False, False), ("", False, True)])
def test_tf32_is_applied_and_reported(tmp_path: Path, tf32: str, matmul: bool, cudnn: bool) -> None:
    doc = job_doc(tmp_path, factory("half_wrong"), [[4, 16]], -1.0, 1.0, device="cuda", tf32=tf32)
    proc, result = launch(doc, tmp_path, f"tf32-{tf32 or 'default'}")
    assert result["status"] == "ok", proc.stderr[-2000:]
    assert (result["tf32_matmul"], result["tf32_cudnn"]) == (matmul, cudnn)
    assert "allow_tf32" not in proc.stderr and "fp32_precision" not in proc.stderr  # one TF32 API: no warnings


@pytest.mark.slow
def test_inductor_reduce_overhead_reports_its_graphs_and_keeps_tf32_as_asked(tmp_path: Path) -> None:
    doc = job_doc(tmp_path, factory("half_wrong"), [[4, 16]], -1.0, 1.0, device="cuda", runtime="python-inductor",
                  compile_mode="reduce-overhead", tf32="on")
    proc, result = launch(doc, tmp_path, "inductor")
    assert result["status"] == "ok" and result["cuda_graphs"] is True, proc.stderr[-2000:]
    assert result["tf32_matmul"] is True and result["kernel_busy_ms"] > 0
    assert "allow_tf32" not in proc.stderr and "fp32_precision" not in proc.stderr  # inductor saw one TF32 API
