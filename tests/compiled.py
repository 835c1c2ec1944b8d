"""The session's compiled variants: one `sweep compile` of MATRIX, shared by the compile, model and detector tests.

AOTInductor builds are the slowest thing the suite does (the tiny detector's takes minutes on two cores), so
each variant is built once per test session by the real compile step, into one artifacts folder, and every
test that needs it (tests/test_compile.py, test_models.py's AOTInductor check, test_detector_e2e.py) reuses
it through the `compiled` fixture of conftest.py.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

FIXTURES = Path(__file__).parent / "fixtures"

MATRIX = """
name: compiled
model: {name: tiny}
device: cpu
measure: {warmup: 2, iters: 5, timeout_s: 1800, seed: 0}
jobs:
  - runtime: python-aoti
  - runtime: cpp-torchscript
    model_precision: [fp32, fp32+bf16]
  - runtime: [python-trt, cpp-trt]
    model_precision: fp32+fp16
    enabled_precisions: fp32+bf16+fp16
  - runtime: [python-aoti, cpp-aoti]
    model: {factory: "export_models:data_dependent", input_shape: [2, 8]}
  - runtime: [python-aoti, cpp-aoti]
    model: {name: dino-vitdet-tiny}
"""


def write(folder: Path, text: str, name: str) -> Path:
    """A matrix file in `folder`, beside the fixture model factories it may name."""
    folder.mkdir(parents=True, exist_ok=True)
    for fixture in ("export_models.py", "fault_models.py"):
        shutil.copy(FIXTURES / fixture, folder / fixture)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def compile_json(args: list[str]) -> tuple[int, list[dict[str, Any]], float]:
    from sweep.cli import app

    t0 = time.perf_counter()
    res = CliRunner().invoke(app, ["compile", *args, "--json"])
    return res.exit_code, json.loads(res.stdout), time.perf_counter() - t0


def build(root: Path) -> dict[str, Any]:
    """`sweep compile` of MATRIX twice into root/artifacts: the first builds, the second must find it all cached."""
    from sweep import compile as compile_step

    matrix = write(root / "m", MATRIX, "m.yaml")
    art = root / "artifacts"
    compile_step.forget()
    code1, first, t1 = compile_json([str(matrix), "--artifacts", str(art)])
    folders = sorted(p.name for p in art.iterdir()) if art.exists() else []
    code2, second, t2 = compile_json([str(matrix), "--artifacts", str(art)])
    return {"root": root, "matrix": matrix, "art": art, "first": (code1, first, t1), "second": (code2, second, t2),
            "folders": folders}


def by_key(results: list[dict[str, Any]], backend: str, model: str, precision: str) -> dict[str, Any]:
    hits = [r for r in results if (r["backend"], r["model"], r["model_precision"]) == (backend, model, precision)]
    assert len(hits) == 1, results
    return hits[0]


def package(compiled: dict[str, Any], model: str, precision: str = "fp32") -> Path:
    """The AOTInductor package the session built for `model`."""
    entry = by_key(compiled["first"][1], "aoti", model, precision)
    assert entry["status"] == "built", entry
    return Path(compiled["art"]) / entry["key"] / "model.pt2"
