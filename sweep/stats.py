"""Statistics of the raw per-iteration samples, derived in this one place for every row and report."""

from __future__ import annotations

import math
from collections.abc import Sequence

NOISY_CV = 0.02  # coefficient of variation above which a measurement is flagged noisy (DESIGN.md: 1-2 %)

STAT_NAMES = ("mean", "std", "p50", "p90", "p99", "min", "cv")


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so results match numpy/pandas."""
    n = len(sorted_samples)
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> dict[str, float | None]:
    """mean, std (sample, n-1), p50, p90, p99, min, cv of the samples; all None when there are none."""
    if not samples:
        return {name: None for name in STAT_NAMES}
    s = sorted(float(x) for x in samples)
    n = len(s)
    mean = math.fsum(s) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in s) / (n - 1)) if n > 1 else 0.0
    return {
        "mean": mean,
        "std": std,
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "min": s[0],
        "cv": std / mean if mean > 0 else None,
    }
