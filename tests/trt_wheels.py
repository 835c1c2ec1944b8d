"""Fetch torch-tensorrt wheels into a local cache and read their API facts without importing them.

Used by tests/test_trt_wheels.py (the contract tests) and, by hand, to write a new entry of
sweep/trt_api.py's RELEASES: `python tests/trt_wheels.py 2.15.0` prints the entry read from that wheel.
Nothing here imports torch_tensorrt: Python sources are read with `ast`, the package metadata as text,
and the runtime library's dynamic section with `readelf -d`.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
# Survives between test runs on one machine; gitignored. SWEEP_TRT_WHEELS points elsewhere (e.g. a shared cache).
CACHE = Path(os.environ.get("SWEEP_TRT_WHEELS", ROOT / ".cache" / "torch-tensorrt-wheels"))
PYTHON_TAG, PLATFORM = "3.12", "manylinux_2_28_x86_64"  # the GPU machine's Python; PyPI's Linux wheels
RUNTIME_LIB = "torch_tensorrt/lib/libtorchtrt_runtime.so"
# Files read from each wheel: every Python source of the package, its metadata and the C++ runtime.
NETWORK_ERRORS = ("Retrying", "NewConnectionError", "ConnectionError", "Failed to establish", "Name or service",
                  "Temporary failure in name resolution", "Network is unreachable", "timed out", "ProxyError",
                  "SSLError", "No route to host", "Could not fetch URL")


class RegistryUnreachable(RuntimeError):
    """pip could not reach the package index at all (not: the index has no such version)."""


# --------------------------------------------------------------------------------------------------
# download + unpack


def _download(version: str, dest: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           PYTHON_TAG, "--platform", PLATFORM, "--retries", "1", "--timeout", "20", "--disable-pip-version-check",
           "-d", str(dest), f"torch-tensorrt=={version}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _valid_wheel(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return RUNTIME_LIB in zf.namelist() or any(n.endswith("/METADATA") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def wheel_path(version: str) -> Path | None:
    found = sorted(CACHE.glob(f"torch_tensorrt-{version}-*.whl"))
    return found[0] if found and _valid_wheel(found[0]) else None


def fetch(versions: list[str]) -> dict[str, Path]:
    """The wheel of each version, downloaded (in parallel, atomically) only when not in the cache already."""
    CACHE.mkdir(parents=True, exist_ok=True)
    missing = [v for v in versions if wheel_path(v) is None]
    procs = {}
    tmps = {}
    for version in missing:
        tmps[version] = Path(tempfile.mkdtemp(prefix=f".dl-{version}-", dir=CACHE))
        procs[version] = _download(version, tmps[version])
    failures = {}
    for version, proc in procs.items():
        output, _ = proc.communicate(timeout=300)
        wheels = list(tmps[version].glob("*.whl"))
        if proc.returncode == 0 and len(wheels) == 1:
            wheels[0].replace(CACHE / wheels[0].name)  # same filesystem: atomic
        else:
            failures[version] = output.strip().splitlines()[-3:] if output.strip() else [f"exit {proc.returncode}"]
        shutil.rmtree(tmps[version], ignore_errors=True)
    if failures:
        text = " | ".join(f"{v}: {' / '.join(lines)}" for v, lines in failures.items())
        everything_failed = len(failures) == len(versions)
        markers = [m for m in NETWORK_ERRORS if m in text]
        if everything_failed and markers:
            raise RegistryUnreachable(f"pip download of torch-tensorrt=={versions[0]} and the rest failed with "
                                      f"{', '.join(markers)}")
        raise RuntimeError(f"pip download of torch-tensorrt failed: {text}")
    return {v: p for v in versions if (p := wheel_path(v)) is not None}


def unpack(wheel: Path) -> Path:
    """The wheel's Python sources, metadata and runtime library under CACHE/<wheel stem>/ (once)."""
    out = CACHE / wheel.stem
    done = out / ".unpacked"
    if done.exists():
        return out
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=CACHE))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        wanted = [n for n in names if n.endswith(".py") or n.endswith(".dist-info/METADATA") or n == RUNTIME_LIB]
        zf.extractall(tmp, members=wanted)
    (tmp / "files.txt").write_text("\n".join(names) + "\n")
    (tmp / ".unpacked").write_text("")
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


# --------------------------------------------------------------------------------------------------
# reading one unpacked wheel


@dataclass
class Wheel:
    """One unpacked wheel, its parsed sources kept once read."""

    root: Path
    trees: dict[str, ast.Module] = field(default_factory=dict)

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def tree(self, rel: str) -> ast.Module:
        if rel not in self.trees:
            self.trees[rel] = ast.parse(self.text(rel), filename=rel)
        return self.trees[rel]

    def files(self) -> list[str]:
        return self.text("files.txt").split()

    def function(self, rel: str, name: str) -> ast.FunctionDef:
        for node in self.tree(rel).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return node
        raise LookupError(f"no top-level def {name} in {rel}")

    def metadata(self) -> str:
        (meta,) = [n for n in self.files() if n.endswith(".dist-info/METADATA")]
        return self.text(meta)

    def requires(self) -> list[Requirement]:
        return [Requirement(line.split(":", 1)[1].strip()) for line in self.metadata().splitlines()
                if line.startswith("Requires-Dist:")]

    def module_constants(self, rel: str) -> dict[str, Any]:
        """NAME = <literal> assignments at module level (literal_eval'able ones; sets of dtype.x as names)."""
        out: dict[str, Any] = {}
        for node in self.tree(rel).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                out[node.targets[0].id] = _literal(node.value)
        return out


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Set):  # {dtype.f32}: keep the attribute names
        return tuple(sorted(ast.unparse(e) for e in node.elts))
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def parameters(fn: ast.FunctionDef) -> tuple[list[str], dict[str, ast.expr | None], bool]:
    """(positional names, every named parameter -> default node (None: required), has **kwargs)."""
    args = fn.args
    positional = [a.arg for a in args.posonlyargs + args.args]
    defaults: dict[str, ast.expr | None] = dict.fromkeys(positional)
    for a, d in zip(reversed(args.posonlyargs + args.args), reversed(args.defaults), strict=False):
        defaults[a.arg] = d
    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        defaults[a.arg] = d
    return positional, defaults, args.kwarg is not None


def dict_keys_in(fn: ast.FunctionDef) -> set[str]:
    """String keys of dict literals in a function body (compile() builds its settings from one)."""
    return {k.value for node in ast.walk(fn) if isinstance(node, ast.Dict)
            for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}


def names_read_in(fn: ast.FunctionDef) -> set[str]:
    return {n.id for stmt in fn.body for n in ast.walk(stmt) if isinstance(n, ast.Name)}


def dataclass_fields(tree: ast.Module, cls: str) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    raise LookupError(f"no class {cls}")


def call_names(fn: ast.FunctionDef) -> list[str]:
    """Dotted names of functions called (or passed on, as in function_overload_with_kwargs(torch.export.load))."""
    found = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute):
            text = ast.unparse(node)
            if text in ("torch.jit.load", "torch.export.load") and text not in found:
                found.append(text)
    return found


def builder_flags(tree: ast.Module) -> tuple[str, ...]:
    """Low precisions whose builder flag the interpreter sets from enabled_precisions when not use_explicit_typing."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.If) and "use_explicit_typing" in ast.unparse(node.test)
                and ast.unparse(node.test).strip().startswith("not ")):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.If) and "enabled_precisions" in ast.unparse(inner.test):
                for call in ast.walk(inner):
                    if isinstance(call, ast.Call) and ast.unparse(call.func).endswith("set_flag") and call.args:
                        flag = ast.unparse(call.args[0])
                        if flag == "trt.BuilderFlag.FP16":
                            found.add("fp16")
                        elif flag == "trt.BuilderFlag.BF16":
                            found.add("bf16")
    return tuple(sorted(found))


def readelf_needed(lib: Path) -> list[str]:
    if shutil.which("readelf") is None:
        raise RuntimeError("readelf not found: install binutils (it comes with gcc) to read the runtime's NEEDED list")
    out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


SYSTEM_LIBS = re.compile(r"^(libtorch|libc10|libc\.|libstdc\+\+|libgcc_s|libpthread|libm\.|libdl\.|librt\.)")
USED_COMPILE_KEYWORDS = ("inputs", "arg_inputs", "enabled_precisions", "use_explicit_typing", "enable_autocast",
                         "autocast_low_precision_type")
USED_SAVE_KEYWORDS = ("output_format", "inputs", "arg_inputs", "retrace")
COMPILER = "torch_tensorrt/dynamo/_compiler.py"
DEFAULTS = "torch_tensorrt/dynamo/_defaults.py"
SETTINGS = "torch_tensorrt/dynamo/_settings.py"
INTERPRETER = "torch_tensorrt/dynamo/conversion/_TRTInterpreter.py"
AUTOCAST_PASS = "torch_tensorrt/dynamo/lowering/passes/rule_based_autocast.py"
SAVE_LOAD = "torch_tensorrt/_compile.py"
VERSION_FILE = "torch_tensorrt/_version.py"


def compile_keywords(w: Wheel) -> tuple[str, ...]:
    """Keywords sweep may pass that this compile() takes by name AND uses (not swallowed by **kwargs, not dropped).

    Used: put into the CompilationSettings dict compile() builds (or, for the inputs, read in its body) and,
    for settings, a field of CompilationSettings.
    """
    fn = w.function(COMPILER, "compile")
    _, named, _ = parameters(fn)
    keys = dict_keys_in(fn)
    read = names_read_in(fn)
    fields = dataclass_fields(w.tree(SETTINGS), "CompilationSettings")
    out = []
    for kw in USED_COMPILE_KEYWORDS:
        if kw not in named:
            continue
        if kw in ("inputs", "arg_inputs"):
            if kw in read:
                out.append(kw)
        elif kw in keys and kw in fields:
            out.append(kw)
    return tuple(out)


def read_release(root: Path) -> dict[str, Any]:
    """Every field of sweep.trt_api.TrtRelease, read from one unpacked wheel."""
    w = Wheel(root)
    consts = w.module_constants(DEFAULTS)
    version = w.module_constants(VERSION_FILE)
    reqs = w.requires()
    torch_req = [r for r in reqs if r.name == "torch" and not r.marker]
    trt_reqs = [r for r in reqs if r.name.startswith("tensorrt") and not r.marker]
    needed = readelf_needed(root / RUNTIME_LIB) if (root / RUNTIME_LIB).exists() else []
    save = w.function(SAVE_LOAD, "save")
    _, save_named, _ = parameters(save)
    formats: tuple[str, ...] = ()
    for node in ast.walk(save):
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "accepted_formats"):
            formats = tuple(sorted(ast.literal_eval(node.value)))
    retrace = save_named.get("retrace")
    load = w.function(SAVE_LOAD, "load")
    load_pos, load_named, _ = parameters(load)
    enabled_default = consts.get("ENABLED_PRECISIONS")
    autocast_reads = ast.unparse(w.tree(AUTOCAST_PASS)) if (root / AUTOCAST_PASS).exists() else ""
    return {
        "version": version["__version__"],
        "torch_requires": str(torch_req[0].specifier) if torch_req else "",
        "tensorrt_requires": tuple(f"{r.name}{r.specifier}" for r in trt_reqs),
        "runtime_lib": RUNTIME_LIB if RUNTIME_LIB in w.files() else "",
        "runtime_needs": tuple(n for n in needed if not SYSTEM_LIBS.match(n)),
        "built_with_tensorrt": version.get("__tensorrt_version__", ""),
        "built_with_cuda": version.get("__cuda_version__", ""),
        "compile_keywords": compile_keywords(w),
        "use_explicit_typing": consts.get("USE_EXPLICIT_TYPING"),
        "enable_autocast": consts.get("ENABLE_AUTOCAST"),
        "enabled_precisions": (tuple(_DTYPE_NAMES.get(d, d) for d in enabled_default)
                               if isinstance(enabled_default, tuple) else None),
        "builder_flags": builder_flags(w.tree(INTERPRETER)),
        "autocast_pass": ("settings.enable_autocast" in autocast_reads
                          and "settings.autocast_low_precision_type" in autocast_reads),
        "save_keywords": tuple(k for k in USED_SAVE_KEYWORDS if k in save_named),
        "save_formats": formats,
        "save_retrace_default": ast.literal_eval(retrace) if retrace is not None else None,
        "load_takes_path": bool(load_pos) and load_pos[0] == "file_path"
                           and all(d is not None for k, d in load_named.items() if k != "file_path"),
        "load_calls": tuple(call_names(load)),
    }


_DTYPE_NAMES = {"dtype.f32": "fp32", "dtype.float32": "fp32", "dtype.f16": "fp16", "dtype.half": "fp16",
                "dtype.bf16": "bf16"}


def main(argv: list[str]) -> None:
    """Print RELEASES entries (Python source) for the versions given, read from their wheels."""
    wheels = fetch(argv)
    for version in argv:
        facts = read_release(unpack(wheels[version]))
        body = ",\n".join(f"        {k}={v!r}" for k, v in facts.items())
        print(f"    TrtRelease(\n{body},\n    ),")


if __name__ == "__main__":
    main(sys.argv[1:] or ["2.14.0"])
