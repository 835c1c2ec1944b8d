"""Factories are read, never imported, by the orchestrator; the policy refuses the standard library and modules
that are neither beside the matrix nor installed, unless --allow-any-factory."""

from __future__ import annotations

import hashlib
import importlib.util
import textwrap
from pathlib import Path

import pytest

from sweep.cli import app
from sweep.factory import FactoryError, locate
from sweep.matrix import load

MATRIX = "model: {factory: '%s', input_shape: [2, 8]}\njobs: [{runtime: python-eager}]\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_module_beside_the_matrix_is_read_not_run(write_matrix, matrix_dir: Path) -> None:
    marker = matrix_dir / "imported"
    src = write(matrix_dir, "user_model.py", f"""
        open({str(marker)!r}, "w").close()   # importing this would leave a file
        import time
        time.sleep(3600)                     # and never return
        def build():
            return None
    """)
    job = load(write_matrix(MATRIX % "user_model:build")).jobs[0]
    assert not marker.exists()
    # the same content hash as when the factory was imported and its source file hashed: keys stay
    assert job.model.content_hash == hashlib.sha256(src.read_bytes()).hexdigest()[:16]


def test_package_init_is_not_executed(matrix_dir: Path) -> None:
    write(matrix_dir, "pkg/__init__.py", "raise SystemExit('a package __init__ ran')\n")
    write(matrix_dir, "pkg/nets/__init__.py", "raise SystemExit('a subpackage __init__ ran')\n")
    src = write(matrix_dir, "pkg/nets/small.py", "class Net:\n    pass\n")
    found = locate("pkg.nets.small:Net", matrix_dir)
    assert found.file == src.resolve() and found.origin == "matrix folder"


@pytest.mark.parametrize("source", [
    "from .impl import build\n",                       # re-exported
    "from impl import *\n",                            # may define anything: accepted
    "build = lambda: None\n",
    "try:\n    import fast as build\nexcept ImportError:\n    def build():\n        pass\n",
    "def __getattr__(name):\n    return None\n",
])
def test_names_bound_in_other_ways_are_found(matrix_dir: Path, source: str) -> None:
    write(matrix_dir, "lib/__init__.py", source)
    assert locate("lib:build", matrix_dir).origin == "matrix folder"


@pytest.mark.parametrize(("ref", "files", "expected"), [
    ("user_model:nope", {"user_model.py": "def build():\n    pass\nclass Net:\n    pass\n"},
     "defines no top-level nope; it defines: build, Net"),
    ("user_model:build", {"user_model.py": "def build(:\n"}, "user_model.py line 1: SyntaxError"),
    ("user_model.sub:build", {"user_model.py": "def build():\n    pass\n"}, "user_model is a module, not a package"),
    ("nsdir:build", {"nsdir/x.py": ""}, "nsdir is a folder without __init__.py"),
    ("nowhere:build", {}, "cannot import nowhere:build: no module nowhere in the matrix folder"),
    ("a..b:c", {}, "must look like 'package.module:function', got 'a..b:c'"),
    (".rel:build", {}, "must look like 'package.module:function'"),
    ("user_model:build:x", {}, "must look like 'package.module:function'"),
])
def test_unusable_factories_say_why(matrix_dir: Path, ref: str, files: dict[str, str], expected: str) -> None:
    for name, text in files.items():
        write(matrix_dir, name, text)
    with pytest.raises(FactoryError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        locate(ref, matrix_dir)


@pytest.mark.parametrize("ref", ["subprocess:getoutput", "os:system", "posix:system", "json.decoder:JSONDecoder"])
def test_standard_library_is_refused_unless_allowed(write_matrix, cli, tmp_path: Path, ref: str) -> None:
    path = write_matrix(MATRIX % ref)
    res = cli.invoke(app, ["run", str(path), "--results", str(tmp_path / "r"), "--artifacts", str(tmp_path / "a")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"model.factory: {ref} refused" in lines[0] and "--allow-any-factory" in lines[0]
    assert not (tmp_path / "r").exists()
    res = cli.invoke(app, ["plan", str(path), "--json", "--allow-any-factory"])
    assert res.exit_code == 0, res.output


def test_a_file_shadowing_the_standard_library_is_refused_too(matrix_dir: Path) -> None:
    write(matrix_dir, "code.py", "def build():\n    pass\n")  # a runner that imported `code` may get the stdlib's
    with pytest.raises(FactoryError, match="code is part of Python's standard library"):
        locate("code:build", matrix_dir)


def test_installed_packages_are_accepted() -> None:
    found = locate("yaml:safe_load", Path("/nonexistent-matrix-folder"))
    assert found.origin == "installed package" and found.file is not None and found.file.name == "__init__.py"


def test_modules_only_in_the_current_folder_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere, folder = tmp_path / "cwd", tmp_path / "matrix"
    folder.mkdir()
    write(elsewhere, "cwd_only_model.py", "def build():\n    pass\n")
    monkeypatch.chdir(elsewhere)
    monkeypatch.syspath_prepend(str(elsewhere))
    assert importlib.util.find_spec("cwd_only_model") is not None  # importable from here, by accident
    with pytest.raises(FactoryError, match="no module cwd_only_model in the matrix folder"):
        locate("cwd_only_model:build", folder)
    assert locate("cwd_only_model:build", elsewhere).origin == "matrix folder"  # beside its matrix: fine
