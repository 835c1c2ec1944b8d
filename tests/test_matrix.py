"""Matrix loading, validation (one line, exit 2, nothing written) and expansion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweep.cli import app
from sweep.errors import MatrixError
from sweep.matrix import load

GOOD = """
name: demo
model: {name: tiny, input_shape: [1, 3, 16, 16]}
device: cpu
measure: {warmup: 1, iters: 2, timeout_s: 60, seed: 0}
jobs:
  - runtime: python-eager
    model_precision: fp32
    amp_dtype: [fp16, bf16, fp32]
"""


def test_expansion_order_and_keys(write_matrix) -> None:
    m = load(write_matrix(GOOD))
    assert m.name == "demo"
    assert [j.amp_dtype for j in m.jobs] == ["fp16", "bf16", "fp32"]
    assert len({j.key for j in m.jobs}) == 3
    # pure and deterministic: loading again gives the same keys in the same order
    assert [j.key for j in load(write_matrix(GOOD)).jobs] == [j.key for j in m.jobs]


def test_cartesian_product_exclude_and_dedup(write_matrix) -> None:
    m = load(write_matrix("""
        model: {name: tiny}
        jobs:
          - runtime: python-eager
            model_precision: [fp32, bf16, fp16]
            amp_dtype: [fp32, bf16]
            exclude:
              - {model_precision: [bf16, fp16], amp_dtype: bf16}
          - runtime: python-eager          # duplicates of the block above run once
            model_precision: fp32
            amp_dtype: fp32
    """))
    combos = [(j.model_precision, j.amp_dtype) for j in m.jobs]
    assert combos == [("fp32", "fp32"), ("fp32", "bf16"), ("bf16", "fp32"), ("fp16", "fp32")]
    assert m.name == "m"  # defaults to the file's stem


def test_block_overrides_model_and_measure(write_matrix) -> None:
    m = load(write_matrix("""
        model: {name: tiny}
        measure: {iters: 7}
        jobs:
          - runtime: python-eager
          - runtime: python-eager
            model: {factory: "fault_models:small", input_shape: [2, 8]}
            measure: {iters: 3}
    """))
    first, second = m.jobs
    assert first.model.ref == "tiny" and first.iters == 7 and first.model.input_shapes == ((1, 3, 64, 64),)
    assert second.model.kind == "factory" and second.iters == 3 and second.model.input_shapes == ((2, 8),)


def test_key_ignores_matrix_name_and_timeout(write_matrix) -> None:
    a = load(write_matrix(GOOD)).jobs[0]
    b = load(write_matrix(GOOD.replace("name: demo", "name: other").replace("timeout_s: 60", "timeout_s: 5"))).jobs[0]
    assert a.key == b.key
    c = load(write_matrix(GOOD.replace("iters: 2", "iters: 3"))).jobs[0]
    assert c.key != a.key


def test_model_file_content_is_part_of_the_key(write_matrix, matrix_dir: Path) -> None:
    import torch

    from tests.fixtures.fault_models import Small

    ts = matrix_dir / "m.ts"
    torch.jit.trace(Small(), torch.rand(2, 8)).save(str(ts))
    text = "model: {torchscript: m.ts, input_shape: [2, 8]}\njobs: [{runtime: python-eager}]\n"
    k1 = load(write_matrix(text)).jobs[0].key
    torch.jit.trace(Small(), torch.rand(2, 8)).save(str(ts))  # new random weights
    assert load(write_matrix(text)).jobs[0].key != k1


BAD = {
    "yaml syntax": ("model: {name: tiny\njobs: [", "line"),
    "unknown top key": ("model: {name: tiny}\nmodle: 1\njobs: [{runtime: python-eager}]", "modle: unknown key"),
    "unknown block key": ("model: {name: tiny}\njobs: [{runtime: python-eager, amp_dtyp: fp16}]",
                          "jobs[0].amp_dtyp: unknown key"),
    "unknown model key": ("model: {name: tiny, inptu_shape: [1]}\njobs: [{runtime: python-eager}]",
                          "model.inptu_shape: unknown key"),
    "unknown measure key": ("model: {name: tiny}\nmeasure: {iter: 3}\njobs: [{runtime: python-eager}]",
                            "measure.iter: unknown key"),
    "unknown runtime": ("model: {name: tiny}\njobs: [{runtime: python-eagre}]",
                        "jobs[0].runtime: unknown value 'python-eagre'; allowed: python-eager"),
    "unknown precision": ("model: {name: tiny}\njobs: [{runtime: python-eager, model_precision: fp8}]",
                          "jobs[0].model_precision: unknown value 'fp8'; allowed: fp32, fp16, bf16"),
    "unknown amp dtype": ("model: {name: tiny}\njobs: [{runtime: python-eager, amp_dtype: int8}]",
                          "jobs[0].amp_dtype: unknown value 'int8'; allowed: fp32, fp16, bf16"),
    "key not for runtime": ("model: {name: tiny}\njobs: [{runtime: python-eager, enabled_precisions: [fp32]}]",
                            "jobs[0].enabled_precisions: does not apply to runtime python-eager"),
    "empty axis": ("model: {name: tiny}\njobs: [{runtime: python-eager, amp_dtype: []}]",
                   "jobs[0].amp_dtype: is an empty list"),
    "both name and factory": ("model: {name: tiny, factory: 'fault_models:small'}\njobs: [{runtime: python-eager}]",
                              "model: needs exactly one of name, factory, torchscript, exported"),
    "neither name nor factory": ("model: {input_shape: [1]}\njobs: [{runtime: python-eager}]",
                                 "model: needs exactly one of"),
    "factory not importable": ("model: {factory: 'no_such_module:build', input_shape: [1]}\n"
                               "jobs: [{runtime: python-eager}]", "model.factory: cannot import no_such_module:build"),
    "factory attr missing": ("model: {factory: 'fault_models:nope', input_shape: [1]}\n"
                             "jobs: [{runtime: python-eager}]", "model.factory: cannot import fault_models:nope"),
    "unknown builtin": ("model: {name: resnet9000}\njobs: [{runtime: python-eager}]",
                        "model.name: unknown model 'resnet9000'; built-in: tiny"),
    "zero iters": ("model: {name: tiny}\nmeasure: {iters: 0}\njobs: [{runtime: python-eager}]",
                   "measure.iters: must be an integer >= 1"),
    "negative warmup": ("model: {name: tiny}\nmeasure: {warmup: -1}\njobs: [{runtime: python-eager}]",
                        "measure.warmup: must be an integer >= 1"),
    "zero timeout": ("model: {name: tiny}\njobs: [{runtime: python-eager, measure: {timeout_s: 0}}]",
                     "jobs[0].measure.timeout_s: must be a number > 0"),
    "exclude unknown key": ("model: {name: tiny}\njobs: [{runtime: python-eager, exclude: [{amp: fp16}]}]",
                            "jobs[0].exclude[0].amp: unknown key"),
    "bad device": ("model: {name: tiny}\ndevice: tpu\njobs: [{runtime: python-eager}]",
                   "device: unknown device 'tpu'; allowed: cpu, cuda, cuda:N"),
    "no jobs": ("model: {name: tiny}\njobs: []", "jobs: must be a non-empty list"),
    "missing torchscript": ("model: {torchscript: nope.ts, input_shape: [1]}\njobs: [{runtime: python-eager}]",
                            "model.torchscript: file not found"),
    "exclude bad value": ("model: {name: tiny}\njobs: [{runtime: python-eager, exclude: [{amp_dtype: fp61}]}]",
                          "jobs[0].exclude[0].amp_dtype: unknown value 'fp61'"),
    "options not json": ("model: {name: tiny, options: {width: 2026-01-01}}\njobs: [{runtime: python-eager}]",
                         "model.options: values must be numbers, strings"),
    "bad shape": ("model: {name: tiny, input_shape: [1, 0]}\njobs: [{runtime: python-eager}]",
                  "model.input_shape: a shape is a non-empty list of positive integers"),
}


CUDA_ONLY = "jobs: [{runtime: python-eager, device: cpu, %s}]"
NEW_KEYS_BAD = {  # the keys of processes, memory limits, CUDA graphs, TF32 and fidelity
    "processes zero": ("measure: {processes: 0}\njobs: [{runtime: python-eager}]",
                       "measure.processes: must be an integer >= 1, got 0"),
    "processes text": ("jobs: [{runtime: python-eager, measure: {processes: many}}]",
                       "jobs[0].measure.processes: must be an integer >= 1, got 'many'"),
    "memory limit zero": ("measure: {memory_limit_gb: 0}\njobs: [{runtime: python-eager}]",
                          "measure.memory_limit_gb: must be a number > 0, got 0"),
    "memory limit text": ("measure: {memory_limit_gb: lots}\njobs: [{runtime: python-eager}]",
                          "measure.memory_limit_gb: must be a number > 0, got 'lots'"),
    "cuda_graphs value": ("jobs: [{runtime: python-eager, device: cuda, cuda_graphs: maybe}]",
                          "jobs[0].cuda_graphs: unknown value 'maybe'; allowed: off, on"),
    "cuda_graphs on cpu": (CUDA_ONLY % "cuda_graphs: [off, on]",
                           "jobs[0].cuda_graphs: on needs a CUDA device, got device cpu; allowed on cpu: off"),
    "cuda_graphs runtime": ("jobs: [{runtime: python-inductor, device: cuda, cuda_graphs: on}]",
                            "jobs[0].cuda_graphs: does not apply to runtime python-inductor; it applies to: "
                            "python-eager, python-aoti, cpp-torchscript, cpp-aoti"),
    "tf32 value": ("jobs: [{runtime: python-eager, device: cuda, tf32: high}]",
                   "jobs[0].tf32: unknown value 'high'; allowed: on, off"),
    "tf32 on cpu": (CUDA_ONLY % "tf32: off",
                    "jobs[0].tf32: applies to CUDA devices only, got device cpu; allowed: on, off with device cuda"),
    "tf32 trt": ("jobs: [{runtime: cpp-trt, device: cuda, tf32: on}]",
                 "jobs[0].tf32: does not apply to runtime cpp-trt; it applies to: python-eager, python-inductor, "
                 "python-aoti, cpp-torchscript, cpp-aoti"),
    "exclude cuda_graphs": ("jobs: [{runtime: python-eager, exclude: [{cuda_graphs: sometimes}]}]",
                            "jobs[0].exclude[0].cuda_graphs: unknown value 'sometimes'; allowed: off, on"),
    "exclude tf32": ("jobs: [{runtime: python-eager, exclude: [{tf32: tf16}]}]",
                     "jobs[0].exclude[0].tf32: unknown value 'tf16'; allowed: on, off"),
    "fidelity not a mapping": ("fidelity: strict\njobs: [{runtime: python-eager}]",
                               "fidelity: must be a mapping, got str"),
    "fidelity key": ("jobs: [{runtime: python-eager, fidelity: {tolerence: {fp16: 0.1}}}]",
                     "jobs[0].fidelity.tolerence: unknown key; allowed: tolerance, measure, outputs"),
    "tolerance precision": ("fidelity: {tolerance: {fp8: 0.1}}\njobs: [{runtime: python-eager}]",
                            "fidelity.tolerance.fp8: unknown key; allowed: fp32, tf32, fp16, bf16"),
    "tolerance negative": ("fidelity: {tolerance: {fp16: -0.1}}\njobs: [{runtime: python-eager}]",
                           "fidelity.tolerance.fp16: must be a number > 0 (the largest relative error that passes), "
                           "got -0.1"),
    "tolerance text": ("fidelity: {tolerance: {bf16: loose}}\njobs: [{runtime: python-eager}]",
                       "fidelity.tolerance.bf16: must be a number > 0"),
    "tolerance not a mapping": ("fidelity: {tolerance: 0.1}\njobs: [{runtime: python-eager}]",
                                "fidelity.tolerance: must be a mapping, got float"),
    "fidelity measure": ("fidelity: {measure: l2}\njobs: [{runtime: python-eager}]",
                         "fidelity.measure: unknown value 'l2'; allowed: elementwise, sorted"),
    "outputs empty": ("fidelity: {outputs: []}\njobs: [{runtime: python-eager}]",
                      "fidelity.outputs: must be a non-empty list of distinct output indices >= 0"),
    "outputs negative": ("fidelity: {outputs: [-1]}\njobs: [{runtime: python-eager}]",
                         "fidelity.outputs: must be a non-empty list of distinct output indices >= 0"),
    "outputs repeated": ("jobs: [{runtime: python-eager, fidelity: {outputs: [3, 3]}}]",
                         "jobs[0].fidelity.outputs: must be a non-empty list of distinct output indices >= 0"),
    "outputs scalar": ("fidelity: {outputs: 3}\njobs: [{runtime: python-eager}]",
                       "fidelity.outputs: must be a non-empty list"),
}
BAD.update({case: ("model: {name: tiny}\n" + text, expected) for case, (text, expected) in NEW_KEYS_BAD.items()})


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_matrix_is_one_line_exit_2_nothing_written(case: str, write_matrix, cli, tmp_path: Path) -> None:
    text, expected = BAD[case]
    path = write_matrix(text)
    with pytest.raises(MatrixError) as info:
        load(path)
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    results, artifacts = tmp_path / "results", tmp_path / "artifacts"
    res = cli.invoke(app, ["run", str(path), "--results", str(results), "--artifacts", str(artifacts)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.output
    assert not results.exists() and not artifacts.exists()


def test_plan_json_lists_jobs_with_keys(write_matrix, cli) -> None:
    path = write_matrix(GOOD)
    res = cli.invoke(app, ["plan", str(path), "--json"])
    assert res.exit_code == 0, res.output
    jobs = json.loads(res.stdout)
    assert [j["amp_dtype"] for j in jobs] == ["fp16", "bf16", "fp32"]
    assert all(len(j["job_key"]) == 20 for j in jobs)
    assert jobs[0]["job_key"] == load(path).jobs[0].key


def test_shipped_matrices_validate() -> None:
    root = Path(__file__).resolve().parent.parent / "matrices"
    for path in sorted(root.glob("*.yaml")):
        assert load(path).jobs, path


def test_exclude_drops_what_one_runtime_cannot_do(write_matrix) -> None:
    m = load(write_matrix("""
        model: {name: tiny}
        jobs:
          - runtime: [python-eager, python-inductor]
            model_precision: [fp32, fp32+fp16]
            exclude:
              - {runtime: python-eager, model_precision: fp32+fp16}
    """))
    assert [(j.runtime, j.model_precision) for j in m.jobs] == [
        ("python-eager", "fp32"), ("python-inductor", "fp32"), ("python-inductor", "fp32+fp16")]


def test_editing_a_factory_changes_the_key(write_matrix, matrix_dir: Path) -> None:
    text = "model: {factory: 'user_model:build', input_shape: [2, 8]}\njobs: [{runtime: python-eager}]\n"
    src = matrix_dir / "user_model.py"
    src.write_text("import torch\ndef build():\n    return torch.nn.Linear(8, 4)\n")
    k1 = load(write_matrix(text)).jobs[0].key
    assert load(write_matrix(text)).jobs[0].key == k1
    src.write_text("import torch\ndef build():\n    return torch.nn.Linear(8, 3)\n")
    assert load(write_matrix(text)).jobs[0].key != k1
