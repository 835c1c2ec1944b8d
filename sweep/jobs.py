"""Frozen job identity: what is measured, with a stable key (hash of its canonical JSON)."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

PRECISIONS = ("fp32", "fp16", "bf16", "fp32+fp16", "fp32+bf16")
AMP_DTYPES = ("fp32", "fp16", "bf16")
TRT_PRECISIONS = ("fp32", "bf16", "fp16")  # canonical order of the seed's labels: fp32+bf16+fp16
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
TF32_MODES = ("on", "off")  # and "" for PyTorch's default (cuDNN TF32 on, matmul TF32 off)
FIDELITY_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")  # compute precisions a tolerance is given for
FIDELITY_MEASURES = ("elementwise", "sorted")


def canonical_key(identity: Any, length: int = 20) -> str:
    """Hash of the canonical JSON (sorted keys, no spaces): equal identities, equal keys, on any machine."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def precision_label(precisions: tuple[str, ...]) -> str:
    """The seed's label for a set of precisions, e.g. ('fp16', 'fp32', 'bf16') -> 'fp32+bf16+fp16'."""
    return "+".join(p for p in TRT_PRECISIONS if p in precisions)


def low_precision(model_precision: str) -> str | None:
    """The reduced dtype a model precision asks for: 'fp32+fp16' -> 'fp16', 'bf16' -> 'bf16', 'fp32' -> None."""
    low = model_precision.split("+")[-1]
    return None if low == "fp32" else low


@dataclass(frozen=True)
class ModelSpec:
    """Which model, at which input shapes; enough to build it again anywhere."""

    kind: str  # builtin | factory | torchscript | exported
    ref: str  # builtin name, "module:function", or the model file's absolute path
    input_shapes: tuple[tuple[int, ...], ...]
    input_range: tuple[float, float] = (-1.0, 1.0)
    options: tuple[tuple[str, Any], ...] = ()  # keyword arguments for the builder, sorted
    checkpoint: str | None = None
    content_hash: str = ""  # sha256 of the model file / checkpoint: a changed file is a new model
    root: str = field(default="", compare=False)  # folder of the matrix, importable for factories

    @property
    def label(self) -> str:
        """Short name for tables: the builtin or factory name, or the file name."""
        return self.ref.rsplit("/", 1)[-1] if self.kind in ("torchscript", "exported") else self.ref

    @property
    def key(self) -> str:
        """Hash of the model's identity (which model, shapes, options, weights' content): rows' model_key."""
        return canonical_key(self.identity())

    def identity(self) -> dict[str, Any]:
        ref = self.label if self.content_hash and self.kind in ("torchscript", "exported") else self.ref
        return {
            "kind": self.kind,
            "ref": ref,
            "input_shapes": [list(s) for s in self.input_shapes],
            "input_range": list(self.input_range),
            "options": dict(self.options),
            "checkpoint": bool(self.checkpoint),
            "content_hash": self.content_hash,
        }

    def to_runner(self) -> dict[str, Any]:
        """The `model` object of job.json (runners/README.md)."""
        return {
            "kind": self.kind,
            "name": self.ref if self.kind == "builtin" else None,
            "factory": self.ref if self.kind == "factory" else None,
            "path": self.ref if self.kind in ("torchscript", "exported") else None,
            "root": self.root,
            "options": dict(self.options),
            "checkpoint": self.checkpoint,
        }

    def inputs(self) -> list[dict[str, Any]]:
        low, high = self.input_range
        return [{"shape": list(s), "low": low, "high": high} for s in self.input_shapes]


@dataclass(frozen=True)
class FidelitySpec:
    """How a job's outputs are judged against the fp32 reference. Not part of the job key: the row records
    what it was judged with, so a changed tolerance re-judges stored measurements instead of re-running them."""

    tolerance: tuple[tuple[str, float], ...] = ()  # (precision, tolerance) the matrix sets, sorted; sweep.fidelity
    measure: str = "elementwise"  # elementwise | sorted          has the defaults for the rest
    outputs: tuple[int, ...] | None = None  # indices of the judged outputs (flattened, pytree order); None: all

    def to_dict(self) -> dict[str, Any]:
        return {"tolerance": dict(self.tolerance), "measure": self.measure,
                "outputs": list(self.outputs) if self.outputs is not None else None}


@dataclass(frozen=True)
class Job:
    """One measurement: a runtime, a model, its precision settings, a device and how to measure.

    The key covers everything that changes the numbers; the matrix name, the timeout, the number of
    processes, the memory limit and how fidelity is judged do not. Fields added after keys were first
    stored enter the identity only when they differ from their default, so the jobs that existed before
    keep their keys (rows are matched across versions by job_key).
    """

    runtime: str
    model: ModelSpec
    device: str
    model_precision: str = "fp32"
    amp_dtype: str = ""  # "" where the runtime has no autocast axis
    enabled_precisions: tuple[str, ...] = ()  # canonical order (TRT_PRECISIONS)
    compile_mode: str = ""
    cuda_graphs: bool = False  # capture one forward after warm-up, replay it in the timed loop
    tf32: str = ""  # "on" | "off" | "" (PyTorch's default); "" where weights are fp16 / bf16
    warmup: int = 10
    iters: int = 100
    seed: int = 0
    matrix: str = field(default="", compare=False)
    timeout_s: float = field(default=900.0, compare=False)
    processes: int = field(default=1, compare=False)  # fresh processes, each one sample of the job
    memory_limit_gb: float | None = field(default=None, compare=False)  # per runner process
    fidelity: FidelitySpec = field(default=FidelitySpec(), compare=False)

    def identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = {
            "runtime": self.runtime,
            "model": self.model.identity(),
            "device": self.device,
            "model_precision": self.model_precision,
            "amp_dtype": self.amp_dtype,
            "enabled_precisions": list(self.enabled_precisions),
            "compile_mode": self.compile_mode,
            "warmup": self.warmup,
            "iters": self.iters,
            "seed": self.seed,
        }
        if self.cuda_graphs:
            identity["cuda_graphs"] = True
        if self.tf32:
            identity["tf32"] = self.tf32
        return identity

    @functools.cached_property
    def key(self) -> str:
        """Computed once per job (a frozen dataclass: nothing it hashes can change)."""
        return canonical_key(self.identity())

    @property
    def enabled_label(self) -> str:
        return precision_label(self.enabled_precisions)

    def describe(self) -> str:
        """One line for progress bars and logs."""
        parts = [self.runtime, self.model.label, self.model_precision]
        if self.amp_dtype and self.amp_dtype != "fp32":
            parts.append(f"amp={self.amp_dtype}")
        if self.enabled_precisions:
            parts.append(f"trt={self.enabled_label}")
        if self.compile_mode:
            parts.append(f"mode={self.compile_mode}")
        if self.cuda_graphs:
            parts.append("graphs")
        if self.tf32:
            parts.append(f"tf32={self.tf32}")
        parts.append(self.device)
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Identity plus the non-identity fields, as `sweep plan --json` prints it."""
        return {"job_key": self.key, "model_key": self.model.key, "matrix": self.matrix, "timeout_s": self.timeout_s,
                "processes": self.processes, "memory_limit_gb": self.memory_limit_gb,
                "fidelity": self.fidelity.to_dict(), "cuda_graphs": self.cuda_graphs, "tf32": self.tf32,
                **self.identity()}
