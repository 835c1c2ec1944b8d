"""Why does a traced TorchScript model fail CUDA-graph capture in sweep-bench, and which executor setting fixes it?

Mirrors native/src/graph.cpp in Python (the same TorchScript executor runs underneath): trace the model as
the compile step does, load it back, warm up on a side stream under inference mode, capture one forward,
replay. Each mode runs in a fresh process, since the executor's settings and caches are process-wide:

  default       the executor as sweep-bench runs it today
  no-optimize   torch::jit::setGraphExecutorOptimize(false): no profiling, no fusion, the graph as traced
  no-texpr      only the TensorExpr fuser off (its kernels are compiled at first use, maybe during capture)
  relaxed       the default executor, captured with capture_error_mode="relaxed"
  profiled-runs-0  the profiling executor told to profile no runs (optimise at once)
  sync-debug    no capture: one warmed-up forward with torch.cuda.set_sync_debug_mode("error"), which
                raises at the first operation that synchronizes with the host (the usual capture breaker)
(Visit E: the first five all failed with "operation failed due to a previous error during capture".)
(The legacy, non-profiling executor fails on the traced detector outside any capture: "mat1 and mat2 must
have the same dtype, but got Float and Half", visit C.)

    PYTHONPATH=. python3 bench/ts_graph_probe.py [--model dino-vitdet-tiny] [--precision fp16]
Prints one JSON line per mode: capture ok or its error, replay p50 and max |replay - eager|.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("default", "no-optimize", "no-texpr", "relaxed", "profiled-runs-0", "sync-debug")


def one(mode: str, model_name: str, precision: str, ts_path: Path, warmup: int) -> dict[str, object]:
    import torch

    if mode == "no-optimize":
        torch._C._set_graph_executor_optimize(False)  # torch::jit::setGraphExecutorOptimize(false) in C++
    elif mode == "no-texpr":
        torch._C._jit_set_texpr_fuser_enabled(False)
    elif mode == "profiled-runs-0":
        torch._C._jit_set_num_profiled_runs(0)
    from sweep.models import BUILTINS
    from sweep.models.build import draw_inputs

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    spec = BUILTINS[model_name]
    x = draw_inputs(spec.input_shapes(), *spec.input_range)[0].cuda().to(dtype)
    module = torch.jit.load(str(ts_path), map_location="cuda").eval()
    out: dict[str, object] = {"mode": mode, "model": model_name, "precision": precision}
    with torch.inference_mode():
        eager = [t.clone() for t in torch.utils._pytree.tree_flatten(module(x))[0] if isinstance(t, torch.Tensor)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                module(x)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        # the same forward once more, warmed up (the first call above ran before the executor optimised)
        warm = [t.clone() for t in torch.utils._pytree.tree_flatten(module(x))[0] if isinstance(t, torch.Tensor)]
        out["first_vs_warm_max_abs"] = [round(float((a.float() - b.float()).abs().max()), 5)
                                        for a, b in zip(eager, warm, strict=True)]
        eager = warm
        if mode == "sync-debug":
            torch.cuda.set_sync_debug_mode("error")
            try:
                module(x)
                out["sync"] = "no synchronizing operation"
            except Exception as exc:
                out["sync"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
                out["error_full"] = str(exc)[-3000:]
            torch.cuda.set_sync_debug_mode("default")
            return out
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="relaxed" if mode == "relaxed" else "global"):
                static = module(x)
        except Exception as exc:
            out["capture"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"
            out["error_full"] = str(exc)[-3000:]
            return out
        out["capture"] = "ok"
        times = []
        for _ in range(100):
            t0 = time.perf_counter()
            graph.replay()
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
        replayed = [t for t in torch.utils._pytree.tree_flatten(static)[0] if isinstance(t, torch.Tensor)]
        out["replay_p50_ms"] = round(statistics.median(times), 3)
        out["replay_vs_warm_max_abs"] = [round(float((a.float() - b.float()).abs().max()), 5) for a, b in
                                         zip(replayed, eager, strict=True)]
        times = []
        for _ in range(100):
            t0 = time.perf_counter()
            module(x)
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
        out["eager_ts_p50_ms"] = round(statistics.median(times), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dino-vitdet-tiny")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--ts", type=Path)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of the modes")
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(one(args.mode, args.model, args.precision, args.ts, args.warmup)), flush=True)
        return
    import torch

    from sweep.models import BUILTINS
    from sweep.models.build import build_builtin, draw_inputs

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.precision]
    spec = BUILTINS[args.model]
    torch.manual_seed(0)
    model = build_builtin(args.model).eval().cuda().to(dtype)
    x = draw_inputs(spec.input_shapes(), *spec.input_range)[0].cuda().to(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        ts_path = Path(tmp) / "model.ts"
        with torch.no_grad():
            traced = torch.jit.trace(model, (x,), check_trace=False)  # as runners/compile.py traces
        torch.jit.save(traced, str(ts_path))
        del traced, model
        for mode in args.modes.split(","):
            proc = subprocess.run([sys.executable, __file__, "--mode", mode, "--model", args.model, "--precision",
                                   args.precision, "--ts", str(ts_path), "--warmup", str(args.warmup)],
                                  capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            print(lines[-1] if lines else json.dumps({"mode": mode, "rc": proc.returncode,
                                                       "stderr": proc.stderr[-600:]}), flush=True)


if __name__ == "__main__":
    main()
