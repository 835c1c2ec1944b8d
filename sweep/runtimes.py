"""The registry of runtimes: an explicit dict of name -> how to run it and which matrix axes apply."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from sweep.jobs import PRECISIONS
from sweep.paths import NATIVE_BINARY

__all__ = ["NATIVE_BINARY", "RUNTIMES", "Runtime", "uses_tensorrt"]


@dataclass(frozen=True)
class Runtime:
    """How a runtime is launched and which axes of the matrix it accepts."""

    name: str
    runner: str  # python module run as `python -m <runner>`, or "native" for native/build/sweep-bench
    precisions: tuple[str, ...]  # allowed model_precision values
    # extra axes that apply: amp_dtype | enabled_precisions | compile_mode | cuda_graphs | tf32
    axes: tuple[str, ...] = ()
    artifact: str | None = None  # compiled variant kind the job needs (sweep.compile), None for none
    tensorrt: bool = False  # runs TensorRT engines: read uses_tensorrt(), the one answer
    description: str = ""

    def command(self) -> list[str]:
        if self.runner == "native":
            return [str(NATIVE_BINARY)]
        return [sys.executable, "-m", self.runner]


RUNTIMES: dict[str, Runtime] = {
    "python-eager": Runtime(
        name="python-eager",
        runner="runners.python_eager",
        precisions=("fp32", "fp16", "bf16"),
        axes=("amp_dtype", "cuda_graphs", "tf32"),
        description="PyTorch eager, optional autocast (the seed's 'Python Runtime, no TensorRT')",
    ),
    # Compiled runtimes. `artifact` is the kind of file sweep.compile builds for them; runtimes whose kinds
    # come from the same backend (aoti; trt's .ep and .ts) share one compiled variant.
    "python-inductor": Runtime(
        name="python-inductor",
        runner="runners.python_inductor",
        precisions=PRECISIONS,
        axes=("compile_mode", "tf32"),
        description="torch.compile (Inductor); mixed precisions under autocast; compile time kept out of samples",
    ),
    "python-aoti": Runtime(
        name="python-aoti",
        runner="runners.python_aoti",
        precisions=PRECISIONS,
        axes=("cuda_graphs", "tf32"),
        artifact="aoti",
        description="AOTInductor package (torch.export + aoti_compile_and_package), loaded from Python",
    ),
    "python-trt": Runtime(
        name="python-trt",
        runner="runners.python_trt",
        precisions=PRECISIONS,
        axes=("enabled_precisions",),
        artifact="exported-trt",
        tensorrt=True,
        description="torch-tensorrt dynamo compile, run from Python (the seed's 'Python Runtime with TensorRT')",
    ),
    "cpp-torchscript": Runtime(
        name="cpp-torchscript",
        runner="native",
        precisions=PRECISIONS,
        axes=("cuda_graphs", "tf32"),
        artifact="torchscript",
        description="traced TorchScript run by the C++ binary (libtorch)",
    ),
    "cpp-aoti": Runtime(
        name="cpp-aoti",
        runner="native",
        precisions=PRECISIONS,
        axes=("cuda_graphs", "tf32"),
        artifact="aoti",
        description="AOTInductor package run by the C++ binary",
    ),
    "cpp-trt": Runtime(
        name="cpp-trt",
        runner="native",
        precisions=PRECISIONS,
        axes=("enabled_precisions",),
        artifact="torchscript-trt",
        tensorrt=True,
        description="torch-tensorrt compile saved as TorchScript, run by the C++ binary "
                    "(the seed's 'C++ Runtime with TensorRT')",
    ),
}


def uses_tensorrt(runtime: str) -> bool:
    """Whether a runtime runs TensorRT engines (so its results also depend on the torch-tensorrt and TensorRT
    versions, and it needs them installed). Unknown names (rows of a removed runtime) answer False."""
    spec = RUNTIMES.get(runtime)
    return spec is not None and spec.tensorrt
