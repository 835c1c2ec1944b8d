"""The variant cache and the compiled runtimes, on the CPU with the tiny model: build once, reuse, fail cleanly.

The slow tests share one artifacts folder, the session's `compiled` fixture (tests/compiled.py, conftest.py):
AOTInductor compiles take minutes on two cores, so they happen once per test session, for every module.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sweep import compile as compile_step
from sweep import execute, native, store
from sweep.cli import app
from sweep.matrix import Matrix, load
from sweep.orchestrate import Orchestrator
from tests.compiled import by_key, write

HAS_TRT = importlib.util.find_spec("torch_tensorrt") is not None and importlib.util.find_spec("tensorrt") is not None

RUN = """
name: compiled-run
model: {name: tiny}
device: cpu
measure: {warmup: 2, iters: 5, timeout_s: 600, seed: 0}
jobs:
  - runtime: python-inductor
    model_precision: [fp32, fp32+bf16]
  - runtime: python-aoti
  - runtime: [python-trt, cpp-trt]
    model_precision: fp32+fp16
    enabled_precisions: fp32+bf16+fp16
  - runtime: [python-aoti, cpp-aoti, python-inductor]
    model: {factory: "export_models:data_dependent", input_shape: [2, 8]}
"""


# --- fast: identity, listing, pruning, TensorRT unavailable --------------------------------------------------


def test_runtimes_that_load_the_same_file_share_a_variant(tmp_path: Path) -> None:
    m = load(write(tmp_path, """
        model: {name: tiny}
        jobs:
          - runtime: [python-aoti, cpp-aoti, cpp-torchscript]
            model_precision: [fp32, fp32+bf16]
          - runtime: [python-trt, cpp-trt]
            enabled_precisions: [fp32, fp32+bf16]
          - runtime: python-aoti
            measure: {seed: 1}
          - runtime: python-aoti
            measure: {iters: 7, warmup: 3}
    """, "m.yaml"))
    key = {(j.runtime, j.model_precision, j.enabled_label, j.seed, j.iters): compile_step.Variant.of(j).key
           for j in m.jobs}
    assert key[("python-aoti", "fp32", "", 0, 100)] == key[("cpp-aoti", "fp32", "", 0, 100)]
    assert key[("python-aoti", "fp32+bf16", "", 0, 100)] == key[("cpp-aoti", "fp32+bf16", "", 0, 100)]
    assert key[("python-aoti", "fp32", "", 0, 100)] != key[("python-aoti", "fp32+bf16", "", 0, 100)]
    assert key[("python-aoti", "fp32", "", 0, 100)] != key[("cpp-torchscript", "fp32", "", 0, 100)]
    assert key[("python-trt", "fp32", "fp32", 0, 100)] == key[("cpp-trt", "fp32", "fp32", 0, 100)]
    assert key[("python-trt", "fp32", "fp32", 0, 100)] != key[("python-trt", "fp32", "fp32+bf16", 0, 100)]
    assert key[("python-aoti", "fp32", "", 1, 100)] != key[("python-aoti", "fp32", "", 0, 100)]  # seeded weights
    assert key[("python-aoti", "fp32", "", 0, 7)] == key[("python-aoti", "fp32", "", 0, 100)]  # measuring only
    plan = compile_step.plan(m.jobs)
    assert {tuple(p.runtimes) for p in plan} >= {("cpp-aoti", "python-aoti"), ("cpp-trt", "python-trt")}


def _fake_variant(folder: Path, key: str, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    manifest = {"format": compile_step.FORMAT, "key": key, "backend": "torchscript", "model": "tiny",
                "variant": {"model_precision": "fp32", "device": "cpu"}, "compile_s": 1.0,
                "built_at": "2020-01-01T00:00:00+00:00",
                "files": [{"name": n, "size": len(d), "sha256": ""} for n, d in files.items()]}
    (folder / compile_step.MANIFEST).write_text(json.dumps(manifest))


def test_listing_and_pruning_keep_references_and_live_builds(tmp_path: Path, cli: CliRunner) -> None:
    art = tmp_path / "art"
    _fake_variant(art / ("a" * 20), "a" * 20, {"model.ts": b"12345"})
    _fake_variant(art / ("b" * 20), "b" * 20, {"model.ts": b"12345"})
    (art / ("b" * 20) / "model.ts").write_bytes(b"12")  # truncated: invalid, never used
    dead = art / f".tmp-{'c' * 20}-999999999-deadbeef"  # a builder that was killed: its pid is gone
    _fake_variant(dead, "c" * 20, {"model.ts": b"x"})
    live = art / f".tmp-{'d' * 20}-{os.getpid()}-cafef00d"  # a build in flight
    live.mkdir()
    (art / "references" / "r1").mkdir(parents=True)
    (art / "references" / "r1" / "outputs.pt").write_bytes(b"ref")

    assert compile_step.validate(art / ("a" * 20)) is not None
    assert compile_step.validate(art / ("b" * 20)) is None
    assert compile_step.validate(dead) is None  # its name is not its key
    res = cli.invoke(app, ["artifacts", "--artifacts", str(art), "--json"])
    assert res.exit_code == 0, res.output
    listed = {v["key"]: v["kind"] for v in json.loads(res.stdout)["variants"]}
    assert listed == {"a" * 20: "variant", "b" * 20: "invalid", dead.name: "stale-tmp", live.name: "tmp"}
    assert json.loads(res.stdout)["references"]["count"] == 1

    res = cli.invoke(app, ["artifacts", "--artifacts", str(art), "--prune-older-than", "36500", "--json"])
    assert {v["key"] for v in json.loads(res.stdout)["pruned"]} == {"b" * 20, dead.name}
    res = cli.invoke(app, ["artifacts", "--artifacts", str(art), "--prune-all", "--json"])
    assert {v["key"] for v in json.loads(res.stdout)["pruned"]} == {"a" * 20}
    assert sorted(p.name for p in art.iterdir()) == sorted(["references", live.name])
    assert (art / "references" / "r1" / "outputs.pt").read_bytes() == b"ref"
    res = cli.invoke(app, ["artifacts", "--artifacts", str(art)])
    assert res.exit_code == 0 and "references: 1" in res.stdout


@pytest.mark.skipif(HAS_TRT, reason="torch-tensorrt is installed here")
def test_tensorrt_jobs_are_unavailable_rows_with_the_install_hint(tmp_path: Path) -> None:
    m = load(write(tmp_path / "m", """
        model: {name: tiny}
        device: cuda
        measure: {processes: 1}
        jobs:
          - runtime: [python-trt, cpp-trt]
            model_precision: [fp32, fp32+fp16]
            enabled_precisions: fp32+bf16+fp16
    """, "m.yaml"))
    compile_step.forget()
    summary = Orchestrator(tmp_path / "r", tmp_path / "a").run(m)
    assert summary.counts == {"unavailable": 4} and summary.exit_code == 0
    for row in summary.rows:
        assert "pip install torch-tensorrt==" in row["reason"] and "torch_tensorrt" in row["reason"]
        assert row["variant_key"]
    assert not (tmp_path / "a").exists() or not any(p.name != "references" for p in (tmp_path / "a").iterdir())


# --- slow: real compiles -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_compile_builds_once_then_everything_is_cached(compiled: dict[str, Any]) -> None:
    code1, first, t1 = compiled["first"]
    code2, second, t2 = compiled["second"]
    assert code1 == 1 and code2 == 1  # the data-dependent model cannot be exported: a failed variant
    aoti = by_key(first, "aoti", "tiny", "fp32")
    assert aoti["status"] == "built" and aoti["runtimes"] == ["python-aoti"] and aoti["compile_s"] > 0
    for precision in ("fp32", "fp32+bf16"):
        assert by_key(first, "torchscript", "tiny", precision)["status"] == "built"
    trt = by_key(first, "trt", "tiny", "fp32+fp16")
    if not HAS_TRT:
        assert trt["status"] == "unavailable" and "pip install torch-tensorrt==" in trt["reason"]
        assert trt["runtimes"] == ["cpp-trt", "python-trt"]
    bad = by_key(first, "aoti", "export_models:data_dependent", "fp32")
    assert bad["status"] == "failed" and bad["runtimes"] == ["cpp-aoti", "python-aoti"]
    assert "GuardOnDataDependentSymNode" in bad["reason"] or "data-dependent" in bad["reason"]
    # Second run: nothing built, the cached ones answer at once.
    assert {r["key"]: r["status"] for r in second if r["status"] in ("built", "cached")} == {
        r["key"]: "cached" for r in first if r["status"] == "built"}
    assert all(r["seconds"] < 1.0 for r in second if r["status"] == "cached")
    assert by_key(second, "aoti", "tiny", "fp32")["compile_s"] == aoti["compile_s"]  # recorded, not re-measured
    # On disk: one folder per built variant with its manifest, nothing temporary, nothing for failures
    # (as the first compile left it: other tests of the session add their own variants later).
    art: Path = compiled["art"]
    assert set(compiled["folders"]) == {r["key"] for r in first if r["status"] == "built"}
    manifest = json.loads((art / aoti["key"] / "manifest.json").read_text())
    assert manifest["key"] == aoti["key"] and manifest["variant"]["backend"] == "aoti"
    assert [f["name"] for f in manifest["files"]] == ["model.pt2"] and manifest["files"][0]["size"] > 0
    assert compile_step.validate(art / aoti["key"], deep=True) is not None
    print(f"\ncompile wall: first {t1:.1f} s, second {t2:.1f} s; aoti compile_s {aoti['compile_s']:.1f} s, "
          f"torchscript {by_key(first, 'torchscript', 'tiny', 'fp32')['compile_s']:.2f} s")


@pytest.mark.slow
def test_mixed_precision_is_really_in_the_traced_artifact(compiled: dict[str, Any]) -> None:
    import torch

    first = compiled["first"][1]
    art: Path = compiled["art"]
    fp32 = torch.jit.load(str(art / by_key(first, "torchscript", "tiny", "fp32")["key"] / "model.ts"))
    mixed = torch.jit.load(str(art / by_key(first, "torchscript", "tiny", "fp32+bf16")["key"] / "model.ts"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert fp32(x).dtype == torch.float32
        assert mixed(x).dtype == torch.bfloat16  # autocast was recorded, not silently dropped
        assert 0 < float((mixed(x).float() - fp32(x)).abs().max()) < 0.05


@pytest.mark.slow
def test_compiled_runtimes_end_to_end(compiled: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Inductor and AOTI rows agree with fp32 eager; the broken variant is compiled once for its two jobs
    and becomes compile_failed rows; TensorRT rows are unavailable; the cached AOTI package is reused."""
    art: Path = compiled["art"]
    matrix: Matrix = load(write(compiled["root"] / "run", RUN, "run.yaml"))
    compile_step.forget()
    launches: list[list[str]] = []
    real_launch = execute.launch

    def spy(command: list[str], *args: Any, **kwargs: Any) -> execute.Outcome:
        launches.append(command)
        return real_launch(command, *args, **kwargs)

    monkeypatch.setattr(execute, "launch", spy)
    aoti_key = by_key(compiled["first"][1], "aoti", "tiny", "fp32")["key"]
    built_at = json.loads((art / aoti_key / "manifest.json").read_text())["built_at"]
    results = compiled["root"] / "results"
    summary = Orchestrator(results, art).run(matrix)
    rows = {(r["runtime"], r["model"], r["model_precision"]): r for r in store.load(results).to_dict("records")}
    assert len(rows) == len(matrix.jobs) == 8

    for precision, tolerance in (("fp32", 1e-4), ("fp32+bf16", 0.05)):
        row = rows[("python-inductor", "tiny", precision)]
        assert row["status"] == "ok", row["reason"]
        assert len(row["samples_ms"]) == 5 and row["compile_s"] > 0 and row["rel_err"] < tolerance
    assert rows[("python-inductor", "tiny", "fp32+bf16")]["rel_err"] > 0  # bf16 really ran
    aoti = rows[("python-aoti", "tiny", "fp32")]
    assert aoti["status"] == "ok", aoti["reason"]
    assert aoti["rel_err"] < 1e-4 and aoti["variant_key"] == aoti_key and aoti["compile_s"] > 0
    assert json.loads((art / aoti_key / "manifest.json").read_text())["built_at"] == built_at  # not rebuilt
    for runtime in ("python-trt", "cpp-trt"):
        row = rows[(runtime, "tiny", "fp32+fp16")]
        if not HAS_TRT:
            assert row["status"] == "unavailable" and "pip install torch-tensorrt==" in row["reason"]
    for runtime in ("python-aoti", "cpp-aoti"):
        row = rows[(runtime, "export_models:data_dependent", "fp32")]
        assert row["status"] == "compile_failed" and "data-dependent" in row["reason"]
    assert rows[("python-inductor", "export_models:data_dependent", "fp32")]["status"] == "ok"  # graph break
    compiles = [c for c in launches if "runners.compile" in c]
    assert len(compiles) == 1  # the broken variant, once for both of its jobs; the good ones were cached
    assert summary.exit_code == 1 and summary.counts["compile_failed"] == 2
    for key, row in rows.items():
        print(f"\n{key}: {row['status']} wall {row['wall_s']:.1f} s compile {row['compile_s']} load {row['load_s']}")


@pytest.mark.slow
def test_native_runtimes_run_the_cached_variants(compiled: dict[str, Any], native_binary: Path) -> None:
    assert native_binary.is_file()  # built (or found up to date) by the session fixture, before the orchestrator
    matrix = load(write(compiled["root"] / "native", """
        name: native
        model: {name: tiny}
        device: cpu
        measure: {warmup: 2, iters: 5, timeout_s: 600, seed: 0}
        jobs:
          - runtime: cpp-torchscript
            model_precision: [fp32, fp32+bf16]
          - runtime: cpp-aoti
    """, "native.yaml"))
    summary = Orchestrator(compiled["root"] / "native-results", compiled["art"]).run(matrix)
    rows = {(r["runtime"], r["model_precision"]): r for r in summary.rows}
    assert rows[("cpp-torchscript", "fp32")]["status"] == "ok" and rows[("cpp-torchscript", "fp32")]["rel_err"] < 1e-4
    assert 0 < rows[("cpp-torchscript", "fp32+bf16")]["rel_err"] < 0.05
    assert rows[("cpp-aoti", "fp32")]["status"] == "ok" and rows[("cpp-aoti", "fp32")]["rel_err"] < 1e-4


@pytest.mark.slow
def test_a_killed_compile_leaves_nothing_that_looks_built(tmp_path: Path) -> None:
    m = load(write(tmp_path / "m", """
        model: {name: tiny}
        jobs:
          - runtime: python-aoti
          - runtime: cpp-torchscript
            model: {factory: "fault_models:hang", input_shape: [2, 8]}
    """, "m.yaml"))
    aoti, hang = m.jobs
    art = tmp_path / "art"
    compile_step.forget()
    killed = compile_step.ensure(aoti, art, timeout_s=0.5)
    assert killed.status == "failed" and killed.timed_out and "no result after 0.5 s" in killed.reason
    killed = compile_step.ensure(hang, art, timeout_s=6.0)  # killed inside torch.jit.trace
    assert killed.status == "failed" and killed.timed_out
    assert list(art.iterdir()) == []  # no <key>/, no manifest, no leftover temporary folder
    again = compile_step.ensure(hang, art, timeout_s=6.0)  # remembered: not compiled (and killed) again
    assert again.status == "failed" and again.spent_s < 1.0


@pytest.mark.slow
def test_a_damaged_variant_is_rebuilt(compiled: dict[str, Any], tmp_path: Path) -> None:
    first = compiled["first"][1]
    key = by_key(first, "torchscript", "tiny", "fp32")["key"]
    art = tmp_path / "art"
    shutil.copytree(compiled["art"] / key, art / key)
    job = next(j for j in load(compiled["matrix"]).jobs
               if j.runtime == "cpp-torchscript" and j.model_precision == "fp32")
    assert compile_step.ensure(job, art, 600).status == "cached"
    with (art / key / "model.ts").open("r+b") as fh:
        fh.truncate(100)
    assert compile_step.validate(art / key) is None
    rebuilt = compile_step.ensure(job, art, 600)
    assert rebuilt.status == "built" and compile_step.validate(art / key, deep=True) is not None
    assert sorted(p.name for p in art.iterdir()) == [key]


@pytest.mark.slow
def test_a_native_build_failure_becomes_rows_and_is_tried_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real cmake run on a CMakeLists.txt that fails: each native job gets a failed row with the log's tail."""
    src = tmp_path / "native"
    (src / "src").mkdir(parents=True)
    (src / "CMakeLists.txt").write_text('cmake_minimum_required(VERSION 3.18)\nproject(broken CXX)\n'
                                        'message(FATAL_ERROR "sweep test: no torch here")\n')
    monkeypatch.setattr(native, "NATIVE_DIR", src)
    monkeypatch.setattr(native, "BUILD_DIR", src / "build")
    monkeypatch.setattr(native, "BUILD_LOG", src / "build" / "sweep-build.log")
    monkeypatch.setattr(native, "NATIVE_BINARY", src / "build" / "sweep-bench")
    m = load(write(tmp_path / "m", """
        model: {name: tiny}
        measure: {warmup: 1, iters: 2}
        jobs:
          - runtime: cpp-torchscript
            model_precision: [fp32, bf16]
    """, "m.yaml"))
    compile_step.forget()
    summary = Orchestrator(tmp_path / "r", tmp_path / "a").run(m)
    assert [r["status"] for r in summary.rows] == ["failed", "failed"]
    for row in summary.rows:
        assert "building" in row["reason"] and "sweep test: no torch here" in row["reason"]
    assert (src / "build" / "sweep-build.log").read_text().count("$ ") == 1  # configured once, not per job
