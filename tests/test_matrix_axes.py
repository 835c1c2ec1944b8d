"""The matrix keys added for processes, memory limits, CUDA graphs, TF32 and fidelity: values, defaults, errors,
and job keys that stay what they were for jobs that use none of them."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console

from sweep import cli as cli_module
from sweep.cli import app
from sweep.jobs import FidelitySpec, Job, ModelSpec, canonical_key
from sweep.matrix import load
from sweep.runtimes import RUNTIMES, uses_tensorrt

ROOT = Path(__file__).resolve().parent.parent


def jobs_of(write_matrix, text: str) -> list[Job]:
    return list(load(write_matrix(text)).jobs)


# Keys computed by the code before these fields existed (main at 7f40eb4): they must never change.
OLD_KEYS_MATRIX = """
name: demo
model: {name: tiny, input_shape: [1, 3, 16, 16]}
device: cuda
measure: {warmup: 1, iters: 2, timeout_s: 60, seed: 0}
jobs:
  - runtime: python-eager
    model_precision: [fp32, fp16]
    amp_dtype: [fp16, fp32]
  - runtime: python-trt
    enabled_precisions: [fp32, fp16]
    model_precision: fp32+fp16
"""
OLD_KEYS = ["d711849dcdcd93c60d94", "737f7eed575960bb1172", "e0dd1ef0ead5da7a5e08", "141b3e0670d86edeb5d8",
            "ddd370078fa16bfce98c"]


def test_keys_of_existing_jobs_are_unchanged(write_matrix) -> None:
    assert [j.key for j in jobs_of(write_matrix, OLD_KEYS_MATRIX)] == OLD_KEYS
    # the new keys at their defaults, spelt out, change nothing either
    spelt = OLD_KEYS_MATRIX.replace("    amp_dtype: [fp16, fp32]", "    amp_dtype: [fp16, fp32]\n    cuda_graphs: off")
    spelt = spelt.replace("measure: {", "fidelity: {measure: sorted}\nmeasure: {processes: 5, memory_limit_gb: 4, ")
    assert [j.key for j in jobs_of(write_matrix, spelt)] == OLD_KEYS


def test_committed_h200_rows_match_the_h200_matrix() -> None:
    """Compare across versions matches by job_key: the committed rows must keep the keys the matrix gives."""
    stored = set()
    for path in (ROOT / "results" / "h200-2026-11-28").glob("*.parquet"):
        stored |= set(pq.read_table(path, columns=["job_key"]).column("job_key").to_pylist())
    assert stored
    assert stored <= {j.key for j in load(ROOT / "matrices" / "h200.yaml").jobs}


def test_processes_default_by_device_and_override(write_matrix) -> None:
    jobs = jobs_of(write_matrix, """
        model: {name: tiny}
        jobs:
          - {runtime: python-eager, device: [cpu, cuda]}
          - {runtime: python-eager, device: cuda:1, measure: {processes: 5, memory_limit_gb: 2.5}}
    """)
    assert [(j.device, j.processes, j.memory_limit_gb) for j in jobs] == [
        ("cpu", 1, None), ("cuda", 3, None), ("cuda:1", 5, 2.5)]
    top = jobs_of(write_matrix, "model: {name: tiny}\nmeasure: {processes: 2}\njobs: [{runtime: python-eager}]")
    assert top[0].processes == 2
    # not part of the key: more processes of the same job are more samples of it
    assert top[0].key == jobs[0].key


def test_cuda_graphs_axis(write_matrix) -> None:
    jobs = jobs_of(write_matrix, """
        model: {name: tiny}
        device: cuda
        jobs:
          - runtime: [python-eager, python-aoti, cpp-torchscript, cpp-aoti]
            cuda_graphs: [off, on]
          - {runtime: python-eager, cuda_graphs: [true, "off"]}   # booleans and quoted words alike
    """)
    assert [(j.runtime, j.cuda_graphs) for j in jobs] == [
        (rt, g) for rt in ("python-eager", "python-aoti", "cpp-torchscript", "cpp-aoti") for g in (False, True)]
    plain = jobs_of(write_matrix, "model: {name: tiny}\ndevice: cuda\njobs: [{runtime: python-eager}]")[0]
    assert jobs[0].key == plain.key and jobs[1].key != plain.key
    assert jobs[1].identity()["cuda_graphs"] is True and "cuda_graphs" not in plain.identity()
    assert "graphs" in jobs[1].describe()


def test_tf32_axis_applies_to_fp32_weights_only(write_matrix) -> None:
    jobs = jobs_of(write_matrix, """
        model: {name: tiny}
        device: cuda
        jobs:
          - runtime: python-eager
            model_precision: [fp32, fp16, bf16]
            tf32: [on, off]
          - runtime: python-inductor
            model_precision: fp32+bf16
            tf32: "on"
    """)
    assert [(j.runtime, j.model_precision, j.tf32) for j in jobs] == [
        ("python-eager", "fp32", "on"), ("python-eager", "fp32", "off"), ("python-eager", "fp16", ""),
        ("python-eager", "bf16", ""), ("python-inductor", "fp32+bf16", "on")]
    plain = jobs_of(write_matrix, "model: {name: tiny}\ndevice: cuda\njobs: [{runtime: python-eager}]")[0]
    assert len({plain.key, jobs[0].key, jobs[1].key}) == 3
    assert jobs[0].identity()["tf32"] == "on" and "tf32" not in plain.identity()


def test_exclude_on_new_axes_runs_before_the_device_checks(write_matrix) -> None:
    jobs = jobs_of(write_matrix, """
        model: {name: tiny}
        jobs:
          - runtime: python-eager
            device: [cpu, cuda]
            model_precision: [fp32, fp16]
            cuda_graphs: [off, on]
            tf32: [on, off]
            exclude:
              - {device: cpu, cuda_graphs: on}
              - {device: cpu, tf32: [true, "off"]}
    """)
    assert all(j.device == "cuda" for j in jobs if j.cuda_graphs or j.tf32)
    assert not [j for j in jobs if j.device == "cpu"]  # every cpu combination had a tf32 value
    assert {(j.model_precision, j.cuda_graphs, j.tf32) for j in jobs} == {
        ("fp32", False, "on"), ("fp32", False, "off"), ("fp32", True, "on"), ("fp32", True, "off"),
        ("fp16", False, ""), ("fp16", True, "")}


def test_fidelity_top_block_merge_and_defaults(write_matrix, matrix_dir: Path) -> None:
    jobs = jobs_of(write_matrix, """
        model: {name: dino-vitdet-tiny}
        fidelity: {tolerance: {fp16: 0.05, bf16: 1e-1}, measure: sorted}
        jobs:
          - runtime: python-eager
          - runtime: python-eager
            model_precision: fp16
            fidelity: {tolerance: {fp16: 0.01}, outputs: [0]}
          - runtime: python-eager
            model: {name: tiny}
          - runtime: python-eager
            model: {factory: "fault_models:small", input_shape: [2, 8]}
    """)
    first, second, tiny, user = jobs
    assert first.fidelity == FidelitySpec(tolerance=(("bf16", 0.1), ("fp16", 0.05)), measure="sorted", outputs=(3, 4))
    assert second.fidelity == FidelitySpec(tolerance=(("bf16", 0.1), ("fp16", 0.01)), measure="sorted", outputs=(0,))
    assert tiny.fidelity.outputs is None and user.fidelity.outputs is None
    bare = jobs_of(write_matrix, "model: {name: dino-vitdet-tiny}\njobs: [{runtime: python-eager}]")[0]
    assert bare.fidelity == FidelitySpec(outputs=(3, 4))
    assert bare.key == first.key  # how a job is judged is not what is measured


def test_plan_json_shows_the_new_fields(write_matrix, cli, monkeypatch) -> None:
    path = write_matrix("model: {name: tiny}\ndevice: cuda\njobs: [{runtime: python-eager, cuda_graphs: on}]")
    import json

    res = cli.invoke(app, ["plan", str(path), "--json"])
    assert res.exit_code == 0, res.output
    (job,) = json.loads(res.stdout)
    assert job["cuda_graphs"] is True and job["tf32"] == "" and job["processes"] == 3
    assert job["fidelity"] == {"tolerance": {}, "measure": "elementwise", "outputs": None}
    assert job["model_key"] == load(path).jobs[0].model.key
    # a console wide enough for every header: the CLI's own one took its width when sweep.cli was imported
    # (from COLUMNS, which pytest-xdist workers set to 80)
    monkeypatch.setattr(cli_module, "out", Console(highlight=False, soft_wrap=True, width=200))
    res = cli.invoke(app, ["plan", str(path)])
    assert res.exit_code == 0 and "graphs" in res.stdout and "tf32" not in res.stdout  # only columns in use


def test_model_key_is_the_hash_of_the_model_identity() -> None:
    a = ModelSpec(kind="builtin", ref="tiny", input_shapes=((1, 3, 64, 64),))
    b = ModelSpec(kind="builtin", ref="tiny", input_shapes=((1, 3, 64, 64),), root="/elsewhere")
    c = ModelSpec(kind="builtin", ref="tiny", input_shapes=((2, 3, 64, 64),))
    assert a.key == canonical_key(a.identity()) == b.key != c.key


def test_uses_tensorrt_is_the_one_answer() -> None:
    assert [name for name in RUNTIMES if uses_tensorrt(name)] == ["python-trt", "cpp-trt"]
    assert not uses_tensorrt("no-such-runtime")
    for source in (ROOT / "sweep").rglob("*.py"):
        text = source.read_text()
        assert '"trt" in name' not in text and 'endswith("-trt")' not in text, source
