"""Contract tests: sweep's TensorRT paths against the real torch-tensorrt wheels of every supported release.

The wheels are downloaded once into a gitignored cache (tests/trt_wheels.py) and read without importing
them: `ast` on the Python sources, the metadata as text, `readelf -d` on the runtime library. A new
release that breaks a keyword, a default, a save/load call or the runtime's TensorRT major fails here.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
import trt_wheels as tw

from sweep import matrix, trt_api
from sweep.doctor import trt_install
from sweep.jobs import PRECISIONS, TRT_PRECISIONS

ROOT = Path(__file__).resolve().parent.parent
CLAIMED = [(2, 9), (2, 10), (2, 11), (2, 12), (2, 13), (2, 14)]  # the releases sweep says it supports (README)
VERSIONS = [r.version for r in trt_api.RELEASES]
MATRICES = ["matrices/rtx4060ti.yaml", "matrices/h200.yaml"]
RUNNERS = ["runners/compile.py", "runners/python_trt.py"]  # every torch_tensorrt call sweep makes is in these


@pytest.fixture(scope="module")
def wheels() -> dict[str, tw.Wheel]:
    """Every RELEASES wheel, downloaded (once per machine) and unpacked; skipped only when the index is unreachable."""
    t0 = time.perf_counter()
    try:
        paths = tw.fetch(VERSIONS)
    except tw.RegistryUnreachable as exc:
        pytest.skip(f"package index unreachable, no torch-tensorrt wheels to check against: {exc}")
    out = {v: tw.Wheel(tw.unpack(p)) for v, p in paths.items()}
    print(f"\ntorch-tensorrt wheels ready in {time.perf_counter() - t0:.1f} s ({tw.CACHE})")
    return out


def release(version: str) -> trt_api.TrtRelease:
    return trt_api.release_for(version)


@functools.cache
def requests() -> list[tuple[str, tuple[str, ...]]]:
    """(model_precision, enabled_precisions) of every TensorRT job in the seed matrices, then every combination."""
    seen: list[tuple[str, tuple[str, ...]]] = []
    for path in MATRICES:
        for job in matrix.load(ROOT / path).jobs:
            if job.runtime.endswith("-trt") and (job.model_precision, job.enabled_precisions) not in seen:
                seen.append((job.model_precision, job.enabled_precisions))
    assert len(seen) >= 4, "the seed matrices lost their TensorRT rows"
    sets = [tuple(p for p in TRT_PRECISIONS if p in c)
            for n in (1, 2, 3) for c in itertools.combinations(TRT_PRECISIONS, n)]
    for combo in itertools.product(PRECISIONS, sets):
        if combo not in seen:
            seen.append(combo)
    return seen


@functools.cache
def mapped(version: str) -> list[tuple[tuple[str, tuple[str, ...]], dict[str, Any]]]:
    """The mapping's answer for every request; refused ones (the job is `unsupported`) are left out."""
    out = []
    for request in requests():
        try:
            out.append((request, trt_api.trt_compile_kwargs(version, *request)))
        except trt_api.TrtUnsupported:
            continue
    return out


# --------------------------------------------------------------------------------------------------
# the table (no download needed)


def test_table_covers_the_claimed_releases() -> None:
    minors = [r.minor for r in trt_api.RELEASES]
    assert sorted(minors) == minors and len(set(minors)) == len(minors)
    assert set(CLAIMED) <= set(minors)


def test_every_field_names_its_source() -> None:
    fields = [f.name for f in dataclasses.fields(trt_api.TrtRelease)]
    assert fields == list(trt_api.FIELD_SOURCES)


def test_docs_copy_is_the_table() -> None:
    doc = (ROOT / "docs" / "trt-versions.md").read_text()
    assert trt_api.markdown_table() in doc, "docs/trt-versions.md's table differs from trt_api.markdown_table()"


# --------------------------------------------------------------------------------------------------
# the table against the wheels


@pytest.mark.parametrize("version", VERSIONS)
def test_table_entry_is_what_the_wheel_says(wheels: dict[str, tw.Wheel], version: str) -> None:
    read = tw.read_release(wheels[version].root)
    entry = dataclasses.asdict(release(version))
    wrong = [f"{k}: table {entry[k]!r}, wheel {read[k]!r} (read from {trt_api.FIELD_SOURCES[k]})"
             for k in entry if entry[k] != read[k]]
    assert not wrong, f"sweep/trt_api.py RELEASES[{version}] disagrees with the wheel:\n" + "\n".join(wrong)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_keyword_the_mapping_passes_is_taken_and_used(wheels: dict[str, tw.Wheel], version: str) -> None:
    """Each keyword is a named parameter of dynamo.compile (not swallowed by **kwargs) and reaches the settings."""
    wheel = wheels[version]
    fn = wheel.function(tw.COMPILER, "compile")
    _, named, _ = tw.parameters(fn)
    used = tw.compile_keywords(wheel)
    for request, kwargs in mapped(version):
        for kw in kwargs:
            assert kw in named, (f"torch-tensorrt {version}: compile() has no parameter {kw!r} (it would go to "
                                 f"**kwargs and be ignored) but the mapping passes it for {request}")
            assert kw in used, f"torch-tensorrt {version}: compile() takes {kw!r} but never uses it ({request})"


@pytest.mark.parametrize("version", VERSIONS)
def test_keywords_a_release_removed_are_never_passed(wheels: dict[str, tw.Wheel], version: str) -> None:
    index = VERSIONS.index(version)
    removed: set[str] = set()
    for older in VERSIONS[:index]:  # a keyword any older release took that this one does not
        removed |= set(tw.parameters(wheels[older].function(tw.COMPILER, "compile"))[1])
    removed -= set(tw.parameters(wheels[version].function(tw.COMPILER, "compile"))[1])
    for request, kwargs in mapped(version):
        passed = removed & set(kwargs)
        assert not passed, f"torch-tensorrt {version} removed {sorted(passed)}; the mapping passes it for {request}"


@pytest.mark.parametrize("version", VERSIONS)
def test_defaults_the_mapping_relies_on(wheels: dict[str, tw.Wheel], version: str) -> None:
    """What a keyword left out means is the release's _defaults.py, read here, not the table."""
    wheel = wheels[version]
    defaults = wheel.module_constants(tw.DEFAULTS)
    flags = tw.builder_flags(wheel.tree(tw.INTERPRETER))
    autocast_pass = (wheel.root / tw.AUTOCAST_PASS).exists()
    _, named, _ = tw.parameters(wheel.function(tw.COMPILER, "compile"))
    for (model_precision, enabled), kwargs in mapped(version):
        lows = {p for p in enabled if p != "fp32"}
        explicit = kwargs.get("use_explicit_typing", defaults.get("USE_EXPLICIT_TYPING"))
        autocast = kwargs.get("enable_autocast", defaults.get("ENABLE_AUTOCAST", False))
        if "enabled_precisions" in kwargs:  # weak typing: explicit typing must be off, the flags must exist
            assert explicit is False, f"{version}: enabled_precisions {enabled} with use_explicit_typing={explicit}"
            assert set(kwargs["enabled_precisions"]) - {"fp32"} <= set(flags), (version, enabled, flags)
        elif explicit is True and "use_explicit_typing" in named:
            # use_explicit_typing=True asserts enabled_precisions == {fp32}: the default must be exactly that.
            assert defaults.get("ENABLED_PRECISIONS") == ("dtype.f32",), (version, defaults.get("ENABLED_PRECISIONS"))
        if not kwargs.get("enable_autocast"):
            assert autocast is False, f"{version}: ENABLE_AUTOCAST defaults to {autocast}; {model_precision} {enabled}"
        else:
            assert autocast_pass and kwargs["autocast_low_precision_type"] in lows
        honoured = set(kwargs.get("enabled_precisions", [])) | {kwargs.get("autocast_low_precision_type")}
        if model_precision in ("fp16", "bf16"):
            honoured.add(model_precision)
        if "+" in model_precision:
            honoured.add(model_precision.split("+")[1])  # casts recorded by torch.autocast in the graph
        assert lows <= honoured, f"{version}: {model_precision} {enabled} would silently lose {lows - honoured}"


# --------------------------------------------------------------------------------------------------
# the save / load calls the runners make, read from their source

# Where each torch_tensorrt function sweep calls is defined, and how the package exposes it.
ENTRY_POINTS = {
    "torch_tensorrt.dynamo.compile": (tw.COMPILER, "compile"),
    "torch_tensorrt.save": (tw.SAVE_LOAD, "save"),
    "torch_tensorrt.load": (tw.SAVE_LOAD, "load"),
}


def runner_calls() -> list[tuple[str, ast.Call]]:
    calls = []
    for rel in RUNNERS:
        for node in ast.walk(ast.parse((ROOT / rel).read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("torch_tensorrt."):
                calls.append((f"{rel}:{node.lineno}", node))
    return calls


def test_runners_call_torch_tensorrt_where_expected() -> None:
    names = {ast.unparse(call.func) for _, call in runner_calls()}
    assert names == set(ENTRY_POINTS), f"calls to resolve against the wheels: {sorted(names)}"


@pytest.mark.parametrize("version", VERSIONS)
def test_the_runners_calls_match_the_release(wheels: dict[str, tw.Wheel], version: str) -> None:
    wheel = wheels[version]
    init = wheel.text("torch_tensorrt/__init__.py")
    assert "from torch_tensorrt._compile import *" in init
    exported = ast.literal_eval(next(n.value for n in wheel.tree(tw.SAVE_LOAD).body if isinstance(n, ast.Assign)
                                     and ast.unparse(n.targets[0]) == "__all__"))
    assert {"save", "load"} <= set(exported)
    assert "compile" in wheel.text("torch_tensorrt/dynamo/__init__.py").split("from ._compiler import", 1)[1][:200]
    assert "__version__" in wheel.module_constants(tw.VERSION_FILE)
    formats = set(release(version).save_formats)
    for where, call in runner_calls():
        rel, name = ENTRY_POINTS[ast.unparse(call.func)]
        positional, named, _ = tw.parameters(wheel.function(rel, name))
        assert len(call.args) <= len(positional), f"{where}: {len(call.args)} positional arguments to {name}"
        given = set(positional[: len(call.args)])
        for kw in call.keywords:
            if kw.arg is None:  # **kwargs: the mapping's answer, checked by the compile-keyword tests above
                assert name == "compile", f"{where}: ** into {name} cannot be checked"
                continue
            assert kw.arg in named, f"{where}: torch-tensorrt {version} {name}() has no parameter {kw.arg!r}"
            given.add(kw.arg)
            if kw.arg == "output_format":
                assert ast.literal_eval(kw.value) in formats, f"{where}: {ast.unparse(kw.value)} not in {formats}"
        required = {k for k, d in named.items() if d is None}
        assert required <= given, f"{where}: {name}() of {version} requires {sorted(required - given)}"
        if name == "save":
            # The default changed between releases (2.9: False; 2.10+: True): the call must not rely on it.
            assert "retrace" in given, f"{where}: pass retrace explicitly (defaults differ by release)"
            assert {"arg_inputs", "inputs"} & given, f"{where}: torchscript output traces with the inputs"
        if name == "load":
            assert release(version).load_takes_path and "torch.export.load" in release(version).load_calls


def test_save_calls_write_what_the_runners_load() -> None:
    """model.ep (exported_program) for python-trt, model.ts (torchscript) for the C++ binary."""
    saves = {ast.literal_eval(next(k.value for k in c.keywords if k.arg == "output_format"))
             for _, c in runner_calls() if ast.unparse(c.func) == "torch_tensorrt.save"}
    assert saves == {"exported_program", "torchscript"}
    assert "exported-trt" in (ROOT / "runners/python_trt.py").read_text()


# --------------------------------------------------------------------------------------------------
# the runtime library the C++ binary dlopens, and what doctor tells users to install


@pytest.mark.parametrize("version", VERSIONS)
def test_runtime_library_and_its_tensorrt_are_what_doctor_says(wheels: dict[str, tw.Wheel], version: str) -> None:
    wheel = wheels[version]
    entry = release(version)
    assert tw.RUNTIME_LIB in wheel.files(), f"{version}: no {tw.RUNTIME_LIB} in the wheel"
    native_path = ROOT / "sweep" / "native.py"
    assert '"lib" / "libtorchtrt_runtime.so"' in native_path.read_text(), "sweep/native.py looks elsewhere"
    needed = tw.readelf_needed(wheel.root / tw.RUNTIME_LIB)
    nvinfer = [n for n in needed if n.startswith("libnvinfer.so.")]
    assert len(nvinfer) == 1, needed
    major = int(nvinfer[0].rsplit(".", 1)[1])
    cudart = int(next(n for n in needed if n.startswith("libcudart.so.")).rsplit(".", 1)[1])
    # The wheel agrees with itself: its TensorRT requirement has the major the library links against.
    trt_reqs = [r for r in wheel.requires() if r.name.startswith("tensorrt-cu")]
    assert trt_reqs and all(s.version.split(".")[0] == str(major) for r in trt_reqs for s in r.specifier
                            if s.operator == ">="), (version, [str(r) for r in trt_reqs])
    torch_req = next(r for r in wheel.requires() if r.name == "torch")
    torch_version = next(s.version for s in torch_req.specifier if s.operator == ">=")
    advice = trt_install(torch_version, f"{cudart}.0")
    assert f"torch-tensorrt=={entry.version}" in advice["python-trt"]
    for runtime in ("python-trt", "cpp-trt", "tensorrt"):
        assert f"TensorRT {major}" in advice[runtime], (runtime, advice[runtime])
        assert str(trt_reqs[0]).replace(" ", "") in advice[runtime] or entry.tensorrt_package() in advice[runtime]
    assert nvinfer[0] in advice["cpp-trt"] and f"libcudart.so.{cudart}" in advice["cpp-trt"]


# --------------------------------------------------------------------------------------------------
# the compile step's own guard, on a stand-in generated from the real signature (nothing else is faked)


def signature_only(wheel: tw.Wheel, rel: str, name: str) -> Any:
    """A function with exactly the parameters of the wheel's `name` (defaults None, no annotations, no body)."""
    fn = wheel.function(rel, name)
    args = fn.args
    for a in args.posonlyargs + args.args + args.kwonlyargs + [x for x in (args.vararg, args.kwarg) if x]:
        a.annotation = None
    args.defaults = [ast.Constant(None) for _ in args.defaults]
    args.kw_defaults = [None if d is None else ast.Constant(None) for d in args.kw_defaults]
    stub = ast.FunctionDef(name=name, args=args, body=[ast.Pass()], decorator_list=[], returns=None, type_params=[])
    module = ast.fix_missing_locations(ast.Module(body=[stub], type_ignores=[]))
    namespace: dict[str, Any] = {}
    exec(compile(module, f"<{rel}:{name} signature>", "exec"), namespace)
    return namespace[name]


@pytest.mark.parametrize("version", VERSIONS)
def test_compile_step_guard_accepts_the_mapping_and_refuses_swallowed_keywords(
        wheels: dict[str, tw.Wheel], version: str) -> None:
    from runners import common
    from runners.compile import check_keywords

    compile_fn = signature_only(wheels[version], tw.COMPILER, "compile")
    for _, kwargs in mapped(version):
        check_keywords(compile_fn, {"arg_inputs": [], **kwargs})
    if "enabled_precisions" not in release(version).compile_keywords:
        with pytest.raises(common.Unsupported, match="takes no enabled_precisions"):
            check_keywords(compile_fn, {"enabled_precisions": {"fp16"}})
