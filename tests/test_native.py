"""The native runner (native/build/sweep-bench) speaks the runner contract: built once, run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils import _pytree as pytree

from sweep.models.build import build_builtin

pytestmark = pytest.mark.slow

RUN_TIMEOUT_S = 300  # a hung binary fails the test instead of stalling the suite


@pytest.fixture(scope="session")
def bench(request: pytest.FixtureRequest) -> Path:
    """native/build/sweep-bench, built against the installed torch by the `native_binary` fixture (conftest.py).

    SWEEP_BENCH_BINARY names a prebuilt binary instead (e.g. one built on another machine).
    """
    prebuilt = os.environ.get("SWEEP_BENCH_BINARY")
    if prebuilt:
        return Path(prebuilt)
    binary: Path = request.getfixturevalue("native_binary")
    assert binary.is_file()
    return binary


def built_with_cuda(bench: Path) -> bool:
    out = subprocess.run([str(bench), "--version"], capture_output=True, text=True, timeout=60).stdout
    return "cuda=no" not in out


# --------------------------------------------------------------------------------------------------
# helpers: the contract's inputs, jobs, running the binary


def contract_inputs(specs: list[dict[str, Any]], seed: int) -> list[torch.Tensor]:
    """runners/README.md: input i drawn on the CPU generator seeded with seed + i."""
    xs = []
    for i, spec in enumerate(specs):
        torch.manual_seed(seed + i)
        xs.append(spec["low"] + (spec["high"] - spec["low"]) * torch.rand(spec["shape"], dtype=torch.float32))
    return xs


def make_job(
    tmp_path: Path,
    artifact: Path | str,
    kind: str,
    inputs: list[dict[str, Any]],
    *,
    device: str = "cpu",
    precision: str = "fp32",
    warmup: int = 2,
    iters: int = 5,
    seed: int = 0,
    outputs_path: Path | None = None,
    cuda_graphs: bool = False,
    tf32: str = "",
) -> Path:
    job = {
        "job_key": "test",
        "runtime": "cpp-libtorch",
        "device": device,
        "model": {"kind": "builtin", "name": "tiny", "factory": None, "path": None, "root": str(tmp_path),
                  "options": {}, "checkpoint": None},
        "inputs": inputs,
        "model_precision": precision,
        "amp_dtype": "fp32",
        "enabled_precisions": [],
        "compile_mode": "",
        "warmup": warmup,
        "iters": iters,
        "seed": seed,
        "artifact": {"dir": str(Path(artifact).parent), "kind": kind, "file": str(artifact)},
        "outputs_path": str(outputs_path or tmp_path / "work" / "outputs.pt"),
        # TEAM.md's additions: the binary reads cuda_graphs and tf32 and ignores the rest
        "process": 0,
        "cuda_graphs": cuda_graphs,
        "tf32": tf32,
        "profile_kernels": True,
        "reference": {"path": str(tmp_path / "reference" / "outputs.pt"), "sha256": "0" * 64},
        "fidelity": {"measure": "elementwise", "outputs": None},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job, indent=2))
    return path


def run_bench(
    bench: Path, job: Path, out: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    run_env = {k: v for k, v in os.environ.items() if k != "SWEEP_TORCHTRT_RUNTIME"}
    run_env.update(env or {})
    return subprocess.run(
        [str(bench), "--job", str(job), "--out", str(out)],
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=run_env,
    )


def run_ok(bench: Path, job: Path, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "result.json"
    proc = run_bench(bench, job, out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "ok", result
    return result


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    got, ref = got.double(), ref.double()
    return float((got - ref).norm() / ref.norm().clamp_min(1e-30))


def assert_bad_input(proc: subprocess.CompletedProcess[str], out: Path, *words: str) -> None:
    """Exit 2, the message as the last stderr line, prefixed `sweep-bench: `; no result.json."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("sweep-bench: "), proc.stderr
    for word in words:
        assert word in last, last
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# models and artifacts


class MultiOutput(nn.Module):
    """Tuple, nested tuple, list and dict outputs: the binary must flatten them like Python's pytree."""

    def forward(self, x: torch.Tensor, y: torch.Tensor):  # type: ignore[no-untyped-def]
        return (
            x * 2,
            (x + y.sum(), [x.mean(dim=1), y - 1]),
            {"z": x - 3, "a": y * 4},
        )


class Identity(nn.Module):
    """Returns its inputs: the saved outputs are the inputs the binary drew."""

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor):  # type: ignore[no-untyped-def]
        return x, y, z


TINY_INPUTS = [{"shape": [1, 3, 64, 64], "low": -1.0, "high": 1.0}]


def tiny_model(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return build_builtin("tiny").eval().to(dtype)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model as TorchScript (fp32 and bf16) and as an AOTInductor package (compiled once)."""
    folder = tmp_path_factory.mktemp("artifacts")
    paths: dict[str, Path] = {}
    with torch.no_grad():
        for name, dtype in (("tiny.ts", torch.float32), ("tiny_bf16.ts", torch.bfloat16)):
            x = contract_inputs(TINY_INPUTS, 0)[0].to(dtype)
            torch.jit.trace(tiny_model(dtype), (x,)).save(str(folder / name))
            paths[name] = folder / name
        x = contract_inputs(TINY_INPUTS, 0)[0]
        exported = torch.export.export(tiny_model(), (x,))
        package = torch._inductor.aoti_compile_and_package(exported, package_path=str(folder / "tiny.pt2"))
        paths["tiny.pt2"] = Path(package)
    return paths


# --------------------------------------------------------------------------------------------------
# 1, 2: the artifact kinds run and match Python


def check_ok_result(result: dict[str, Any], iters: int, outputs_path: Path) -> None:
    assert len(result["samples_ms"]) == iters and all(s > 0 for s in result["samples_ms"])
    assert result["samples_cuda_ms"] == []
    assert result["peak_mem_mb"] > 0 and result["reserved_mem_mb"] is None and result["nvml_mem_mb"] is None
    assert result["load_s"] > 0 and result["compile_s"] is None
    assert result["outputs_path"] == str(outputs_path)
    assert result["env"]["torch_version"] == torch.__version__.split("+")[0]
    assert result["env"]["device_name"]
    assert (result["env"]["cuda_version"] is None) == (torch.version.cuda is None)  # libtorch's, as in Python
    assert result["extra"]["binary"] == "sweep-bench"
    assert result["extra"]["libtorch"] == torch.__version__.split("+")[0]
    check_cpu_additions(result)


def check_cpu_additions(result: dict[str, Any]) -> None:
    """TEAM.md's result.json additions on a CPU run: what C++ does not measure is null with a note."""
    assert result["cuda_graphs"] is False
    assert result["tf32_matmul"] is False and result["tf32_cudnn"] is False  # no TF32 on the CPU (as in Python)
    assert isinstance(result["num_threads"], int) and result["num_threads"] >= 1
    assert result["num_threads"] == result["extra"]["intra_op_threads"]
    assert result["kernel_busy_ms"] is None and result["kernels_per_forward"] is None
    assert result["profile_note"] == "kernel-busy time is not measured by the C++ runner"
    assert result["energy_mj_per_forward"] is None and result["mean_power_w"] is None
    assert result["energy_note"] == "no energy counter on the CPU (NVML measures GPUs)"  # sweep/telemetry.py's
    assert result["fidelity"] is None  # the parent judges C++ outputs


def test_torchscript_runs_and_matches_python(bench: Path, artifacts: dict[str, Path], tmp_path: Path) -> None:
    outputs = tmp_path / "work" / "outputs.pt"
    job = make_job(tmp_path, artifacts["tiny.ts"], "torchscript", TINY_INPUTS, iters=7, outputs_path=outputs)
    result = run_ok(bench, job, tmp_path)
    check_ok_result(result, 7, outputs)
    saved = torch.load(outputs)  # default weights_only=True: a plain list of tensors
    assert isinstance(saved, list) and all(isinstance(t, torch.Tensor) for t in saved)
    with torch.no_grad():
        ref = tiny_model()(*contract_inputs(TINY_INPUTS, 0))
    assert len(saved) == 1 and saved[0].shape == ref.shape
    assert rel_err(saved[0], ref) < 1e-5


def test_aoti_runs_and_matches_python(bench: Path, artifacts: dict[str, Path], tmp_path: Path) -> None:
    outputs = tmp_path / "work" / "outputs.pt"
    job = make_job(tmp_path, artifacts["tiny.pt2"], "aoti", TINY_INPUTS, iters=6, outputs_path=outputs)
    result = run_ok(bench, job, tmp_path)
    check_ok_result(result, 6, outputs)
    saved = torch.load(outputs)
    with torch.no_grad():
        ref = tiny_model()(*contract_inputs(TINY_INPUTS, 0))
    assert isinstance(saved, list) and len(saved) == 1
    assert rel_err(saved[0], ref) < 1e-5


def test_bf16_torchscript_runs_with_bf16_inputs(
    bench: Path, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    job = make_job(tmp_path, artifacts["tiny_bf16.ts"], "torchscript", TINY_INPUTS, precision="bf16")
    run_ok(bench, job, tmp_path)
    (saved,) = torch.load(tmp_path / "work" / "outputs.pt")
    assert saved.dtype == torch.bfloat16
    x = contract_inputs(TINY_INPUTS, 0)[0]
    with torch.no_grad():
        same_model = tiny_model(torch.bfloat16)(x.to(torch.bfloat16))
        fp32_ref = tiny_model()(x)
    assert rel_err(saved, same_model) < 1e-3
    assert rel_err(saved, fp32_ref) < 5e-2  # bf16 is ~3 significant digits


# --------------------------------------------------------------------------------------------------
# 3: the inputs are Python's, bit for bit


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "fp32+bf16"])
def test_input_draws_equal_python_bit_for_bit(bench: Path, tmp_path: Path, precision: str) -> None:
    specs = [
        {"shape": [2, 3, 17, 5], "low": 0.0, "high": 255.0},
        {"shape": [4, 1000], "low": -1.0, "high": 1.0},
        {"shape": [3], "low": -0.3, "high": 7.25},
    ]
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    seed = 1234
    expected = [x.to(dtype) for x in contract_inputs(specs, seed)]
    model = torch.jit.trace(Identity(), tuple(expected), check_trace=False)
    model.save(str(tmp_path / "identity.ts"))
    job = make_job(tmp_path, tmp_path / "identity.ts", "torchscript", specs, precision=precision, seed=seed)
    run_ok(bench, job, tmp_path)
    saved = torch.load(tmp_path / "work" / "outputs.pt")
    assert len(saved) == len(expected)
    for got, want in zip(saved, expected, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        int_view = {torch.float32: torch.int32}.get(want.dtype, torch.int16)
        assert torch.equal(got.view(int_view), want.view(int_view))  # bitwise, not approximately


# --------------------------------------------------------------------------------------------------
# 4: bad input exits 2 with one line and writes nothing


def test_missing_model_file(bench: Path, tmp_path: Path) -> None:
    job = make_job(tmp_path, tmp_path / "nope.ts", "torchscript", TINY_INPUTS)
    out = tmp_path / "result.json"
    assert_bad_input(run_bench(bench, job, out), out, "model file not found", "nope.ts")


@pytest.mark.parametrize("kind", ["torchscript", "aoti"])
def test_corrupt_model_file(bench: Path, tmp_path: Path, kind: str) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(4096))
    job = make_job(tmp_path, junk, kind, TINY_INPUTS)
    out = tmp_path / "result.json"
    assert_bad_input(run_bench(bench, job, out), out, "junk.bin")


def test_unknown_artifact_kind(bench: Path, artifacts: dict[str, Path], tmp_path: Path) -> None:
    job = make_job(tmp_path, artifacts["tiny.ts"], "onnx", TINY_INPUTS)
    out = tmp_path / "result.json"
    assert_bad_input(run_bench(bench, job, out), out, '"onnx"', "torchscript, torchscript-trt, aoti")


@pytest.mark.parametrize("artifact", ["tiny.ts", "tiny.pt2"])
def test_shape_mismatch(bench: Path, artifacts: dict[str, Path], tmp_path: Path, artifact: str) -> None:
    # AOTInductor only checks its inputs with AOTI_RUNTIME_CHECK_INPUTS, which the binary sets.
    kind = "aoti" if artifact.endswith(".pt2") else "torchscript"
    wrong = [{"shape": [1, 3, 32, 32] if kind == "aoti" else [1, 5, 64, 64], "low": -1.0, "high": 1.0}]
    job = make_job(tmp_path, artifacts[artifact], kind, wrong)
    out = tmp_path / "result.json"
    assert_bad_input(run_bench(bench, job, out), out, "running the model")


def test_bad_job_files(bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    assert_bad_input(run_bench(bench, tmp_path / "missing.json", out), out, "cannot read job file")
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"device": "cpu",, }')
    assert_bad_input(run_bench(bench, garbled, out), out, "invalid JSON", "line 1 column 18")
    job = make_job(tmp_path, tmp_path / "m.ts", "torchscript", TINY_INPUTS, precision="int8")
    assert_bad_input(run_bench(bench, job, out), out, "model_precision", "int8", "fp32+bf16")
    proc = subprocess.run([str(bench), "--job", str(job)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("sweep-bench: ")


# Strict RFC 8259 (no comments, trailing commas, NaN), and the place of the error in the message.
@pytest.mark.parametrize(("text", "words"), [
    ("", ["invalid JSON", "empty input"]),
    ('{"device": "cpu",\n  "iters": 3,\n}', ["invalid JSON", "line 3 column 1"]),
    ('{"device": "cpu" // comment\n}', ["invalid JSON", "line 1 column 18"]),
    ('{"warmup": NaN}', ["invalid JSON", "line 1 column 12"]),
    ('{"device": "cpu"} {}', ["invalid JSON", "line 1 column 19"]),
    ('{"job_key": "\\ud800"}', ["invalid JSON", "surrogate"]),
    ("[1, 2]", ["expected a JSON object at the top level"]),
])
def test_malformed_json_is_one_line(bench: Path, tmp_path: Path, text: str, words: list[str]) -> None:
    job, out = tmp_path / "job.json", tmp_path / "result.json"
    job.write_text(text)
    proc = run_bench(bench, job, out)
    assert_bad_input(proc, out, str(job), *words)
    assert len(proc.stderr.strip().splitlines()) == 1


# A key of the wrong type or value names the file, the key and what was expected.
@pytest.mark.parametrize(("key", "value", "words"), [
    ("warmup", "5", ['"warmup"', "expected number, got string"]),
    ("iters", 2.5, ['"iters"', "expected an integer, got 2.5"]),
    ("seed", 2**63, ['"seed"', "expected an integer"]),
    ("iters", 0, ['"iters" must be >= 1']),
    ("device", None, ['"device"', "expected string, got null"]),
    ("inputs", {"shape": [1]}, ['"inputs"', "expected array, got object"]),
    ("inputs", [{"shape": [1, -3], "low": 0, "high": 1}], ['"inputs[0]"', "negative dimension -3"]),
    ("inputs", [{"shape": [1], "low": 0}], ['"inputs[0]"', 'missing key "high"']),
    ("artifact", None, ['"artifact" is null', "torchscript, torchscript-trt, aoti"]),
    ("artifact", {"kind": "aoti"}, ['"artifact"', 'missing key "file"']),
    ("cuda_graphs", "on", ['"cuda_graphs"', "expected boolean, got string"]),
    ("tf32", "yes", ['"tf32"', '"yes"', '"on", "off", ""']),
    ("tf32", True, ['"tf32"', "expected string, got boolean"]),
])
def test_bad_keys_name_file_and_key(bench: Path, tmp_path: Path, key: str, value: Any, words: list[str]) -> None:
    job = make_job(tmp_path, tmp_path / "m.ts", "torchscript", TINY_INPUTS)
    data = json.loads(job.read_text())
    data[key] = value
    job.write_text(json.dumps(data))
    out = tmp_path / "result.json"
    assert_bad_input(run_bench(bench, job, out), out, str(job), *words)


def test_deep_nesting_in_an_ignored_key_is_read(bench: Path, artifacts: dict[str, Path], tmp_path: Path) -> None:
    job = make_job(tmp_path, artifacts["tiny.ts"], "torchscript", TINY_INPUTS, iters=1)
    text = job.read_text()
    deep = "[" * 100_000 + "]" * 100_000  # no recursion limit to trip over, no stack to overflow
    job.write_text(text[: text.rindex("}")] + f', "deep": {deep}}}')
    run_ok(bench, job, tmp_path)


# --------------------------------------------------------------------------------------------------
# TEAM.md's job.json / result.json additions: cuda_graphs, tf32, threads, energy, profile, fidelity


@pytest.mark.parametrize("tf32", ["on", "off"])
def test_tf32_on_a_cpu_job_is_bad_input(bench: Path, artifacts: dict[str, Path], tmp_path: Path, tf32: str) -> None:
    # The matrix refuses it; a job file that says it anyway is refused as runners/common.py refuses it.
    job = make_job(tmp_path, artifacts["tiny.ts"], "torchscript", TINY_INPUTS, tf32=tf32)
    out = tmp_path / "result.json"
    assert_bad_input(run_bench(bench, job, out), out, '"tf32"', f'"{tf32}"', "CUDA devices only", "cpu")


@pytest.mark.parametrize("artifact", ["tiny.ts", "tiny.pt2"])
def test_cuda_graphs_on_cpu_is_unsupported(
    bench: Path, artifacts: dict[str, Path], tmp_path: Path, artifact: str
) -> None:
    kind = "aoti" if artifact.endswith(".pt2") else "torchscript"
    job = make_job(tmp_path, artifacts[artifact], kind, TINY_INPUTS, cuda_graphs=True)
    out = tmp_path / "result.json"
    proc = run_bench(bench, job, out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "unsupported"
    assert result["reason"] == "CUDA graphs need a CUDA device (job device: cpu)"
    assert result["cuda_graphs"] is True  # what was asked: never run without the graph instead
    assert result["samples_ms"] == [] and result["outputs_path"] is None
    assert result["tf32_matmul"] is False and result["tf32_cudnn"] is False
    assert result["num_threads"] >= 1 and result["profile_note"]
    assert result["energy_mj_per_forward"] is None and result["energy_note"] == "no timed loop ran"
    assert result["fidelity"] is None and result["kernel_busy_ms"] is None
    assert not (tmp_path / "work" / "outputs.pt").exists()


# --------------------------------------------------------------------------------------------------
# 5: TensorRT without its runtime is unavailable, not a failure


def test_torchscript_trt_without_runtime_is_unavailable(
    bench: Path, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    job = make_job(tmp_path, artifacts["tiny.ts"], "torchscript-trt", TINY_INPUTS)
    out = tmp_path / "result.json"
    proc = run_bench(bench, job, out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "unavailable"
    assert "libtorchtrt_runtime.so not found" in result["reason"]
    assert "torch-tensorrt release that matches this torch (`sweep doctor` names it)" in result["reason"]
    assert result["samples_ms"] == [] and result["extra"]["binary"] == "sweep-bench"

    proc = run_bench(bench, job, out, env={"SWEEP_TORCHTRT_RUNTIME": str(tmp_path / "libtorchtrt_runtime.so")})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "unavailable" and "could not be loaded" in result["reason"]


def test_torchscript_trt_on_cpu_is_unsupported(bench: Path, artifacts: dict[str, Path], tmp_path: Path) -> None:
    # Any loadable library stands in for libtorchtrt_runtime.so: the binary only dlopen()s it.
    stand_in = Path(torch.__file__).parent / "lib" / "libc10.so"
    job = make_job(tmp_path, artifacts["tiny.ts"], "torchscript-trt", TINY_INPUTS, device="cpu")
    out = tmp_path / "result.json"
    proc = run_bench(bench, job, out, env={"SWEEP_TORCHTRT_RUNTIME": str(stand_in)})
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "unsupported" and "CUDA devices only" in result["reason"]
    assert result["extra"]["torchtrt_runtime"] == str(stand_in)


def test_cuda_job_on_cpu_build_is_unavailable(bench: Path, artifacts: dict[str, Path], tmp_path: Path) -> None:
    if built_with_cuda(bench):
        pytest.skip("this sweep-bench was built with CUDA")
    job = make_job(tmp_path, artifacts["tiny.ts"], "torchscript", TINY_INPUTS, device="cuda")
    result = run_ok_or_unavailable(bench, job, tmp_path)
    assert result["status"] == "unavailable" and "CPU-only libtorch" in result["reason"]


def run_ok_or_unavailable(bench: Path, job: Path, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "result.json"
    proc = run_bench(bench, job, out)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------------
# 6: outputs flatten in pytree order


def test_multi_output_flattens_in_pytree_order(bench: Path, tmp_path: Path) -> None:
    specs = [{"shape": [2, 3], "low": -1.0, "high": 1.0}, {"shape": [2, 3], "low": 0.0, "high": 2.0}]
    xs = contract_inputs(specs, 0)
    model = torch.jit.trace(MultiOutput(), tuple(xs), strict=False)
    model.save(str(tmp_path / "multi.ts"))
    job = make_job(tmp_path, tmp_path / "multi.ts", "torchscript", specs)
    run_ok(bench, job, tmp_path)
    saved = torch.load(tmp_path / "work" / "outputs.pt")
    expected = pytree.tree_leaves(MultiOutput()(*xs))
    assert len(saved) == len(expected) == 6
    for got, want in zip(saved, expected, strict=True):
        assert got.shape == want.shape and torch.allclose(got, want), (got, want)


# --------------------------------------------------------------------------------------------------
# the contract's plumbing: JSON escapes, --version


def test_json_escapes_round_trip(bench: Path, artifacts: dict[str, Path], tmp_path: Path) -> None:
    weird = tmp_path / 'out "quoted" \\ tab\t ünï 日本 😀'
    outputs = weird / "outputs.pt"
    job = make_job(tmp_path, artifacts["tiny.ts"], "torchscript", TINY_INPUTS, outputs_path=outputs)
    data = json.loads(job.read_text())
    data["job_key"] = "\u00e9\U0001F600\n\"/\\"
    data["model"]["options"] = {"nested": [1, 2.5e-3, -0.0, True, False, None, {"deep": [[[]]]}]}
    job.write_text(json.dumps(data, ensure_ascii=True))  # \uXXXX escapes, surrogate pairs included
    result = run_ok(bench, job, tmp_path)
    assert result["outputs_path"] == str(outputs)
    assert outputs.is_file()


def test_version_names_libtorch_and_cuda(bench: Path) -> None:
    proc = subprocess.run([str(bench), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    m = re.fullmatch(r"sweep-bench \S+ libtorch=(\S+) cuda=(no|\d+\.\d+) torchtrt=(unset|loaded|error)", line)
    assert m, line
    assert m.group(1) == torch.__version__.split("+")[0]
    assert (m.group(2) == "no") == (torch.version.cuda is None)


# --------------------------------------------------------------------------------------------------
# on a CUDA machine: events, allocator peaks, the GPU's name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["torchscript", "aoti"])
def test_cuda_runs_with_events_and_allocator_stats(bench: Path, tmp_path: Path, kind: str) -> None:
    if not built_with_cuda(bench):
        pytest.skip("this sweep-bench was built without CUDA")
    artifact, ref = cuda_artifact(tmp_path, kind)
    job = make_job(tmp_path, artifact, kind, TINY_INPUTS, device="cuda", warmup=3, iters=20)
    result = run_ok(bench, job, tmp_path)
    assert len(result["samples_ms"]) == len(result["samples_cuda_ms"]) == 20
    assert min(result["samples_cuda_ms"]) > 0
    # the host clock around a synchronize can't beat the device work it waits for
    assert sorted(result["samples_ms"])[10] >= sorted(result["samples_cuda_ms"])[10] * 0.95
    assert result["peak_mem_mb"] > 0 and result["reserved_mem_mb"] >= result["peak_mem_mb"]
    assert result["env"]["device_name"] == torch.cuda.get_device_name(0)
    assert result["env"]["cuda_version"]
    (saved,) = torch.load(tmp_path / "work" / "outputs.pt")
    assert saved.device.type == "cpu" and rel_err(saved, ref) < 1e-3  # TF32 may differ run to run
    assert result["cuda_graphs"] is False and result["tf32_cudnn"] is True  # tf32 "": PyTorch's defaults
    assert result["energy_note"] or result["energy_mj_per_forward"] > 0



class HostSync(nn.Module):
    """Boolean-mask indexing: the output's size needs a device-to-host copy, which a CUDA graph cannot hold."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[x > 0].sum()


def cuda_artifact(tmp_path: Path, kind: str) -> tuple[Path, torch.Tensor]:
    """The tiny model on CUDA as `kind`, and its eager output on the contract's inputs (CPU)."""
    x = contract_inputs(TINY_INPUTS, 0)[0]
    model = tiny_model().cuda()
    with torch.no_grad():
        if kind == "torchscript":
            artifact = tmp_path / "tiny_cuda.ts"
            torch.jit.trace(model, (x.cuda(),)).save(str(artifact))
        else:
            exported = torch.export.export(model, (x.cuda(),))
            artifact = Path(torch._inductor.aoti_compile_and_package(
                exported, package_path=str(tmp_path / "tiny_cuda.pt2")))
        ref = model(x.cuda()).cpu()
    return artifact, ref


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["torchscript", "aoti"])
def test_cuda_graphs_replay_in_the_timed_loop(bench: Path, tmp_path: Path, kind: str) -> None:
    if not built_with_cuda(bench):
        pytest.skip("this sweep-bench was built without CUDA")
    artifact, ref = cuda_artifact(tmp_path, kind)
    job = make_job(tmp_path, artifact, kind, TINY_INPUTS, device="cuda", warmup=3, iters=50, cuda_graphs=True,
                   tf32="off")
    result = run_ok(bench, job, tmp_path)
    assert result["cuda_graphs"] is True
    assert len(result["samples_ms"]) == len(result["samples_cuda_ms"]) == 50
    assert result["tf32_matmul"] is False and result["tf32_cudnn"] is False
    (saved,) = torch.load(tmp_path / "work" / "outputs.pt")  # from a replay
    assert rel_err(saved, ref) < 1e-4
    # energy: measured, or null with the reason (a short loop may not see the counter move)
    if result["energy_mj_per_forward"] is None:
        assert result["energy_note"], result
    else:
        assert result["energy_mj_per_forward"] > 0 and result["mean_power_w"] > 0 and result["energy_note"] == ""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("tf32", "matmul", "cudnn"), [("", False, True), ("on", True, True), ("off", False, False)])
def test_tf32_flags_are_set_and_reported(bench: Path, tmp_path: Path, tf32: str, matmul: bool, cudnn: bool) -> None:
    if not built_with_cuda(bench):
        pytest.skip("this sweep-bench was built without CUDA")
    x = contract_inputs(TINY_INPUTS, 0)[0]
    with torch.no_grad():
        torch.jit.trace(tiny_model().cuda(), (x.cuda(),)).save(str(tmp_path / "tiny_cuda.ts"))
    job = make_job(tmp_path, tmp_path / "tiny_cuda.ts", "torchscript", TINY_INPUTS, device="cuda", tf32=tf32)
    result = run_ok(bench, job, tmp_path)
    assert (result["tf32_matmul"], result["tf32_cudnn"]) == (matmul, cudnn)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_uncapturable_model_is_unsupported_with_the_capture_error(bench: Path, tmp_path: Path) -> None:
    if not built_with_cuda(bench):
        pytest.skip("this sweep-bench was built without CUDA")
    torch.jit.script(HostSync()).save(str(tmp_path / "sync.ts"))
    job = make_job(tmp_path, tmp_path / "sync.ts", "torchscript", TINY_INPUTS, device="cuda", cuda_graphs=True)
    out = tmp_path / "result.json"
    proc = run_bench(bench, job, out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["status"] == "unsupported", result
    assert result["reason"].startswith("CUDA graph capture failed: ") and len(result["reason"]) > 30
    assert result["cuda_graphs"] is True and result["samples_ms"] == []
    # without graphs the same model runs
    job = make_job(tmp_path, tmp_path / "sync.ts", "torchscript", TINY_INPUTS, device="cuda")
    assert run_ok(bench, job, tmp_path)["cuda_graphs"] is False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
