"""Which way of loading an AOTInductor package works from Python here? Each loader in a fresh process.

    PYTHONPATH=. python3 bench/aoti_loaders.py ARTIFACTS_DIR      # every cached aoti variant under it

For every `model.pt2` of a variant folder (its manifest says the model, precision and input shapes),
each loader below runs in its own process under faulthandler: load, call once on the contract's
inputs, synchronize. One JSON line per (package, loader): exit code, seconds, the last lines of stderr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

LOADERS = {
    "aoti_load_package(device_index)": "torch._inductor.aoti_load_package(path, device_index=0)",
    "aoti_load_package()": "torch._inductor.aoti_load_package(path)",
    "aoti_load_package(single_threaded)": "torch._inductor.aoti_load_package(path, run_single_threaded=True)",
    "AOTIModelPackageLoader": "torch._inductor.package.package.AOTICompiledModel("
                              "torch._C._aoti.AOTIModelPackageLoader(path, 'model', False, 1, 0))",
    "set_device+aoti_load_package": "(torch.cuda.set_device(0), torch._inductor.aoti_load_package(path, "
                                    "device_index=0))[1]",
}

CHILD = """
import faulthandler, sys, time, torch
faulthandler.enable()
path, shapes, dtype = sys.argv[1], {shapes}, getattr(torch, sys.argv[2])
t0 = time.perf_counter()
model = {loader}
xs = [torch.rand(s, dtype=torch.float32).mul(255).to('cuda', dtype) for s in shapes]
out = model(*xs)
torch.cuda.synchronize()
print('ok', round(time.perf_counter() - t0, 2), type(out).__name__, flush=True)
"""


def main() -> None:
    root = Path(sys.argv[1])
    for manifest_path in sorted(root.glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("backend") != "aoti":
            continue
        variant = manifest["variant"]
        shapes = variant["input_shapes"]
        precision = variant["model_precision"]
        dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(precision, "float32")
        package = manifest_path.parent / "model.pt2"
        for name, loader in LOADERS.items():
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", CHILD.format(shapes=shapes, loader=loader), str(package),
                                   dtype], capture_output=True, text=True, timeout=300)
            print(json.dumps({"model": variant["model"]["ref"], "precision": precision, "loader": name,
                              "rc": proc.returncode, "s": round(time.perf_counter() - t0, 1),
                              "stdout": proc.stdout.strip()[-200:], "stderr": proc.stderr.strip()[-1500:]}),
                  flush=True)


if __name__ == "__main__":
    main()
