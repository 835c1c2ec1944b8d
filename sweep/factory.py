"""Model factories ("package.module:function") vetted without running them: find the module's file, check that
it defines the function, hash it, and refuse what a matrix has no business naming.

The orchestrator never imports user code: a model that crashes or hangs at import must cost one job, not
the sweep. A factory may come from the matrix's folder or from an installed (non-standard-library) package;
`subprocess:getoutput` and the like are refused unless the user says `--allow-any-factory`. This is a
guard against mistakes and surprises, not a sandbox: matrix and model files are trusted code (SECURITY.md).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import reprlib
import sys
import sysconfig
from dataclasses import dataclass
from importlib.machinery import PathFinder
from pathlib import Path

REF_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
STDLIB_NAMES = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)
MAX_SOURCE_BYTES = 16 * 2**20  # a module file this large is not a model definition we should parse


class FactoryError(ValueError):
    """Why a factory reference cannot be used; the matrix names the file and key around it."""


@dataclass(frozen=True)
class Factory:
    """Where a factory's code lives and what it hashes to (an edited file is a new model)."""

    ref: str
    file: Path | None  # None only for a built-in module, reachable with --allow-any-factory alone
    origin: str  # "matrix folder" | "installed package" | "standard library"
    content_hash: str


def _stdlib_dirs() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    return tuple(Path(paths[key]).resolve() for key in ("stdlib", "platstdlib") if key in paths)


def _under(file: Path, folder: Path) -> bool:
    return file == folder or folder in file.parents


def _search_path(root: Path) -> list[str]:
    """The matrix folder, then the interpreter's path without the current folder: a runner puts the matrix
    folder first too, and a module that is only importable from wherever `sweep` happens to be started
    is neither beside the matrix nor installed."""
    cwd = os.path.realpath(os.getcwd())
    rest = [p for p in sys.path if p and os.path.realpath(p) != cwd and os.path.realpath(p) != str(root)]
    return [str(root), *rest]


def _binds(statements: list[ast.stmt], name: str) -> bool | None:
    """Whether top-level code binds `name` (def, class, assignment, import); None when it may bind names no
    reader can see (a star import, a module __getattr__)."""
    unknown = False
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return True
            unknown |= isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name) and leaf.id == name:
                        return True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    unknown = True
                elif (alias.asname or alias.name.split(".")[0]) == name:
                    return True
        elif isinstance(node, (ast.If, ast.Try, ast.With)) or type(node).__name__ == "TryStar":
            blocks = [getattr(node, attr, []) for attr in ("body", "orelse", "finalbody")]
            blocks += [handler.body for handler in getattr(node, "handlers", [])]
            for block in blocks:
                found = _binds(block, name)
                if found:
                    return True
                unknown |= found is None
    return None if unknown else False


def _defined_names(tree: ast.Module) -> list[str]:
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]
    return names[:12]


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def locate(ref: str, root: Path, allow_any: bool = False) -> Factory:
    """Resolve a factory reference to its source file without executing any of it (no package __init__ runs:
    each level is looked up with PathFinder in its parent's folders)."""
    if not REF_RE.match(ref):
        raise FactoryError(f"must look like 'package.module:function', got {reprlib.repr(ref)}")
    module, _, attr = ref.partition(":")
    parts = module.split(".")
    top = parts[0]
    root = root.resolve()
    if top in STDLIB_NAMES and not allow_any:
        raise FactoryError(f"{ref} refused: {top} is part of Python's standard library, not a model; a factory must "
                           f"come from the matrix folder or an installed package (--allow-any-factory lifts this)")
    if top in sys.builtin_module_names:  # compiled into the interpreter: there is no file to read
        return Factory(ref, None, "standard library", _hash(ref.encode()))
    search = _search_path(root)
    spec = None
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        spec = PathFinder.find_spec(name, search)
        if spec is None:
            where = f"the matrix folder ({root}) or the installed packages" if i == 0 else f"package {parts[i - 1]}"
            raise FactoryError(f"cannot import {ref}: no module {name} in {where}")
        if i < len(parts) - 1:
            if not spec.submodule_search_locations:
                raise FactoryError(f"cannot import {ref}: {name} is a module, not a package")
            search = list(spec.submodule_search_locations)
    assert spec is not None
    if not spec.origin or not spec.has_location:
        raise FactoryError(f"cannot import {ref}: {module} is a folder without __init__.py, not a module")
    file = Path(spec.origin).resolve()
    if _under(file, root):
        origin = "matrix folder"
    elif (any(_under(file, d) for d in _stdlib_dirs())
          and not any(part in ("site-packages", "dist-packages") for part in file.parts)):
        origin = "standard library"  # a file of the standard library under a name it does not list
    else:
        origin = "installed package"
    if origin == "standard library" and not allow_any:
        raise FactoryError(f"{ref} refused: {file} is part of Python's standard library, not a model "
                           f"(--allow-any-factory lifts this)")
    try:
        size = file.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise FactoryError(f"{file} is {size} bytes; a factory module is at most {MAX_SOURCE_BYTES} bytes")
        data = file.read_bytes()
    except OSError as exc:
        raise FactoryError(f"cannot read {file}: {exc.strerror or exc}") from exc
    if file.suffix == ".py":
        try:
            tree = ast.parse(data, filename=str(file))
        except SyntaxError as exc:
            raise FactoryError(f"{file} line {exc.lineno}: SyntaxError: {exc.msg}") from exc
        except (ValueError, RecursionError, MemoryError) as exc:
            raise FactoryError(f"{file} cannot be parsed: {type(exc).__name__}") from exc
        found = _binds(tree.body, attr)
        if found is False:
            names = ", ".join(_defined_names(tree)) or "nothing public"
            raise FactoryError(f"cannot import {ref}: {file} defines no top-level {attr}; it defines: {names}")
    return Factory(ref, file, origin, _hash(data))
