"""The host under a row's timed loop (extra.host): a core slowed from outside, by its CPU canary; other work."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

# A process ran on a slowed host when the slower of its two CPU canaries (extra.host.cpu_canary_ms: the best of
# 5 runs of a fixed pure-Python loop, read just before and just after the timed loop) exceeds SLOWED times the
# machine's reference: the lowest canary of any row of that machine in the result set at hand, so the threshold
# adapts to each machine's CPU. On the H200 VMs a normal core reads 0.95-1.05 ms and a core slowed from outside
# the VM 1.5-1.9 ms; over 18 processes (visit E) every process whose p50 read slow was flagged at 1.3x, and
# every process with both canaries under it read fast (2 of 6 flagged ones were fast: an indicator, not proof).
SLOWED = 1.3
# A process ran on a busy host when more than this many CPUs' worth of other work ran on the machine during its
# timed loop (extra.host.other_cpus_busy): the sweep was measured beside other work.
BUSY_CPUS = 1.0
# other_cpus_busy comes from /proc/stat, which counts in ticks of 10 ms per CPU: over a loop of a few ms one tick
# reads as several CPUs' worth (a 5 ms CPU loop read 3.6 on an idle 2-core machine). Below this loop length the
# figure is unknown; at 0.5 s a tick is 0.02 CPU.
BUSY_MIN_LOOP_S = 0.5


class Count(NamedTuple):
    """How many of a job's processes were flagged, of those whose rows have the figure."""

    flagged: int
    known: int


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def figures(extra: Any) -> Mapping[str, Any]:
    """extra.host of a row (extra is JSON text); empty for rows without it (older rows, C++ runners)."""
    if isinstance(extra, str):
        try:
            extra = json.loads(extra) if extra else {}
        except ValueError:
            return {}
    host = extra.get("host") if isinstance(extra, Mapping) else None
    return host if isinstance(host, Mapping) else {}


def canaries(host: Mapping[str, Any]) -> list[float]:
    """The row's canary readings in ms (before and after the timed loop), positive and finite only."""
    values = host.get("cpu_canary_ms")
    if not isinstance(values, (list, tuple)):
        return []
    return [v for v in (_finite(x) for x in values) if v is not None and v > 0]


def other_cpus_busy(host: Mapping[str, Any]) -> float | None:
    """Other work on the machine during the loop, in CPUs; None when not recorded or the loop was too short
    (BUSY_MIN_LOOP_S) for /proc/stat's ticks to tell."""
    loop = _finite(host.get("loop_s"))
    return _finite(host.get("other_cpus_busy")) if loop is not None and loop >= BUSY_MIN_LOOP_S else None


def reference(readings: Iterable[float]) -> float | None:
    """A machine's reference canary: the lowest reading of any of its rows (None when none has one)."""
    return min(readings, default=None)


def slowed(readings: list[float], machine_reference: float | None) -> bool | None:
    """Whether the slower canary of a row exceeds SLOWED × the machine's reference; None without the data."""
    if not readings or machine_reference is None:
        return None
    return max(readings) > SLOWED * machine_reference


def busy(other: float | None) -> bool | None:
    return None if other is None else other > BUSY_CPUS


def count(flags: Iterable[bool | None]) -> Count | None:
    """Flagged of known; None when no flag is known (rows without extra.host: unknown, never flagged)."""
    known = [f for f in flags if f is not None]
    return Count(sum(known), len(known)) if known else None
