"""Fidelity through real runner processes: reference, judged outputs, verdicts, damaged references, the CLI.

Each job is a real `python -m runners.<name> --job job.json --out result.json` subprocess, as the orchestrator
starts it; the verdict is sweep.fidelity's, from the runner's `fidelity` object and the job's compute precision.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from runners import fidelity as rfid
from sweep import fidelity

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def job_doc(tmp: Path, model: dict[str, Any], shapes: list[list[int]], low: float, high: float,
            **fields: Any) -> dict[str, Any]:
    doc = {
        "job_key": "test", "runtime": "python-eager", "device": "cpu",
        "model": {"kind": "builtin", "name": None, "factory": None, "path": None, "root": str(FIXTURES),
                  "options": {}, "checkpoint": None, **model},
        "inputs": [{"shape": s, "low": low, "high": high} for s in shapes],
        "model_precision": "fp32", "amp_dtype": "fp32", "enabled_precisions": [], "compile_mode": "",
        "warmup": 1, "iters": 3, "seed": 0, "artifact": None, "outputs_path": str(tmp / "outputs.pt"),
        "process": 0, "cuda_graphs": False, "tf32": "", "profile_kernels": True, "reference": None, "fidelity": None,
    }
    doc.update(fields)
    return doc


def launch(doc: dict[str, Any], tmp: Path, name: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    folder = tmp / name
    folder.mkdir(parents=True, exist_ok=True)
    doc = {**doc, "outputs_path": str(folder / "outputs.pt")}
    (folder / "job.json").write_text(json.dumps(doc))
    module = "runners." + doc["runtime"].replace("-", "_")
    proc = subprocess.run([sys.executable, "-m", module, "--job", str(folder / "job.json"), "--out",
                           str(folder / "result.json")], capture_output=True, text=True, env=ENV, cwd=ROOT,
                          timeout=600)
    result = json.loads((folder / "result.json").read_text()) if (folder / "result.json").exists() else {}
    return proc, result


def make_reference(base: dict[str, Any], tmp: Path) -> dict[str, str]:
    proc, result = launch(fidelity.reference_job(base), tmp, "reference")
    assert proc.returncode == 0 and result["status"] == "ok", proc.stderr
    path = Path(result["outputs_path"])
    return {"path": str(path), "sha256": rfid.sha256_file(path)}


def judged(base: dict[str, Any], reference: dict[str, str], tmp: Path, name: str,
           **fields: Any) -> tuple[str | None, str, dict[str, Any]]:
    """Run one variant and judge it: (verdict, note, result)."""
    doc = {**base, "reference": reference, **fields}
    proc, result = launch(doc, tmp, name)
    assert proc.returncode == 0 and result["status"] == "ok", proc.stderr[-2000:]
    precision = fidelity.compute_precision(doc["runtime"], doc["device"], doc["model_precision"], doc["amp_dtype"],
                                           doc["enabled_precisions"], doc["tf32"])
    verdict, note = fidelity.verdict(result["fidelity"], fidelity.tolerance(precision))
    return verdict, note, result


def factory(name: str) -> dict[str, Any]:
    return {"kind": "factory", "factory": f"fidelity_models:{name}"}


def test_fp16_overflow_fails_with_fp16_weights_and_passes_in_fp32_and_bf16(tmp_path: Path) -> None:
    base = job_doc(tmp_path, factory("overflow"), [[4, 16]], -1.0, 1.0)
    reference = make_reference(base, tmp_path)
    verdict, note, result = judged(base, reference, tmp_path, "fp16", model_precision="fp16")
    assert verdict == "fail" and result["fidelity"]["finite"] is False and "non-finite" in note
    for precision in ("fp32", "bf16"):
        verdict, note, result = judged(base, reference, tmp_path, precision, model_precision=precision)
        assert verdict == "pass", (precision, note, result["fidelity"])
        if precision == "fp32":
            assert result["fidelity"]["error"] == 0.0


def test_twenty_percent_wrong_in_half_precision_fails_in_bf16_and_passes_in_fp32(tmp_path: Path) -> None:
    base = job_doc(tmp_path, factory("half_wrong"), [[4, 16]], -1.0, 1.0)
    reference = make_reference(base, tmp_path)
    verdict, note, result = judged(base, reference, tmp_path, "bf16", model_precision="bf16")
    assert verdict == "fail" and 0.15 < result["fidelity"]["error"] < 0.3, note
    verdict, note, result = judged(base, reference, tmp_path, "fp32")
    assert verdict == "pass" and result["fidelity"]["rel_err"] == 0.0
    # what every CPU row reports beside its figures
    assert result["tf32_matmul"] is False and result["tf32_cudnn"] is False and result["num_threads"] >= 1
    assert result["cuda_graphs"] is False
    assert result["kernel_busy_ms"] is None and "CUDA" in result["profile_note"]
    assert result["energy_mj_per_forward"] is None and "CPU" in result["energy_note"]


@pytest.fixture(scope="module")
def dino(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, str], Path]:
    tmp = tmp_path_factory.mktemp("dino")
    base = job_doc(tmp, {"kind": "builtin", "name": "dino-vitdet-tiny"}, [[3, 128, 128]], 0.0, 255.0,
                   fidelity={"measure": "elementwise", "outputs": [3, 4]})
    return base, make_reference(base, tmp), tmp


def test_dino_tiny_fp32_reads_zero_bf16_autocast_passes_and_the_cli_agrees(
        dino: tuple[dict[str, Any], dict[str, str], Path]) -> None:
    base, reference, tmp = dino
    verdict, _, result = judged(base, reference, tmp, "fp32")
    assert verdict == "pass" and result["fidelity"]["rel_err"] <= 1e-5 and result["fidelity"]["error"] <= 1e-5
    verdict, note, result = judged(base, reference, tmp, "bf16-autocast", amp_dtype="bf16")
    assert verdict == "pass", (note, result["fidelity"])
    assert 1e-4 < result["fidelity"]["error"] < fidelity.DEFAULT_TOLERANCES["bf16"] / 3  # really judged, with margin
    saved = torch.load(result["outputs_path"], weights_only=True)
    assert len(saved) == 5 and saved[3].shape[-1] == 80 and saved[4].shape[-1] == 4  # detections + encoder outputs

    # The parent's path for C++ rows: the same object from `python -m runners.fidelity`.
    spec = json.dumps({"measure": "elementwise", "outputs": [3, 4]})

    def cli(sha256: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runners.fidelity", "--outputs", result["outputs_path"],
                               "--reference", reference["path"], "--spec", spec, "--sha256", sha256],
                              capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)

    proc = cli(reference["sha256"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == result["fidelity"]
    proc = cli("f" * 64)
    assert proc.returncode == 1 and "damaged" in proc.stderr and not proc.stdout


def test_damaged_reference_is_an_error_before_anything_is_timed(
        dino: tuple[dict[str, Any], dict[str, str], Path]) -> None:
    base, reference, tmp = dino
    damaged = tmp / "damaged.pt"
    shutil.copy(reference["path"], damaged)
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    proc, result = launch({**base, "reference": {"path": str(damaged), "sha256": reference["sha256"]}}, tmp, "bad")
    assert proc.returncode == 1 and not result
    assert "damaged" in proc.stderr and "sha256" in proc.stderr.strip().splitlines()[-1]
    with pytest.raises(rfid.ReferenceDamaged, match="do not exist"):
        rfid.verify_reference({"path": str(tmp / "missing.pt"), "sha256": "0" * 64})
    with pytest.raises(rfid.ReferenceDamaged, match="without a sha256"):
        rfid.verify_reference({"path": reference["path"], "sha256": ""})


def test_cuda_graphs_on_the_cpu_are_unsupported_never_run_without(tmp_path: Path) -> None:
    base = job_doc(tmp_path, factory("half_wrong"), [[4, 16]], -1.0, 1.0, cuda_graphs=True)
    proc, result = launch(base, tmp_path, "graphs")
    assert proc.returncode == 0 and result["status"] == "unsupported" and "CUDA graphs" in result["reason"]


# --- unit: the comparison and the verdict -----------------------------------------------------------------


def test_compare_judges_the_named_outputs_and_says_why_not() -> None:
    ref = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([5, 6]), torch.tensor([1.0, -math.inf])]
    noisy = [ref[0] * 1.01, torch.tensor([5, 0]), torch.tensor([1.1, -math.inf])]
    all_out = rfid.compare(noisy, ref)
    assert all_out["int_mismatch"] == 0.5 and all_out["finite"] is True  # the same -inf agrees
    assert all_out["error"] == pytest.approx(0.1)  # max over outputs: the last one is 10 % off
    only_first = rfid.compare(noisy, ref, judged=[0])
    assert only_first["error"] == pytest.approx(0.01) and only_first["int_mismatch"] == 0.0
    swapped = [ref[0].flip(0), ref[1], ref[2]]
    assert rfid.compare(swapped, ref, "sorted", [0])["error"] == 0.0 < rfid.compare(swapped, ref, judged=[0])["error"]
    missing = rfid.compare(noisy, ref, judged=[7])
    assert missing["error"] is None and "do not exist" in missing["note"]
    assert fidelity.verdict(missing, 1.0) == (None, missing["note"])
    nan = rfid.compare([ref[0] * math.nan, ref[1], ref[2]], ref)
    assert nan["finite"] is False and fidelity.verdict(nan, 1e9)[0] == "fail"
    shape = rfid.compare([ref[0][:2], ref[1], ref[2]], ref)
    assert shape["error"] == math.inf and fidelity.verdict(shape, 1e9)[0] == "fail"


def test_compute_precision_is_the_lowest_used() -> None:
    cp = fidelity.compute_precision
    assert cp("python-eager", "cuda", "fp32", "fp32", (), "off") == "fp32"
    assert cp("python-eager", "cuda", "fp32", "fp32", (), "") == "tf32"  # cuDNN's TF32 is PyTorch's default
    assert cp("python-eager", "cuda", "fp32", "fp32", (), "on") == "tf32"
    assert cp("python-eager", "cpu", "fp32", "fp32", (), "") == "fp32"
    assert cp("python-eager", "cuda", "fp32", "bf16", (), "off") == "bf16"
    assert cp("python-inductor", "cuda", "fp32+fp16", "", (), "") == "fp16"
    assert cp("cpp-aoti", "cuda", "bf16", "", (), "") == "bf16"
    assert cp("python-trt", "cuda", "fp32", "", ("fp32",), "") == "tf32"
    assert cp("cpp-trt", "cuda", "fp32", "", ("fp32", "bf16", "fp16"), "") == "bf16"


def test_tolerances_defaults_overrides_and_verdicts() -> None:
    assert fidelity.tolerance("fp16") == fidelity.DEFAULT_TOLERANCES["fp16"]
    assert fidelity.tolerance("fp16", (("fp16", 0.5),)) == 0.5 == fidelity.tolerance("fp16", {"fp16": 0.5})
    assert fidelity.tolerance("bf16", (("fp16", 0.5),)) == fidelity.DEFAULT_TOLERANCES["bf16"]
    ok = {"error": 1e-3, "finite": True, "note": ""}
    assert fidelity.verdict(ok, 1e-3) == ("pass", "")
    assert fidelity.verdict(ok, 1e-4)[0] == "fail"
    assert fidelity.verdict(None, 1.0, "reference failed: boom") == (None, "reference failed: boom")


def test_energy_figures_from_two_counter_readings() -> None:
    from sweep import telemetry

    e = telemetry.energy_figures((1000.0, ""), (5000.0, ""), forwards=100, seconds=2.0)
    assert e == {"energy_mj_per_forward": 40.0, "mean_power_w": 2.0, "energy_note": ""}
    short = telemetry.energy_figures((0.0, ""), (400.0, ""), forwards=100, seconds=0.5)
    assert short["energy_mj_per_forward"] == 4.0 and "approximate" in short["energy_note"]
    missing = telemetry.energy_figures((None, "no counter here"), (None, "no counter here"), 100, 1.0)
    assert missing == {"energy_mj_per_forward": None, "mean_power_w": None, "energy_note": "no counter here"}
    stuck = telemetry.energy_figures((7.0, ""), (7.0, ""), 100, 1.0)
    assert stuck["energy_mj_per_forward"] is None and "did not advance" in stuck["energy_note"]
    assert telemetry.energy_counter_mj("cpu") == (None, "no energy counter on the CPU (NVML measures GPUs)")


def test_tf32_is_set_and_read_back_with_one_api() -> None:
    from runners import common

    new = common._new_tf32_api()
    matmul, cudnn = ((torch.backends.cuda.matmul, "fp32_precision"), (torch.backends.cudnn.conv, "fp32_precision")) \
        if new else ((torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32"))
    saved = getattr(*matmul), getattr(*cudnn)
    try:
        for setting, expected in (("on", (True, True)), ("off", (False, False))):
            common.apply_tf32(setting)
            state = common.tf32_state("cuda")
            assert (state["tf32_matmul"], state["tf32_cudnn"]) == expected
        assert common.tf32_state("cpu")["tf32_matmul"] is False  # no TF32 on the CPU
        with pytest.raises(ValueError, match="tf32 must be"):
            common.apply_tf32("maybe")
    finally:  # back to what this process had (PyTorch's default), through the same API
        setattr(*matmul, saved[0])
        setattr(*cudnn, saved[1])
