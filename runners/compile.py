"""The compile step: build one variant (AOTInductor package, traced TorchScript, TensorRT engine) into out_dir.

Same contract as the runners (job.json in, result.json out, logs on stderr), with three extra fields:
`backend` (aoti | torchscript | trt), `variant` (its identity, for the record) and `out_dir` (a temporary
folder the parent renames into the cache only if this process succeeds). The compile's wall time in ms
is the result's single sample.

Mixed precisions (fp32+fp16, fp32+bf16) are captured by wrapping the model in a module whose forward
enters torch.autocast: torch.export (non-strict, torch >= 2.5) ignores an autocast context around the
export call and would silently give an fp32 graph; inside forward it is recorded (as
`wrap_with_autocast` or explicit casts). Every build checks that the requested low precision really is
in the graph it produced, and fails rather than cache an fp32 artifact under a mixed-precision name.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from runners import common
from sweep import trt_api
from sweep.jobs import low_precision
from sweep.models.build import load_model

DTYPE_NAMES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


class Autocast(nn.Module):
    """The model under torch.autocast, inside forward, where export and tracing record the casts."""

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, *args: Any) -> Any:
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            return self.model(*args)


def prepare(job: dict[str, Any]) -> tuple[nn.Module, list[torch.Tensor]]:
    """The model and the contract's inputs as the variant's precision wants them, on the job's device."""
    device = job["device"]
    precision = job["model_precision"]
    model = load_model(job["model"], int(job["seed"]))
    model = model.to(device=device, dtype=common.weight_dtype(precision))
    inputs = common.to_device(common.make_inputs(job), precision, device)
    low = low_precision(precision)
    if low is not None and "+" in precision:  # fp32 weights, autocast to `low`
        model = Autocast(model, device.split(":")[0], common.DTYPES[low]).eval()
    return model, inputs


def graph_dtypes(ep: torch.export.ExportedProgram) -> set[str]:
    """Floating dtypes that appear anywhere in an exported graph, including autocast submodules."""
    found: set[str] = set()
    for module in ep.graph_module.modules():
        graph = getattr(module, "graph", None)
        if graph is None:
            continue
        for node in graph.nodes:
            vals = node.meta.get("val")
            for val in vals if isinstance(vals, (list, tuple)) else [vals]:
                if isinstance(val, torch.Tensor) and val.dtype in DTYPE_NAMES:
                    found.add(DTYPE_NAMES[val.dtype])
            if node.op == "call_function" and "autocast" in str(node.target):
                found.update(DTYPE_NAMES[a] for a in node.args if isinstance(a, torch.dtype) and a in DTYPE_NAMES)
    return found


def check_captured(precision: str, found: set[str], what: str) -> None:
    low = low_precision(precision)
    if low is not None and low not in found:
        raise RuntimeError(f"the {what} has no {low} operations (found {sorted(found)}): model_precision "
                           f"{precision} was not captured; refusing to cache it as {precision}")


def export(model: nn.Module, inputs: list[torch.Tensor], precision: str) -> torch.export.ExportedProgram:
    with torch.no_grad():
        ep = torch.export.export(model, tuple(inputs))
    check_captured(precision, graph_dtypes(ep), "exported graph")
    return ep


def build_aoti(job: dict[str, Any], out: Path) -> dict[str, Any]:
    model, inputs = prepare(job)
    ep = export(model, inputs, job["model_precision"])
    torch._inductor.aoti_compile_and_package(ep, package_path=str(out / "model.pt2"))
    return {"graph_dtypes": sorted(graph_dtypes(ep))}


def build_torchscript(job: dict[str, Any], out: Path) -> dict[str, Any]:
    model, inputs = prepare(job)
    with torch.no_grad():
        traced = torch.jit.trace(model, tuple(inputs), check_trace=False)
    graph = str(traced.inlined_graph)
    found = {name for dtype, name in (("Half(", "fp16"), ("BFloat16(", "bf16"), ("Float(", "fp32")) if dtype in graph}
    check_captured(job["model_precision"], found, "traced TorchScript graph")
    torch.jit.save(traced, str(out / "model.ts"))
    return {"graph_dtypes": sorted(found)}


def trt_kwargs(job: dict[str, Any], version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """sweep.trt_api's answer for the installed version: as dtype names (for the record) and with torch
    dtypes (for dynamo.compile)."""
    try:
        kwargs = trt_api.trt_compile_kwargs(version, job["model_precision"], tuple(job["enabled_precisions"]))
    except trt_api.TrtUnsupported as exc:
        raise common.Unsupported(exc.reason) from exc
    out = dict(kwargs)
    if "enabled_precisions" in out:
        out["enabled_precisions"] = {common.DTYPES[p] for p in out["enabled_precisions"]}
    if "autocast_low_precision_type" in out:
        out["autocast_low_precision_type"] = common.DTYPES[out["autocast_low_precision_type"]]
    return kwargs, out


def layer_precisions(gm: Any) -> dict[str, Any]:
    """The built engines' layer datatypes from TensorRT's engine inspector, where torch-tensorrt exposes it.

    `TorchTensorRTModule.get_layer_info()` returns the inspector's JSON; layer datatypes are only in it
    when the engine was built with detailed profiling verbosity, so an engine without them says so.
    """
    engines = []
    for name, module in getattr(gm, "named_modules", lambda: [])():
        getter = getattr(module, "get_layer_info", None)
        if getter is None:
            continue
        try:
            info = json.loads(getter())
        except Exception as exc:  # inspector missing, engine not set up, not JSON: record, never fail
            engines.append({"engine": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        layers = info.get("Layers", []) if isinstance(info, dict) else []
        counts: dict[str, int] = {}
        for layer in layers:
            if not isinstance(layer, dict):
                continue
            for out in layer.get("Outputs", []) or []:
                dtype = str(out.get("Format/Datatype", "?")) if isinstance(out, dict) else "?"
                counts[dtype] = counts.get(dtype, 0) + 1
        entry: dict[str, Any] = {"engine": name, "layers": len(layers), "output_datatypes": counts}
        if layers and not counts:
            entry["note"] = "engine built without detailed profiling verbosity: no per-layer datatypes"
        engines.append(entry)
    return {"engines": engines}


def check_keywords(compile_fn: Any, kwargs: dict[str, Any]) -> None:
    """Refuse keywords the installed compile() does not take by name: **kwargs would swallow them silently.

    The contract tests check the same against every release's wheel (tests/test_trt_wheels.py); this
    catches a build that differs from the wheel read (a dev or patch build of a checked minor release).
    """
    try:
        params = inspect.signature(compile_fn).parameters
    except (TypeError, ValueError):  # a C-implemented or wrapped callable without a signature: trust the table
        return
    named = {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    missing = sorted(set(kwargs) - named)
    if missing:
        raise common.Unsupported(f"the installed torch_tensorrt.dynamo.compile takes no {', '.join(missing)} "
                                 f"(it would ignore them and build a different engine than asked)")


def build_trt(job: dict[str, Any], out: Path) -> dict[str, Any]:
    torch_tensorrt = common.import_torch_tensorrt()
    version = str(getattr(torch_tensorrt, "__version__", ""))
    api, kwargs = trt_kwargs(job, version)
    if not job["device"].startswith("cuda"):
        raise common.Unsupported(f"TensorRT builds engines for CUDA devices only; the job asks for {job['device']}")
    common.check_device(job["device"])
    model, inputs = prepare(job)
    ep = export(model, inputs, job["model_precision"])
    print(f"compile: torch_tensorrt {version} ({trt_api.api_generation(version)} typing): dynamo.compile {api}",
          file=sys.stderr)
    check_keywords(torch_tensorrt.dynamo.compile, {"arg_inputs": inputs, **kwargs})
    gm = torch_tensorrt.dynamo.compile(ep, arg_inputs=inputs, **kwargs)
    # retrace is explicit: its default changed (False in 2.9, True from 2.10). False is the exporter that
    # rewrites the graph without running the engines again. The contract tests read these calls.
    torch_tensorrt.save(gm, str(out / "model.ep"), output_format="exported_program", arg_inputs=inputs,
                        retrace=False)
    torch_tensorrt.save(gm, str(out / "model.ts"), output_format="torchscript", arg_inputs=inputs, retrace=False)
    facts: dict[str, Any] = {
        "torch_tensorrt_version": version,
        "trt_api": trt_api.api_generation(version),
        "trt_release_checked": trt_api.release_for(version).version,
        "trt_compile_kwargs": api,
        "graph_dtypes": sorted(graph_dtypes(ep)),
    }
    try:
        facts["layer_precisions"] = layer_precisions(gm)
    except Exception as exc:  # the inspector is a nicety: never lose a built engine over it
        facts["layer_precisions"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return facts


BUILDERS = {"aoti": build_aoti, "torchscript": build_torchscript, "trt": build_trt}


def run(job: dict[str, Any]) -> dict[str, Any]:
    """Build the variant `job` describes into job["out_dir"]."""
    backend = job["backend"]
    if backend not in BUILDERS:
        raise ValueError(f"unknown compile backend {backend!r}; known: {', '.join(BUILDERS)}")
    out = Path(job["out_dir"])
    if not out.is_dir():
        raise FileNotFoundError(f"out_dir {out} does not exist")
    if backend != "trt":
        common.setup(job)  # device, and TF32 as the variant asks, before the model is built and compiled
    t0 = time.perf_counter()
    facts = BUILDERS[backend](job, out)
    compile_s = time.perf_counter() - t0
    print(f"compile: {backend} built in {compile_s:.1f} s into {out}", file=sys.stderr)
    return {"samples_ms": [compile_s * 1e3], "samples_cuda_ms": [], "compile_s": compile_s,
            "files": sorted(p.name for p in out.iterdir()), "extra": facts}


if __name__ == "__main__":
    common.main(run)
