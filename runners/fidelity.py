"""Fidelity, torch side: a job's saved outputs against the fp32 reference, as result.json's `fidelity` object.

Runners call `judge` in-process right after they save their outputs. The C++ runner cannot, so the parent
runs this module for its rows and reads the same object from stdout:

    python -m runners.fidelity --outputs O.pt --reference R.pt [--sha256 HEX] --spec '{"measure": ..., "outputs": ...}'

Exit 0 with the object on stdout; exit 1 with one line on stderr when the reference is damaged (its sha256
differs from the one recorded) or a file cannot be read: never a silent skip.

The figures, all in float64:
- `rel_err`: relative L2 error over the judged floating outputs together, element-wise;
- `rel_err_sorted`: the same on each output's sorted values, blind to reordered near-ties (top-k lists);
- `max_abs_err`: the largest absolute difference in the judged floating outputs;
- `int_mismatch`: the share of judged integer elements (e.g. class labels) that differ;
- `error`: the judged figure, the largest per-output relative L2 error under the requested measure
  (`elementwise` or `sorted`) over the judged outputs: what the verdict compares with the tolerance;
- `finite`: false when an output holds NaN or inf where the reference does not (a non-finite output always
  fails, whatever its error);
- `note`: why `error` is null (no floating output to judge, a judged index that does not exist), else "".
Outputs of a different structure (count or shapes) give an infinite error: a wrong variant must show.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from sweep.digest import sha256_file

MEASURES = ("elementwise", "sorted")


class ReferenceDamaged(Exception):
    """The reference file is missing or differs from the sha256 recorded for it."""


def verify_reference(reference: Mapping[str, Any]) -> Path:
    """The reference's path after checking its sha256; ReferenceDamaged if it is missing or changed."""
    path = Path(str(reference.get("path", "")))
    expected = str(reference.get("sha256") or "")
    if not path.is_file():
        raise ReferenceDamaged(f"reference outputs {path} do not exist")
    if not expected:
        raise ReferenceDamaged(f"reference outputs {path} come without a sha256 to verify them with")
    actual = sha256_file(path)
    if actual != expected:
        raise ReferenceDamaged(f"reference outputs {path} are damaged: sha256 {actual[:16]}... differs from "
                               f"the recorded {expected[:16]}...; delete its folder so the reference is recomputed")
    return path


def load_outputs(path: Path) -> list[torch.Tensor]:
    """A saved outputs file (Python's torch.save or the C++ runner's untagged pickle) as a list of tensors."""
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    items = list(loaded) if isinstance(loaded, (list, tuple)) else [loaded]
    return [t if isinstance(t, torch.Tensor) else torch.tensor(t) for t in items]


def _figures(o: torch.Tensor, r: torch.Tensor) -> tuple[float, float, float, float, bool]:
    """(squared diff, squared sorted diff, squared reference, max abs diff, finite) of one floating output.

    Positions where output and reference hold the same infinity agree; any other non-finite value in the
    output makes it non-finite."""
    o64, r64 = o.detach().double().flatten(), r.detach().double().flatten()
    same = o64 == r64  # equal infinities included
    finite = bool((torch.isfinite(o64) | same).all())
    if not finite:
        return math.inf, math.inf, 0.0, math.inf, False
    diff = torch.where(same, torch.zeros_like(o64), o64 - r64)
    ref_part = torch.where(torch.isfinite(r64), r64, torch.zeros_like(r64))
    o_sorted, r_sorted = o64.sort().values, r64.sort().values
    sorted_diff = torch.where(o_sorted == r_sorted, torch.zeros_like(o_sorted), o_sorted - r_sorted)
    if not bool(torch.isfinite(sorted_diff).all()):  # infinities at different places: the values differ
        sorted_sq = math.inf
    else:
        sorted_sq = float(sorted_diff.pow(2).sum())
    max_abs = float(diff.abs().max()) if diff.numel() else 0.0
    return float(diff.pow(2).sum()), sorted_sq, float(ref_part.pow(2).sum()), max_abs, True


def _relative(num: float, den: float) -> float:
    if den > 0:
        return math.sqrt(num / den)
    return 0.0 if num == 0 else math.inf


def compare(outputs: Sequence[torch.Tensor], reference: Sequence[torch.Tensor], measure: str = "elementwise",
            judged: Sequence[int] | None = None) -> dict[str, Any]:
    """The fidelity object (module docstring) of `outputs` against `reference`."""
    if measure not in MEASURES:
        raise ValueError(f"fidelity measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    inf = math.inf
    if len(outputs) != len(reference) or any(o.shape != r.shape for o, r in zip(outputs, reference, strict=False)):
        shapes = [tuple(t.shape) for t in outputs], [tuple(t.shape) for t in reference]
        return {"rel_err": inf, "rel_err_sorted": inf, "max_abs_err": inf, "int_mismatch": 1.0, "error": inf,
                "finite": True,
                "note": f"outputs differ in structure from the reference: {shapes[0]} vs {shapes[1]}"[:300]}
    indices = list(range(len(reference))) if judged is None else [int(i) for i in judged]
    missing = [i for i in indices if not -len(reference) <= i < len(reference)]
    num = sorted_num = den = 0.0
    max_abs = 0.0
    int_diff = int_total = 0
    finite = True
    per_output: list[float] = []
    for i in indices:
        if i in missing:
            continue
        o, r = outputs[i], reference[i]
        if r.is_floating_point() or r.is_complex():
            sq, sorted_sq, ref_sq, abs_err, ok = _figures(o, r)
            finite = finite and ok
            num, sorted_num, den = num + sq, sorted_num + sorted_sq, den + ref_sq
            max_abs = max(max_abs, abs_err)
            per_output.append(_relative(sorted_sq if measure == "sorted" else sq, ref_sq) if ok else inf)
        else:
            int_diff += int((o != r).sum())
            int_total += r.numel()
    result: dict[str, Any] = {
        "rel_err": _relative(num, den) if finite else inf,
        "rel_err_sorted": _relative(sorted_num, den) if finite else inf,
        "max_abs_err": max_abs,
        "int_mismatch": int_diff / int_total if int_total else 0.0,
        "error": max(per_output) if per_output else None,
        "finite": finite,
        "note": "",
    }
    if missing:
        result["error"] = None
        result["note"] = (f"judged output(s) {missing} do not exist: the model returns {len(reference)} "
                          f"output(s) (indices 0..{len(reference) - 1})")
    elif not per_output:
        result["note"] = "no floating-point output to judge among the judged outputs"
    return result


def judge(outputs: Sequence[torch.Tensor], reference: Mapping[str, Any],
          spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """Verify the reference, load it, and compare under the job's fidelity spec (measure, outputs)."""
    path = verify_reference(reference)
    spec = spec or {}
    return compare(outputs, load_outputs(path), str(spec.get("measure") or "elementwise"), spec.get("outputs"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare saved outputs with a reference; print the fidelity object.")
    parser.add_argument("--outputs", required=True, type=Path)
    parser.add_argument("--reference", required=True, type=Path)
    parser.add_argument("--sha256", default="", help="the reference's recorded sha256 (else taken from --spec)")
    parser.add_argument("--spec", default="{}",
                        help='JSON: {"measure": "elementwise"|"sorted", "outputs": [i, ...]|null}')
    args = parser.parse_args(argv)
    try:
        spec = json.loads(args.spec)
        if not isinstance(spec, dict):
            raise ValueError("--spec must be a JSON object")
        reference = {"path": str(args.reference), "sha256": args.sha256 or spec.get("sha256", "")}
        result = judge(load_outputs(args.outputs), reference, spec)
    except (ReferenceDamaged, ValueError, OSError, RuntimeError) as exc:
        print(f"runners.fidelity: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
