"""torch-tensorrt's API per release, as data read from its wheels, and the mapping of a precision request onto it.

torch-tensorrt changed what `enabled_precisions` means three times, and two of those changes are silent
(a precision that is asked for and not honoured gives an fp32 engine, no warning). So the mapping is
explicit, per release, and anything a release cannot express is refused with a reason rather than run
as something else. The truth is RELEASES below: one entry per supported minor release, every field read
from that release's wheel (FIELD_SOURCES says which file and symbol) and checked against the wheel by
tests/test_trt_wheels.py, which downloads the wheels. `python tests/trt_wheels.py 2.15.0` prints the entry
for a new release. docs/trt-versions.md is the copy for people (a test keeps it equal to `markdown_table()`).

What the fields say, in short (details in docs/trt-versions.md):
- 2.9: `use_explicit_typing` defaults to False: weak typing, TensorRT picks kernels among `enabled_precisions`
  (builder flags FP16 / BF16). `use_explicit_typing=True` asserts enabled_precisions == {fp32}.
- 2.10 - 2.12: USE_EXPLICIT_TYPING flips to True, so lower precisions need `use_explicit_typing=False`
  (deprecated, still honoured: the interpreter still sets the builder flags). Rule-based autocast appears
  (`enable_autocast`, `autocast_low_precision_type`, ENABLE_AUTOCAST = False).
- 2.13, 2.14: built for TensorRT 11 (libnvinfer.so.11), strongly typed only. `enabled_precisions` and
  `use_explicit_typing` are gone from compile()'s signature: passed anyway they fall into **kwargs and are
  ignored without a word. Precision comes from the model's dtypes or from autocast, which takes ONE low type.

Dtype values in the returned kwargs are the matrix's names ("fp32", "fp16", "bf16"), so this module needs
neither torch nor TensorRT; the compile step turns them into torch dtypes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sweep.jobs import PRECISIONS, TRT_PRECISIONS, low_precision


class TrtUnsupported(ValueError):
    """The installed torch-tensorrt cannot express the requested precisions: the job is `unsupported`."""

    @property
    def reason(self) -> str:
        return str(self)


@dataclass(frozen=True)
class TrtRelease:
    """What sweep relies on in one torch-tensorrt release, as read from its wheel (see FIELD_SOURCES)."""

    version: str  # the wheel read; the entry covers its minor release
    torch_requires: str  # the torch it installs with
    tensorrt_requires: tuple[str, ...]  # the TensorRT packages it installs with
    runtime_lib: str  # the Torch-TensorRT runtime the C++ binary dlopens, as a path in the wheel
    runtime_needs: tuple[str, ...]  # that library's NEEDED entries, torch and the C runtime left out
    built_with_tensorrt: str
    built_with_cuda: str
    compile_keywords: tuple[str, ...]  # of the keywords sweep may pass: those dynamo.compile takes by name and uses
    use_explicit_typing: bool | None  # default; None: the setting is gone
    enable_autocast: bool | None  # default; None: no rule-based autocast
    enabled_precisions: tuple[str, ...] | None  # default; None: the setting is gone
    builder_flags: tuple[str, ...]  # low precisions the interpreter turns into builder flags under weak typing
    autocast_pass: bool  # the autocast lowering pass reads enable_autocast and autocast_low_precision_type
    save_keywords: tuple[str, ...]  # of output_format / inputs / arg_inputs / retrace: those save() takes
    save_formats: tuple[str, ...]  # output formats save() accepts
    save_retrace_default: bool | None
    load_takes_path: bool  # load(file_path) with every other parameter optional
    load_calls: tuple[str, ...]  # the loaders load() tries, in order

    @property
    def minor(self) -> tuple[int, int]:
        return parse_version(self.version)

    def _needed_major(self, lib: str) -> int | None:
        for name in self.runtime_needs:
            match = re.fullmatch(rf"{re.escape(lib)}\.so\.(\d+)", name)
            if match:
                return int(match.group(1))
        return None

    @property
    def tensorrt_major(self) -> int | None:
        """The libnvinfer major version the runtime library links against."""
        return self._needed_major("libnvinfer")

    @property
    def cuda_major(self) -> int | None:
        return self._needed_major("libcudart")

    @property
    def weak_typing(self) -> bool:
        """enabled_precisions is a compile keyword that still reaches the builder flags."""
        return "enabled_precisions" in self.compile_keywords and bool(self.builder_flags)

    @property
    def autocast(self) -> bool:
        return (self.autocast_pass and "enable_autocast" in self.compile_keywords
                and "autocast_low_precision_type" in self.compile_keywords)

    def tensorrt_package(self) -> str:
        """The TensorRT requirement to name to users: the CUDA-specific package (tensorrt-cuNN), else the first."""
        cuda = [r for r in self.tensorrt_requires if re.match(r"tensorrt-cu\d+[<>=!~]", r)]
        return (cuda or list(self.tensorrt_requires) or [""])[0]

    def torch_matches(self, torch_version: str) -> bool:
        """Whether this release installs with that torch (Requires-Dist's range, local part like +cu130 ignored)."""
        want = parse_version(torch_version)
        low = re.search(r">=\s*(\d+)\.(\d+)", self.torch_requires)
        high = re.search(r"<\s*(\d+)\.(\d+)", self.torch_requires)
        if not (low and high):
            return False
        return (int(low[1]), int(low[2])) <= want < (int(high[1]), int(high[2]))


# Where each field is read from, inside the wheel (tests/trt_wheels.py reads them exactly there).
FIELD_SOURCES: dict[str, tuple[str, str]] = {
    "version": ("torch_tensorrt/_version.py", "__version__"),
    "torch_requires": ("torch_tensorrt-<version>.dist-info/METADATA", "Requires-Dist: torch"),
    "tensorrt_requires": ("torch_tensorrt-<version>.dist-info/METADATA", "Requires-Dist: tensorrt*"),
    "runtime_lib": ("torch_tensorrt/lib/libtorchtrt_runtime.so", "the file, in the wheel's RECORD of files"),
    "runtime_needs": ("torch_tensorrt/lib/libtorchtrt_runtime.so", "readelf -d: (NEEDED)"),
    "built_with_tensorrt": ("torch_tensorrt/_version.py", "__tensorrt_version__"),
    "built_with_cuda": ("torch_tensorrt/_version.py", "__cuda_version__"),
    "compile_keywords": ("torch_tensorrt/dynamo/_compiler.py",
                         "def compile(...) parameters, used in its settings dict; _settings.py CompilationSettings"),
    "use_explicit_typing": ("torch_tensorrt/dynamo/_defaults.py", "USE_EXPLICIT_TYPING"),
    "enable_autocast": ("torch_tensorrt/dynamo/_defaults.py", "ENABLE_AUTOCAST"),
    "enabled_precisions": ("torch_tensorrt/dynamo/_defaults.py", "ENABLED_PRECISIONS"),
    "builder_flags": ("torch_tensorrt/dynamo/conversion/_TRTInterpreter.py",
                      "builder_config.set_flag(trt.BuilderFlag.FP16|BF16) under `if not ...use_explicit_typing`"),
    "autocast_pass": ("torch_tensorrt/dynamo/lowering/passes/rule_based_autocast.py",
                      "settings.enable_autocast, settings.autocast_low_precision_type"),
    "save_keywords": ("torch_tensorrt/_compile.py", "def save(...) parameters"),
    "save_formats": ("torch_tensorrt/_compile.py", "save(): accepted_formats"),
    "save_retrace_default": ("torch_tensorrt/_compile.py", "def save(..., retrace=<default>)"),
    "load_takes_path": ("torch_tensorrt/_compile.py", "def load(file_path, ...) parameters"),
    "load_calls": ("torch_tensorrt/_compile.py", "load(): torch.jit.load / torch.export.load, in order"),
}

_BASE = ("inputs", "arg_inputs")
_WEAK = ("enabled_precisions", "use_explicit_typing")
_AUTOCAST = ("enable_autocast", "autocast_low_precision_type")
_RUNTIME_10 = ("libnvinfer_plugin.so.10", "libnvinfer.so.10", "libcudart.so.13")
_RUNTIME_11 = ("libnvinfer_plugin.so.11", "libnvinfer.so.11", "libcudart.so.13")
_SAVE_KW = ("output_format", "inputs", "arg_inputs", "retrace")
_FORMATS = ("aot_inductor", "exported_program", "torchscript")
_LIB = "torch_tensorrt/lib/libtorchtrt_runtime.so"


# The supported releases, oldest first: one wheel per minor release (the newest patch of it when read).
RELEASES: tuple[TrtRelease, ...] = (
    TrtRelease(
        version="2.9.0", torch_requires="<2.10.0,>=2.9.0", tensorrt_requires=(
            "tensorrt<10.14.0,>=10.13.0", "tensorrt-cu13<10.14.0,>=10.13.0",
            "tensorrt-cu13-bindings<10.14.0,>=10.13.0", "tensorrt-cu13-libs<10.14.0,>=10.13.0",
        ),
        runtime_lib=_LIB, runtime_needs=_RUNTIME_10, built_with_tensorrt="10.13.3", built_with_cuda="13.0",
        compile_keywords=_BASE + _WEAK, use_explicit_typing=False, enable_autocast=None,
        enabled_precisions=("fp32",), builder_flags=("bf16", "fp16"), autocast_pass=False,
        save_keywords=_SAVE_KW, save_formats=_FORMATS, save_retrace_default=False, load_takes_path=True,
        load_calls=("torch.jit.load", "torch.export.load"),
    ),
    TrtRelease(
        version="2.10.0", torch_requires="<2.11.0,>=2.10.0",
        tensorrt_requires=(
            "tensorrt<10.15.0,>=10.14.1", "tensorrt-cu13!=10.14.1.48,<10.15.0,>=10.14.1",
            "tensorrt-cu13-bindings!=10.14.1.48,<10.15.0,>=10.14.1",
            "tensorrt-cu13-libs!=10.14.1.48,<10.15.0,>=10.14.1",
        ),
        runtime_lib=_LIB, runtime_needs=_RUNTIME_10, built_with_tensorrt="10.14.1", built_with_cuda="13.0",
        compile_keywords=_BASE + _WEAK + _AUTOCAST, use_explicit_typing=True, enable_autocast=False,
        enabled_precisions=("fp32",), builder_flags=("bf16", "fp16"), autocast_pass=True,
        save_keywords=_SAVE_KW, save_formats=_FORMATS, save_retrace_default=True, load_takes_path=True,
        load_calls=("torch.jit.load", "torch.export.load"),
    ),
    TrtRelease(
        version="2.11.0", torch_requires="<2.12.0,>=2.11.0", tensorrt_requires=(
            "tensorrt<10.16.0,>=10.15.1", "tensorrt-cu13<10.16.0,>=10.15.1",
            "tensorrt-cu13-bindings<10.16.0,>=10.15.1", "tensorrt-cu13-libs<10.16.0,>=10.15.1",
        ),
        runtime_lib=_LIB, runtime_needs=_RUNTIME_10, built_with_tensorrt="10.15.1", built_with_cuda="13.0",
        compile_keywords=_BASE + _WEAK + _AUTOCAST, use_explicit_typing=True, enable_autocast=False,
        enabled_precisions=("fp32",), builder_flags=("bf16", "fp16"), autocast_pass=True,
        save_keywords=_SAVE_KW, save_formats=_FORMATS, save_retrace_default=True, load_takes_path=True,
        load_calls=("torch.export.load", "torch.jit.load"),
    ),
    TrtRelease(
        version="2.12.1", torch_requires="<2.13.0,>=2.12.0", tensorrt_requires=(
            "tensorrt<10.17.0,>=10.16.1", "tensorrt-cu13<10.17.0,>=10.16.1",
            "tensorrt-cu13-bindings<10.17.0,>=10.16.1", "tensorrt-cu13-libs<10.17.0,>=10.16.1",
        ),
        runtime_lib=_LIB, runtime_needs=_RUNTIME_10, built_with_tensorrt="10.16.1", built_with_cuda="13.0",
        compile_keywords=_BASE + _WEAK + _AUTOCAST, use_explicit_typing=True, enable_autocast=False,
        enabled_precisions=("fp32",), builder_flags=("bf16", "fp16"), autocast_pass=True,
        save_keywords=_SAVE_KW, save_formats=("aot_inductor", "executorch", "exported_program", "torchscript"),
        save_retrace_default=True, load_takes_path=True, load_calls=("torch.export.load", "torch.jit.load"),
    ),
    TrtRelease(
        version="2.13.0", torch_requires="<2.14.0,>=2.13.0", tensorrt_requires=(
            "tensorrt<11.1.0,>=11.0.0", "tensorrt-cu13<11.1.0,>=11.0.0",
            "tensorrt-cu13-bindings<11.1.0,>=11.0.0", "tensorrt-cu13-libs<11.1.0,>=11.0.0",
        ),
        runtime_lib=_LIB, runtime_needs=_RUNTIME_11, built_with_tensorrt="11.0.0", built_with_cuda="13.2",
        compile_keywords=_BASE + _AUTOCAST, use_explicit_typing=None, enable_autocast=False,
        enabled_precisions=None, builder_flags=(), autocast_pass=True,
        save_keywords=_SAVE_KW, save_formats=("aot_inductor", "executorch", "exported_program", "torchscript"),
        save_retrace_default=True, load_takes_path=True, load_calls=("torch.export.load", "torch.jit.load"),
    ),
    TrtRelease(
        version="2.14.0", torch_requires="<2.15.0,>=2.14.0", tensorrt_requires=(
            "tensorrt-cu13<11.2.0,>=11.1.0", "tensorrt-cu13-bindings<11.2.0,>=11.1.0",
            "tensorrt-cu13-libs<11.2.0,>=11.1.0",
        ),
        runtime_lib=_LIB, runtime_needs=_RUNTIME_11, built_with_tensorrt="11.1.0", built_with_cuda="13.2",
        compile_keywords=_BASE + _AUTOCAST, use_explicit_typing=None, enable_autocast=False,
        enabled_precisions=None, builder_flags=(), autocast_pass=True,
        save_keywords=_SAVE_KW, save_formats=("aot_inductor", "executorch", "exported_program", "torchscript"),
        save_retrace_default=True, load_takes_path=True, load_calls=("torch.export.load", "torch.jit.load"),
    ),
)

def parse_version(version: str) -> tuple[int, int]:
    """(major, minor) of a version such as '2.10.0+cu130' or '2.13.0.dev20260801'."""
    match = re.match(r"^\s*v?(\d+)\.(\d+)", version or "")
    if not match:
        raise TrtUnsupported(f"cannot read the torch-tensorrt version {version!r}; {install_hint()}")
    return int(match.group(1)), int(match.group(2))


def install_hint(torch_version: str | None = None) -> str:
    """What to install for TensorRT jobs with this torch (the installed one by default), from the table."""
    if torch_version is None:
        from importlib import metadata  # only when asked: its import costs the parent ~0.1 s

        try:
            torch_version = metadata.version("torch")
        except metadata.PackageNotFoundError:
            torch_version = ""
    try:
        release = release_for_torch(torch_version) if torch_version else None
    except TrtUnsupported:
        release = None
    if release is None:
        return (f"no torch-tensorrt release that sweep checks ({supported_range()}) installs with torch "
                f"{torch_version or '(not installed)'}; `sweep doctor` says more")
    return (f"pip install torch-tensorrt=={release.version} (the release for this torch; it brings "
            f"{release.tensorrt_package()}, TensorRT {release.tensorrt_major}); `sweep doctor` says more")


def __getattr__(name: str) -> str:
    if name == "INSTALL_HINT":  # the old constant, now depending on the installed torch (computed when asked)
        return install_hint()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def supported_range() -> str:
    return f"{RELEASES[0].version.rsplit('.', 1)[0]} - {RELEASES[-1].version.rsplit('.', 1)[0]}"


def release_for(version: str) -> TrtRelease:
    """The table entry of a torch-tensorrt version (same minor release), or TrtUnsupported saying why not."""
    minor = parse_version(version)
    for release in RELEASES:
        if release.minor == minor:
            return release
    side = "older" if minor < RELEASES[0].minor else "newer"
    raise TrtUnsupported(
        f"torch-tensorrt {version} is {side} than the releases whose API sweep checks ({supported_range()}); "
        f"its precision API is unknown, so nothing is compiled rather than risk a silent fp32 engine. "
        f"Add it to sweep/trt_api.py RELEASES (python tests/trt_wheels.py {version}) or install a checked release")


def release_for_torch(torch_version: str) -> TrtRelease | None:
    """The torch-tensorrt release that installs with this torch, or None when no checked release does."""
    for release in RELEASES:
        if release.torch_matches(torch_version):
            return release
    return None


def api_generation(version: str) -> str:
    """'weak' (2.9), 'explicit-default' (2.10 - 2.12) or 'strong' (2.13+): how enabled_precisions behaves."""
    release = release_for(version)
    if release.weak_typing:
        return "weak" if release.use_explicit_typing is False else "explicit-default"
    return "strong"


def _check_request(model_precision: str, enabled: tuple[str, ...]) -> None:
    if model_precision not in PRECISIONS:
        raise TrtUnsupported(f"unknown model_precision {model_precision!r}; allowed: {', '.join(PRECISIONS)}")
    if not enabled:
        raise TrtUnsupported("enabled_precisions is empty; give at least fp32")
    low = low_precision(model_precision)
    if low is not None and low not in enabled:
        raise TrtUnsupported(f"model_precision {model_precision} needs {low} among the enabled precisions, "
                             f"got {'+'.join(enabled)}")


def trt_compile_kwargs(version: str, model_precision: str, enabled_precisions: tuple[str, ...]) -> dict[str, Any]:
    """Keyword arguments for `torch_tensorrt.dynamo.compile` that make the installed version honour the request.

    `model_precision` says how the exported graph is typed (fp16 / bf16: weights and inputs cast;
    fp32+fp16 / fp32+bf16: exported under torch.autocast; fp32: plain). `enabled_precisions` is the seed's
    "TensorRT may use these" set. Raises TrtUnsupported when the version cannot express it; it never
    returns kwargs under which a requested lower precision would silently become fp32. The compile step
    passes the inputs (arg_inputs) besides these.
    """
    unknown = [p for p in enabled_precisions if p not in TRT_PRECISIONS]
    if unknown:
        raise TrtUnsupported(f"unknown enabled precision(s) {unknown}; allowed: {', '.join(TRT_PRECISIONS)}")
    enabled = tuple(p for p in TRT_PRECISIONS if p in enabled_precisions)
    _check_request(model_precision, enabled)
    release = release_for(version)
    lows = [p for p in enabled if p != "fp32"]
    no_autocast: dict[str, Any] = {"enable_autocast": False} if release.enable_autocast else {}
    if release.weak_typing:
        if release.use_explicit_typing is False:
            # Weak typing is the default: TensorRT picks among the enabled kernels.
            return {"enabled_precisions": list(enabled), **no_autocast}
        if not lows:
            # enabled == {fp32}: the only set use_explicit_typing=True accepts; the graph's own dtypes rule.
            return {"use_explicit_typing": True, **no_autocast}
        missing = [p for p in lows if p not in release.builder_flags]
        if missing:
            raise TrtUnsupported(f"torch-tensorrt {version} sets no TensorRT builder flag for {'+'.join(missing)}")
        # Lower precisions need weak typing back (deprecated in these releases, still honoured).
        return {"enabled_precisions": list(enabled), "use_explicit_typing": False, **no_autocast}
    # Strongly typed only: no enabled_precisions. One autocast low type at most.
    if len(lows) > 1:
        raise TrtUnsupported(
            f"torch-tensorrt {version} types networks strongly and its autocast takes one low-precision type; "
            f"enabled_precisions {'+'.join(enabled)} mixes {' and '.join(lows)} and cannot be expressed "
            f"(use fp32+fp16 or fp32+bf16, or torch-tensorrt {RELEASES[0].version.rsplit('.', 1)[0]} - 2.12 "
            f"for weak typing)")
    if not lows or model_precision in ("fp16", "bf16"):
        # fp32 everywhere, or weights and inputs already cast: strong typing keeps the graph's own dtypes.
        return dict(no_autocast)
    if not release.autocast:
        raise TrtUnsupported(f"torch-tensorrt {version} has neither weak typing nor autocast: "
                             f"{'+'.join(enabled)} cannot be expressed for an fp32 model")
    # fp32 (or fp32 + torch.autocast casts) with `low` allowed: let TensorRT's autocast lower what its
    # rules allow, as weak typing let the builder do; torch.autocast regions in the graph are respected.
    return {"enable_autocast": True, "autocast_low_precision_type": lows[0]}


def markdown_table() -> str:
    """The human copy of RELEASES (docs/trt-versions.md holds it; a test keeps the two equal)."""
    head = ("| torch-tensorrt | torch | TensorRT | CUDA | typing | precision keywords of compile() | "
            "defaults | save(retrace=) default | load() tries |")
    rows = [head, "|" + "---|" * 9]
    for r in RELEASES:
        gen = api_generation(r.version)
        typing = {"weak": "weak (default)", "explicit-default": "explicit by default; weak with "
                  "use_explicit_typing=False", "strong": "strong only"}[gen]
        keywords = [k for k in r.compile_keywords if k not in _BASE]
        defaults = [f"USE_EXPLICIT_TYPING={r.use_explicit_typing}" if r.use_explicit_typing is not None
                    else "USE_EXPLICIT_TYPING gone",
                    f"ENABLE_AUTOCAST={r.enable_autocast}" if r.enable_autocast is not None else "no autocast",
                    f"ENABLED_PRECISIONS={{{', '.join(r.enabled_precisions)}}}" if r.enabled_precisions
                    else "ENABLED_PRECISIONS gone"]
        rows.append(
            f"| {r.version} | {r.torch_requires} | {r.tensorrt_package()}; libnvinfer.so.{r.tensorrt_major} | "
            f"{r.built_with_cuda} (libcudart.so.{r.cuda_major}) | {typing} | {', '.join(keywords)} | "
            f"{'; '.join(defaults)} | {r.save_retrace_default} | {' then '.join(r.load_calls)} |")
    rows += ["", "What `dynamo.compile` gets besides the inputs, per request (model_precision / enabled_precisions):",
             ""]
    rows.append("| torch-tensorrt | " + " | ".join(f"{mp} / {'+'.join(en)}" for mp, en in DOC_REQUESTS) + " |")
    rows.append("|" + "---|" * (len(DOC_REQUESTS) + 1))
    for r in RELEASES:
        cells = []
        for mp, en in DOC_REQUESTS:
            try:
                kwargs = trt_compile_kwargs(r.version, mp, en)
                cells.append(", ".join(f"{k}={v}" for k, v in kwargs.items()) or "(nothing)")
            except TrtUnsupported:
                cells.append("unsupported")
        rows.append(f"| {r.version} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


# The seed's TensorRT rows, then the mixed request that 2.13+ maps to autocast and a cast-weights one.
DOC_REQUESTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fp32+fp16", ("fp32", "bf16", "fp16")), ("fp32", ("fp32", "bf16", "fp16")), ("fp32", ("fp32", "bf16")),
    ("fp32", ("fp32",)), ("fp32", ("fp32", "fp16")), ("fp16", ("fp16",)),
)
