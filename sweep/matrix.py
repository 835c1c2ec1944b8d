"""YAML matrix -> validated Matrix -> Jobs: every check happens here, before anything runs."""

from __future__ import annotations

import itertools
import json
import math
import re
import reprlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sweep import factory, models
from sweep.digest import sha256_file
from sweep.errors import MatrixError
from sweep.jobs import (
    AMP_DTYPES,
    COMPILE_MODES,
    FIDELITY_MEASURES,
    FIDELITY_PRECISIONS,
    PRECISIONS,
    TF32_MODES,
    TRT_PRECISIONS,
    FidelitySpec,
    Job,
    ModelSpec,
    low_precision,
)
from sweep.runtimes import RUNTIMES

TOP_KEYS = ("name", "description", "model", "device", "measure", "fidelity", "jobs")
BLOCK_KEYS = ("runtime", "model", "device", "measure", "fidelity", "model_precision", "amp_dtype",
              "enabled_precisions", "compile_mode", "cuda_graphs", "tf32", "exclude")
MODEL_SOURCES = ("name", "factory", "torchscript", "exported")
MODEL_KEYS = (*MODEL_SOURCES, "input_shape", "input_shapes", "input_range", "options", "checkpoint")
MEASURE_KEYS = ("warmup", "iters", "timeout_s", "seed", "processes", "memory_limit_gb")
MEASURE_DEFAULTS: dict[str, Any] = {"warmup": 10, "iters": 100, "timeout_s": 900, "seed": 0}
CUDA_PROCESSES = 3  # default measure.processes on CUDA (one process is one sample); 1 on the CPU
FIDELITY_KEYS = ("tolerance", "measure", "outputs")
AXES = ("runtime", "device", "model_precision", "amp_dtype", "enabled_precisions", "compile_mode", "cuda_graphs",
        "tf32")
RUNTIME_AXES = ("amp_dtype", "enabled_precisions", "compile_mode", "cuda_graphs", "tf32")  # only some runtimes
FP32_WEIGHTS = ("fp32", "fp32+fp16", "fp32+bf16")  # the precisions tf32 applies to
EXCLUDE_VALUES: dict[str, tuple[str, ...]] = {
    "runtime": tuple(RUNTIMES), "model_precision": PRECISIONS, "amp_dtype": AMP_DTYPES, "compile_mode": COMPILE_MODES,
}
DEVICE_RE = re.compile(r"^(cpu|cuda|cuda:\d+)$")

# Budgets that keep a hostile or mistaken matrix from costing more than a moment (issue 15: matrix bombs).
# Real matrices are a few KB, a few hundred YAML nodes, a handful of anchors and a few hundred jobs.
MAX_FILE_BYTES = 1 << 20
MAX_ALIASES = 100  # *name references in the file
MAX_NODES = 50_000  # YAML nodes once every alias is expanded (a billion-laughs file has ~10^9)
MAX_DEPTH = 32  # nesting of mappings and lists
MAX_EXCLUDE_RULES = 200  # per block
DEFAULT_MAX_JOBS = 20_000  # `--max-jobs`: combinations over all blocks, counted before any job is made
MAX_PROCESSES = 1_000

_QUOTE = reprlib.Repr()
_QUOTE.maxstring, _QUOTE.maxother, _QUOTE.maxlist, _QUOTE.maxdict, _QUOTE.maxlevel = 60, 60, 6, 4, 3


def _quote(value: Any) -> str:
    """A user's value inside an error message, cut short: a 100 MB string or an expanded alias stays one line."""
    return _QUOTE.repr(value)


@dataclass(frozen=True)
class Matrix:
    """A validated matrix file and the jobs it expands to, in file order, duplicates removed."""

    name: str
    path: Path
    jobs: tuple[Job, ...]


def _allowed(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(values)


def _check_keys(path: Path, where: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise MatrixError(path, f"{where}{key}", f"unknown key; allowed: {_allowed(allowed)}")


def _mapping(path: Path, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MatrixError(path, where, f"must be a mapping, got {type(value).__name__}")
    return value


class _OverBudget(yaml.MarkedYAMLError):
    """A budget of _BoundedLoader was exceeded; `problem` says which."""


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that counts aliases and nesting while it composes the node graph, before anything is
    constructed: an alias bomb or a 3000-deep nesting is refused at the line where it starts."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _OverBudget(problem=f"more than {MAX_ALIASES} aliases (*name); a matrix needs a few",
                                  problem_mark=self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _OverBudget(problem=f"nested deeper than {MAX_DEPTH} levels",
                                  problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has with every alias expanded, without expanding any (each shared node is
    counted once and multiplied); stops at MAX_NODES. A node that contains itself is refused."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _OverBudget(problem="an alias refers to a node that contains it (a recursive structure)",
                              problem_mark=node.start_mark)
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_NODES:
                raise _OverBudget(problem=f"expands to more than {MAX_NODES} YAML nodes (aliases included)",
                                  problem_mark=node.start_mark)
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)  # recursion is bounded: composing refused anything deeper than MAX_DEPTH


def _safe_load(text: str) -> Any:
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse the file within the budgets above; a syntax error or an exceeded budget names its line."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise MatrixError(path, "(file)", f"is {size} bytes; a matrix file is at most {MAX_FILE_BYTES} bytes")
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)  # the file may grow between stat and read
    except OSError as exc:
        raise MatrixError(path, "(file)", f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_FILE_BYTES:
        raise MatrixError(path, "(file)", f"is larger than {MAX_FILE_BYTES} bytes, the most a matrix file may be")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MatrixError(path, "(file)", f"is not UTF-8 text (byte {exc.start})") from None
    try:
        data = _safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else "(file)"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        what = "YAML syntax error: " if not isinstance(exc, _OverBudget) else "refused: "
        raise MatrixError(path, line, f"{what}{problem}") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise MatrixError(path, "(file)", f"YAML value error: {exc}") from None
    if not isinstance(data, dict):
        raise MatrixError(path, "(file)", "must be a YAML mapping with at least `model` and `jobs`")
    return data


def _positive_int(path: Path, key: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MatrixError(path, key, f"must be an integer >= {minimum}, got {_quote(value)}")
    return value


def _measure(path: Path, where: str, value: Any) -> dict[str, Any]:
    data = _mapping(path, where, value)
    _check_keys(path, f"{where}.", data, MEASURE_KEYS)
    out = dict(data)
    for key in ("warmup", "iters"):
        if key in out:
            _positive_int(path, f"{where}.{key}", out[key])
    if "seed" in out:
        _positive_int(path, f"{where}.seed", out["seed"], minimum=0)
    if "processes" in out and _positive_int(path, f"{where}.processes", out["processes"]) > MAX_PROCESSES:
        raise MatrixError(path, f"{where}.processes", f"must be an integer in 1..{MAX_PROCESSES}, got "
                                                      f"{out['processes']}")
    for key in ("timeout_s", "memory_limit_gb"):
        if key in out:
            t = out[key]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
                raise MatrixError(path, f"{where}.{key}", f"must be a number > 0, got {_quote(t)}")
    return out


def _number(value: Any) -> float | None:
    """A finite number, also from text: YAML 1.1 reads `1e-3` (no dot) as a string."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, (int, float, str)) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _fidelity(path: Path, where: str, value: Any) -> dict[str, Any]:
    """The keys a `fidelity` mapping sets, checked; a block's keys override the top's (tolerances per precision)."""
    data = _mapping(path, where, value)
    _check_keys(path, f"{where}.", data, FIDELITY_KEYS)
    out: dict[str, Any] = {}
    if "tolerance" in data:
        tolerance = _mapping(path, f"{where}.tolerance", data["tolerance"])
        _check_keys(path, f"{where}.tolerance.", tolerance, FIDELITY_PRECISIONS)
        out["tolerance"] = {}
        for precision, raw in tolerance.items():
            number = _number(raw)
            if number is None or number <= 0:
                raise MatrixError(path, f"{where}.tolerance.{precision}",
                                  f"must be a number > 0 (the largest relative error that passes), got {_quote(raw)}")
            out["tolerance"][precision] = number
    if "measure" in data:
        out["measure"] = _choice(path, f"{where}.measure", data["measure"], FIDELITY_MEASURES)
    if "outputs" in data:
        outputs = data["outputs"]
        if (not isinstance(outputs, list) or not outputs or len(set(map(repr, outputs))) != len(outputs)
                or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in outputs)):
            raise MatrixError(path, f"{where}.outputs", f"must be a non-empty list of distinct output indices >= 0 "
                                                        f"(flattened outputs, from 0), e.g. [3, 4]; "
                                                        f"got {_quote(outputs)}")
        out["outputs"] = tuple(outputs)
    return out


def _fidelity_spec(top: dict[str, Any], block: dict[str, Any], model: ModelSpec) -> FidelitySpec:
    """Block over top; without `outputs`, a built-in model's judged outputs (all outputs for user models)."""
    tolerance = {**top.get("tolerance", {}), **block.get("tolerance", {})}
    default_outputs = models.BUILTINS[model.ref].judged_outputs if model.kind == "builtin" else None
    return FidelitySpec(tolerance=tuple(sorted(tolerance.items())),
                        measure=block.get("measure", top.get("measure", "elementwise")),
                        outputs=block.get("outputs", top.get("outputs", default_outputs)))


def _shape_list(path: Path, key: str, value: Any, nested: bool) -> list[list[int]]:
    shapes = value if nested else [value]
    if not isinstance(shapes, list) or not shapes:
        raise MatrixError(path, key, "must be a non-empty list of shapes, e.g. [[1, 3, 64, 64]]")
    for shape in shapes:
        if (not isinstance(shape, list) or not shape
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
            raise MatrixError(path, key, f"a shape is a non-empty list of positive integers, got {_quote(shape)}")
    return shapes


def _file_hash(p: Path) -> str:
    return sha256_file(p)[:16]


def _model(path: Path, where: str, value: Any, allow_any_factory: bool) -> ModelSpec:
    """Validate the model block and resolve it: the builtin exists and takes its options, the factory's module
    defines the function (read, never imported), the files exist."""
    data = _mapping(path, where, value)
    _check_keys(path, f"{where}.", data, MODEL_KEYS)
    sources = [k for k in MODEL_SOURCES if k in data]
    if len(sources) != 1:
        raise MatrixError(path, where, f"needs exactly one of {_allowed(MODEL_SOURCES)}, got {sources or 'none'}")
    source = sources[0]
    ref = data[source]
    root = str(path.resolve().parent)
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise MatrixError(path, f"{where}.options", "must be a mapping of keyword arguments for the model")
    try:
        json.dumps(options, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise MatrixError(path, f"{where}.options", f"values must be numbers, strings, booleans, lists or "
                                                     f"mappings ({exc})") from exc
    if not isinstance(ref, str) or not ref:
        raise MatrixError(path, f"{where}.{source}", "must be a non-empty string")
    default_shapes: list[list[int]] | None = None
    input_range: tuple[float, float] = (-1.0, 1.0)
    content_hash = ""
    if source == "name":
        if ref not in models.BUILTINS:
            known = _allowed(list(models.BUILTINS))
            raise MatrixError(path, f"{where}.name", f"unknown model {_quote(ref)}; built-in: {known}")
        builtin = models.BUILTINS[ref]
        try:
            default_shapes = builtin.input_shapes(**options)
        except (TypeError, ValueError) as exc:  # unknown option, or a value the model cannot take
            raise MatrixError(path, f"{where}.options", f"not accepted by {ref}: {exc}") from exc
        input_range = builtin.input_range
        kind = "builtin"
    elif source == "factory":
        try:
            found = factory.locate(ref, Path(root), allow_any=allow_any_factory)
        except factory.FactoryError as exc:
            raise MatrixError(path, f"{where}.factory", str(exc)) from None
        # The factory's source is part of the model: an edited or another project's `models:build` must
        # not reuse old rows, compiled variants or references.
        content_hash = found.content_hash
        kind = "factory"
    else:
        file = (path.parent / ref).resolve()
        if not file.is_file():
            raise MatrixError(path, f"{where}.{source}", f"file not found: {file}")
        content_hash = _file_hash(file)
        ref = str(file)
        kind = source
    if "input_shape" in data and "input_shapes" in data:
        raise MatrixError(path, where, "give input_shape or input_shapes, not both")
    if "input_shape" in data:
        shapes = _shape_list(path, f"{where}.input_shape", data["input_shape"], nested=False)
    elif "input_shapes" in data:
        shapes = _shape_list(path, f"{where}.input_shapes", data["input_shapes"], nested=True)
    elif default_shapes is not None:
        shapes = default_shapes
    else:
        raise MatrixError(path, where, f"needs input_shape or input_shapes for a {source} model")
    if "input_range" in data:
        rng = data["input_range"]
        if (not isinstance(rng, list) or len(rng) != 2
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in rng) or rng[0] >= rng[1]):
            raise MatrixError(path, f"{where}.input_range", f"must be [low, high] with low < high, got {_quote(rng)}")
        input_range = (float(rng[0]), float(rng[1]))
    checkpoint = None
    if "checkpoint" in data:
        ckpt = (path.parent / str(data["checkpoint"])).resolve()
        if not ckpt.is_file():
            raise MatrixError(path, f"{where}.checkpoint", f"file not found: {ckpt}")
        checkpoint = str(ckpt)
        content_hash = (content_hash + _file_hash(ckpt))[:32]
    return ModelSpec(
        kind=kind,
        ref=ref,
        input_shapes=tuple(tuple(s) for s in shapes),
        input_range=input_range,
        options=tuple(sorted(options.items())),
        checkpoint=checkpoint,
        content_hash=content_hash,
        root=root,
    )


def _as_axis(path: Path, key: str, value: Any) -> list[Any]:
    """A scalar is a one-value axis; a list multiplies; an empty list is an error."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise MatrixError(path, key, "is an empty list; give at least one value")
    return values


def _choice(path: Path, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise MatrixError(path, key, f"unknown value {_quote(value)}; allowed: {_allowed(allowed)}")
    return str(value)


def _cuda_graphs(path: Path, key: str, value: Any) -> bool:
    if isinstance(value, bool):  # YAML 1.1 reads a bare on / off as true / false
        return value
    return _choice(path, key, value, ("off", "on")) == "on"


def _tf32(path: Path, key: str, value: Any) -> str:
    if isinstance(value, bool):  # YAML 1.1 reads a bare on / off as true / false
        return "on" if value else "off"
    return _choice(path, key, value, TF32_MODES)


def _precision_set(path: Path, key: str, value: Any) -> tuple[str, ...]:
    items = value.split("+") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise MatrixError(path, key, "a set of precisions is a list like [fp32, fp16] or a label like fp32+fp16")
    for item in items:
        _choice(path, key, item, TRT_PRECISIONS)
    return tuple(p for p in TRT_PRECISIONS if p in items)


def _enabled_axis(path: Path, key: str, value: Any) -> list[tuple[str, ...]]:
    """A flat list of names (or one label) is one set; a list of lists / labels is an axis of sets."""
    if isinstance(value, list) and not value:
        raise MatrixError(path, key, "is an empty list; give at least one set of precisions")
    if isinstance(value, list) and any(isinstance(v, list) or (isinstance(v, str) and "+" in v) for v in value):
        return [_precision_set(path, f"{key}[{i}]", v) for i, v in enumerate(value)]
    return [_precision_set(path, key, value)]


def _device(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not DEVICE_RE.match(value):
        raise MatrixError(path, key, f"unknown device {_quote(value)}; allowed: cpu, cuda, cuda:N")
    return value


_AXIS_VALUE: dict[str, Callable[[Path, str, Any], Any]] = {"device": _device, "cuda_graphs": _cuda_graphs,
                                                          "tf32": _tf32}


def _exclude_rules(path: Path, where: str, value: Any) -> list[dict[str, list[Any]]]:
    """Each rule maps axis keys to the values it excludes, checked and normalised like the axes themselves:
    a misspelt value would otherwise exclude nothing, silently."""
    rules = value if isinstance(value, list) else [value]
    if len(rules) > MAX_EXCLUDE_RULES:
        raise MatrixError(path, where, f"has {len(rules)} rules; at most {MAX_EXCLUDE_RULES} per block (list "
                                       f"the values to keep instead, or split the block)")
    out = []
    for i, rule in enumerate(rules):
        key = f"{where}[{i}]"
        rule = _mapping(path, key, rule)
        _check_keys(path, f"{key}.", rule, AXES)
        normalised: dict[str, list[Any]] = {}
        for axis, want in rule.items():
            where_axis = f"{key}.{axis}"
            if axis == "enabled_precisions":
                normalised[axis] = _enabled_axis(path, where_axis, want)
                continue
            parse = _AXIS_VALUE.get(axis)
            values = _as_axis(path, where_axis, want)
            normalised[axis] = ([parse(path, where_axis, v) for v in values] if parse is not None else
                                [_choice(path, where_axis, v, EXCLUDE_VALUES[axis]) for v in values])
        out.append(normalised)
    return out


def _matches(rule: Mapping[str, list[Any]], values: Mapping[str, Any]) -> bool:
    """A rule excludes a combination when every key it names matches one of its values."""
    return all(values.get(axis) in wants for axis, wants in rule.items())


@dataclass(frozen=True)
class _Block:
    """One jobs block, validated, its axes parsed: what it would expand to is known before any job exists."""

    where: str
    model: ModelSpec
    measure: dict[str, Any]
    fidelity: FidelitySpec
    axes: tuple[list[Any], ...]  # in AXES order: runtime, device, model_precision, amp_dtype, enabled, mode, ...
    rules: list[dict[str, list[Any]]]

    @property
    def combinations(self) -> int:
        return math.prod(len(axis) for axis in self.axes)


def _parse_block(path: Path, index: int, block: dict[str, Any], top: dict[str, Any],
                 allow_any_factory: bool) -> _Block:
    where = f"jobs[{index}]"
    _check_keys(path, f"{where}.", block, BLOCK_KEYS)
    if "runtime" not in block:
        raise MatrixError(path, f"{where}.runtime", f"is required; known runtimes: {_allowed(list(RUNTIMES))}")
    runtimes = [_choice(path, f"{where}.runtime", r, tuple(RUNTIMES))
                for r in _as_axis(path, f"{where}.runtime", block["runtime"])]
    model = _model(path, f"{where}.model", block["model"], allow_any_factory) if "model" in block else top["model"]
    if model is None:
        raise MatrixError(path, "model", "is required (at the top or in every jobs block)")
    measure = {**top["measure"], **(_measure(path, f"{where}.measure", block["measure"]) if "measure" in block else {})}
    fidelity = _fidelity_spec(top["fidelity"], _fidelity(path, f"{where}.fidelity", block["fidelity"])
                              if "fidelity" in block else {}, model)
    device_axis = _as_axis(path, f"{where}.device", block.get("device", top["device"]))
    devices = [_device(path, f"{where}.device", d) for d in device_axis]
    for axis in RUNTIME_AXES:
        if axis in block:
            for rt in runtimes:
                if axis not in RUNTIMES[rt].axes:
                    users = [r for r, spec in RUNTIMES.items() if axis in spec.axes]
                    raise MatrixError(path, f"{where}.{axis}",
                                      f"does not apply to runtime {rt}; it applies to: {_allowed(users) or 'none yet'}")
    precisions = _as_axis(path, f"{where}.model_precision", block.get("model_precision", "fp32"))
    for p in precisions:
        _choice(path, f"{where}.model_precision", p, PRECISIONS)
    amps = [_choice(path, f"{where}.amp_dtype", a, AMP_DTYPES)
            for a in _as_axis(path, f"{where}.amp_dtype", block.get("amp_dtype", "fp32"))]
    enabled = _enabled_axis(path, f"{where}.enabled_precisions", block.get("enabled_precisions", ["fp32"]))
    modes = [_choice(path, f"{where}.compile_mode", m, COMPILE_MODES)
             for m in _as_axis(path, f"{where}.compile_mode", block.get("compile_mode", "default"))]
    graphs = [_cuda_graphs(path, f"{where}.cuda_graphs", g)
              for g in _as_axis(path, f"{where}.cuda_graphs", block.get("cuda_graphs", False))]
    tf32s = [_tf32(path, f"{where}.tf32", t) for t in _as_axis(path, f"{where}.tf32", block["tf32"])] \
        if "tf32" in block else [""]
    rules = _exclude_rules(path, f"{where}.exclude", block["exclude"]) if "exclude" in block else []
    return _Block(where=where, model=model, measure=measure, fidelity=fidelity,
                  axes=(runtimes, devices, precisions, amps, enabled, modes, graphs, tf32s), rules=rules)


def _expand_block(path: Path, block: _Block, name: str) -> Iterator[Job]:
    where, measure = block.where, block.measure
    for rt, device, precision, amp, ep, mode, graph, tf32 in itertools.product(*block.axes):
        spec = RUNTIMES[rt]
        values = {"runtime": rt, "device": device, "model_precision": precision, "amp_dtype": amp,
                  "enabled_precisions": ep, "compile_mode": mode, "cuda_graphs": graph, "tf32": tf32}
        if any(_matches(rule, values) for rule in block.rules):
            continue  # before the checks below: exclude is how a block drops what one runtime can't do
        if precision not in spec.precisions:
            raise MatrixError(path, f"{where}.model_precision",
                              f"{precision} is not supported by {rt}; allowed: {_allowed(spec.precisions)}")
        has = spec.axes
        if "enabled_precisions" in has:
            low = low_precision(precision)
            if low is not None and low not in ep:
                raise MatrixError(path, f"{where}.enabled_precisions",
                                  f"model_precision {precision} needs {low} among the enabled precisions, got "
                                  f"{'+'.join(ep)}")
        cuda = device.startswith("cuda")
        if graph and not cuda:
            raise MatrixError(path, f"{where}.cuda_graphs",
                              f"on needs a CUDA device, got device {device}; allowed on {device}: off")
        if tf32 and not cuda:
            raise MatrixError(path, f"{where}.tf32", f"applies to CUDA devices only, got device {device}; "
                                                     f"allowed: on, off with device cuda or cuda:N")
        yield Job(
            runtime=rt,
            model=block.model,
            device=device,
            model_precision=precision,
            amp_dtype=amp if "amp_dtype" in has else "",
            enabled_precisions=ep if "enabled_precisions" in has else (),
            compile_mode=mode if "compile_mode" in has else "",
            cuda_graphs=graph,
            tf32=tf32 if precision in FP32_WEIGHTS else "",  # fp16 / bf16 weights: nothing in TF32 to switch
            warmup=measure["warmup"],
            iters=measure["iters"],
            seed=measure["seed"],
            matrix=name,
            timeout_s=float(measure["timeout_s"]),
            processes=measure.get("processes") or (CUDA_PROCESSES if cuda else 1),
            memory_limit_gb=float(measure["memory_limit_gb"]) if "memory_limit_gb" in measure else None,
            fidelity=block.fidelity,
        )


def load(path: Path | str, *, allow_any_factory: bool = False, max_jobs: int = DEFAULT_MAX_JOBS) -> Matrix:
    """Read, validate and expand a matrix file. Raises MatrixError naming file, key and allowed values.

    Imports nothing from the model: factories are read as source (sweep.factory), built-ins come from the
    torch-free catalog. `allow_any_factory` lifts the factory policy (standard-library modules). A matrix
    whose blocks multiply to more than `max_jobs` combinations is refused before any job is made.
    """
    path = Path(path)
    data = read_yaml(path)
    _check_keys(path, "", data, TOP_KEYS)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not re.match(r"^[\w.-]+$", name):
        raise MatrixError(path, "name", f"must be letters, digits, '.', '_' or '-', got {_quote(name)}")
    top = {
        "model": _model(path, "model", data["model"], allow_any_factory) if "model" in data else None,
        "device": _device(path, "device", data.get("device", "cpu")),
        "measure": {**MEASURE_DEFAULTS, **_measure(path, "measure", data.get("measure", {}))},
        "fidelity": _fidelity(path, "fidelity", data["fidelity"]) if "fidelity" in data else {},
    }
    blocks = data.get("jobs")
    if not isinstance(blocks, list) or not blocks:
        raise MatrixError(path, "jobs", "must be a non-empty list of job blocks (each with a runtime)")
    parsed = [_parse_block(path, index, _mapping(path, f"jobs[{index}]", block), top, allow_any_factory)
              for index, block in enumerate(blocks)]
    total = sum(block.combinations for block in parsed)
    if total > max_jobs:
        biggest = max(parsed, key=lambda b: b.combinations)
        raise MatrixError(path, "jobs", f"would expand to {total:,} jobs (before exclude rules and duplicates; "
                                        f"{biggest.where} alone {biggest.combinations:,}), more than --max-jobs "
                                        f"{max_jobs:,}; split the matrix or raise --max-jobs")
    jobs: dict[str, Job] = {}
    for block in parsed:
        for job in _expand_block(path, block, name):
            jobs.setdefault(job.key, job)
    if not jobs:
        raise MatrixError(path, "jobs", "every combination is excluded; nothing to run")
    return Matrix(name=name, path=path, jobs=tuple(jobs.values()))
