"""The orchestrator's planning path imports neither torch nor pandas nor the user's model code, and the
`sweep` package never imports `runners` (a fresh interpreter's sys.modules is the witness)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sweep.paths import PROJECT_ROOT, runner_env

HEAVY = ("torch", "pandas", "pyarrow", "numpy")


def modules_after(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    """Run `sweep ARGS` in a fresh interpreter; its exit code and every module it had imported by the end."""
    code = textwrap.dedent("""
        import json, sys
        from sweep.cli import app
        try:
            app(sys.argv[2:])
        except SystemExit as exc:
            code = exc.code or 0
        with open(sys.argv[1], "w") as fh:
            json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
    """)
    out = cwd / "modules.json"
    subprocess.run([sys.executable, "-c", code, str(out), *args], cwd=cwd, env={**os.environ, **runner_env()},
                   stdout=subprocess.DEVNULL, check=True, timeout=120)
    data = json.loads(out.read_text())
    return data["code"], set(data["modules"])


def test_plan_imports_no_torch_pandas_or_user_code(tmp_path: Path) -> None:
    (tmp_path / "user_model.py").write_text("import torch\nopen('imported', 'w').close()\ndef build():\n    pass\n")
    (tmp_path / "m.yaml").write_text(textwrap.dedent("""
        model: {name: dino-vitdet-tiny, options: {num_queries: 32}}
        jobs:
          - runtime: [python-eager, python-aoti, cpp-trt]
            exclude: [{runtime: cpp-trt}]
          - runtime: python-eager
            model: {factory: "user_model:build", input_shape: [2, 8]}
    """))
    for matrix in (tmp_path / "m.yaml", PROJECT_ROOT / "matrices" / "cpu.yaml"):
        code, modules = modules_after(["plan", str(matrix)], tmp_path)
        assert code == 0
        heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
        assert not heavy, heavy
        assert "user_model" not in modules and not (tmp_path / "imported").exists()
        assert not [m for m in modules if m.split(".")[0] == "runners"]
        assert "sweep.models.build" not in modules


def test_sweep_never_imports_runners() -> None:
    import ast

    for source in (PROJECT_ROOT / "sweep").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] == "runners"], source
