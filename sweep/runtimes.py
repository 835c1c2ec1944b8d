"""The registry of runtimes: an explicit dict of name -> how to run it and which matrix axes apply."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from sweep.jobs import AMP_DTYPES, PRECISIONS

NATIVE_BINARY = Path(__file__).resolve().parent.parent / "native" / "build" / "sweep-bench"


@dataclass(frozen=True)
class Runtime:
    """How a runtime is launched and which axes of the matrix it accepts."""

    name: str
    runner: str  # python module run as `python -m <runner>`, or "native" for native/build/sweep-bench
    precisions: tuple[str, ...]  # allowed model_precision values
    axes: tuple[str, ...] = ()  # extra axes that apply: amp_dtype | enabled_precisions | compile_mode
    artifact: str | None = None  # compiled variant kind the job needs (sweep.compile), None for none
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
        axes=("amp_dtype",),
        description="PyTorch eager, optional autocast (the seed's 'Python Runtime, no TensorRT')",
    ),
}

AXIS_VALUES: dict[str, tuple[str, ...]] = {
    "model_precision": PRECISIONS,
    "amp_dtype": AMP_DTYPES,
}


def get(name: str) -> Runtime:
    return RUNTIMES[name]
