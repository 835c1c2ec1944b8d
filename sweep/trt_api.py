"""Map a matrix's TensorRT precision request onto the compile API of the installed torch-tensorrt (pure).

torch-tensorrt changed what `enabled_precisions` means three times, and two of those changes are silent
(a precision that is asked for and not honoured gives an fp32 engine, no warning). So the mapping is
explicit, per version, and anything a version cannot express is refused with a reason rather than run
as something else. Sources (checked before writing this):

- <= 2.9: `use_explicit_typing` defaults to False (`torch_tensorrt/dynamo/_defaults.py`,
  USE_EXPLICIT_TYPING = False): TensorRT's weak typing picks kernels among `enabled_precisions`.
  Since 2.8 `_compiler.py` asserts that `use_explicit_typing=True` goes with enabled_precisions == {fp32}
  (HolyWu/vs-rife#78 traces the assertion to 2.8.0).
- 2.10: `_defaults.py` flips USE_EXPLICIT_TYPING to True (vs-rife#78: "from 2.10.0 -> USE_EXPLICIT_TYPING =
  True"), so passing a lower precision without `use_explicit_typing=False` raises
  "use_explicit_typing was set to True, however found that enabled_precisions was also specified"
  (pytorch/TensorRT#4070). The same release adds rule-based autocast, pytorch/TensorRT#3878 (merged
  2025-10/11): `enable_autocast`, `autocast_low_precision_type` (torch.float16 | torch.bfloat16),
  `autocast_excluded_nodes`, `autocast_excluded_ops`, ... in `_settings.py` / `_defaults.py`
  (ENABLE_AUTOCAST = False, AUTOCAST_LOW_PRECISION_TYPE = None); "If enabled, use_explicit_typing will be
  set to True". Weak typing still works (TensorRT 10.x deprecated it in 10.12 but keeps it), and it is
  what the seed's `enabled_precisions` meant, so 2.10 - 2.12 keep using it.
- >= 2.13: built for TensorRT 11, where networks are always strongly typed and the precision builder flags
  are gone (TensorRT 10.x -> 11.x migration guide: BuilderFlag.FP16 / BF16 removed). torch-tensorrt drops
  `enabled_precisions` (pytorch/TensorRT#4099 "Deprecate the enabled_precisions on TRT 11", done
  2026-07-30) and `use_explicit_typing`; the NVIDIA TensorRT cookbook's strong-typing example shows
  `enabled_precisions={torch.float16}` still compiling, silently, to fp32. Precision now comes from the
  model's dtypes (weights cast to fp16 / bf16, or casts recorded by torch.autocast at export) or from
  torch-tensorrt's autocast, which takes ONE low-precision type.

Dtype values in the returned kwargs are the matrix's names ("fp32", "fp16", "bf16"), so this module needs
neither torch nor TensorRT; the compile runner turns them into torch dtypes.
"""

from __future__ import annotations

import re
from typing import Any

from sweep.jobs import PRECISIONS, TRT_PRECISIONS, low_precision

WEAK_TYPING_DEFAULT_UNTIL = (2, 9)  # use_explicit_typing defaults to False up to and including 2.9
AUTOCAST_SINCE = (2, 10)  # enable_autocast / autocast_low_precision_type (pytorch/TensorRT#3878)
STRONG_TYPING_ONLY_SINCE = (2, 13)  # enabled_precisions and use_explicit_typing removed (TensorRT 11)
INSTALL_HINT = "pip install 'sweep[trt]'"


class TrtUnsupported(ValueError):
    """The installed torch-tensorrt cannot express the requested precisions: the job is `unsupported`."""

    @property
    def reason(self) -> str:
        return str(self)


def parse_version(version: str) -> tuple[int, int]:
    """(major, minor) of a torch-tensorrt version such as '2.10.0+cu130' or '2.13.0.dev20260801'."""
    match = re.match(r"^\s*v?(\d+)\.(\d+)", version or "")
    if not match:
        raise TrtUnsupported(f"cannot read the torch-tensorrt version {version!r}; reinstall it with {INSTALL_HINT}")
    return int(match.group(1)), int(match.group(2))


def api_generation(version: str) -> str:
    """'weak' (<= 2.9), 'explicit-default' (2.10 - 2.12) or 'strong' (>= 2.13): how enabled_precisions behaves."""
    v = parse_version(version)
    if v <= WEAK_TYPING_DEFAULT_UNTIL:
        return "weak"
    if v < STRONG_TYPING_ONLY_SINCE:
        return "explicit-default"
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
    returns kwargs under which a requested lower precision would silently become fp32.
    """
    unknown = [p for p in enabled_precisions if p not in TRT_PRECISIONS]
    if unknown:
        raise TrtUnsupported(f"unknown enabled precision(s) {unknown}; allowed: {', '.join(TRT_PRECISIONS)}")
    enabled = tuple(p for p in TRT_PRECISIONS if p in enabled_precisions)
    _check_request(model_precision, enabled)
    generation = api_generation(version)
    lows = [p for p in enabled if p != "fp32"]
    if generation == "weak":
        # Weak typing is the default: TensorRT picks among the enabled kernels. Omit use_explicit_typing
        # (absent before ~2.5, False by default after) rather than pass a name an old release rejects.
        return {"enabled_precisions": list(enabled)}
    if generation == "explicit-default":
        if not lows:
            # enabled == {fp32}: the only set use_explicit_typing=True accepts; the graph's own dtypes rule.
            return {"use_explicit_typing": True}
        # Lower precisions need weak typing back (deprecated in these releases, still honoured).
        return {"enabled_precisions": list(enabled), "use_explicit_typing": False}
    # >= 2.13: strongly typed, no enabled_precisions. One autocast low type at most.
    if len(lows) > 1:
        raise TrtUnsupported(
            f"torch-tensorrt {version} types networks strongly and its autocast takes one low-precision type; "
            f"enabled_precisions {'+'.join(enabled)} mixes {' and '.join(lows)} and cannot be expressed "
            f"(use fp32+fp16 or fp32+bf16, or torch-tensorrt < 2.13 for weak typing)")
    if parse_version(version) < AUTOCAST_SINCE:  # unreachable with today's table; kept for clarity
        raise TrtUnsupported(f"torch-tensorrt {version} has neither weak typing nor autocast")
    if not lows:
        return {}  # fp32 everywhere: the graph's own dtypes
    low = lows[0]
    if model_precision in ("fp16", "bf16"):
        return {}  # weights and inputs are already `low`: strong typing keeps them so
    # fp32 (or fp32 + torch.autocast casts) with `low` allowed: let TensorRT's autocast lower what its
    # rules allow, as weak typing let the builder do; torch.autocast regions in the graph are respected.
    return {"enable_autocast": True, "autocast_low_precision_type": low}
