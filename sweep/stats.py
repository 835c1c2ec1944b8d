"""Statistics in one place: per-row sample summaries, the spread between processes, and the significance test."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

NOISY_CV = 0.02  # coefficient of variation above which a measurement is flagged noisy (DESIGN.md: 1-2 %)
LAUNCH_BOUND_BUSY = 0.5  # kernel-busy time below half of the p50: the GPU idles more than it works (issue 9.4)
MIN_PROCESSES = 3  # from this many processes on both sides, the noise between processes decides significance
SAMPLES_P = 0.002  # two-sided p-value a within-process comparison must beat (asv's default p_threshold)

STAT_NAMES = ("mean", "std", "p50", "p90", "p99", "min", "cv")


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so results match numpy/pandas."""
    n = len(sorted_samples)
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    return sorted_samples[lo] + (sorted_samples[hi] - sorted_samples[lo]) * (pos - lo)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n-1; 0 for one value)."""
    n = len(values)
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarize(samples: Sequence[float]) -> dict[str, float | None]:
    """mean, std (sample, n-1), p50, p90, p99, min, cv of the samples; all None when there are none."""
    if not samples:
        return {name: None for name in STAT_NAMES}
    s = sorted(float(x) for x in samples)
    mean, std = mean_std(s)
    return {
        "mean": mean,
        "std": std,
        "p50": percentile(s, 50),
        "p90": percentile(s, 90),
        "p99": percentile(s, 99),
        "min": s[0],
        "cv": std / mean if mean > 0 else None,
    }


# ---------------------------------------------------------------- between processes (issue 9.3)


@dataclass(frozen=True)
class Spread:
    """A job's figure across its fresh processes: one process is one sample (pyperf), so the median of the
    process p50s is the job's p50 and min-max and CV of those p50s are its noise between processes."""

    n: int
    median: float
    low: float
    high: float
    cv: float | None  # std (n-1) / mean of the process p50s; None for fewer than 2 processes

    def overlaps(self, other: Spread) -> bool:
        return self.low <= other.high and other.low <= self.high


def spread(p50s: Sequence[float]) -> Spread | None:
    """None when no process has a p50."""
    if not p50s:
        return None
    s = sorted(float(x) for x in p50s)
    mean, std = mean_std(s)
    cv = std / mean if len(s) > 1 and mean > 0 else None
    return Spread(len(s), percentile(s, 50), s[0], s[-1], cv)


# ---------------------------------------------------------------- significance (issue 9.5)

# Two-tailed 95 % critical values of Student's t by degrees of freedom (1..30), the table pyperf uses in
# pyperf/_utils.py (tdist95conf_level); above 30 df pyperf steps down to the normal 1.960 the same way.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
_T95_LARGE = ((200, 1.960), (100, 1.984), (80, 1.990), (60, 2.000), (50, 2.009), (40, 2.021))


def t_critical_95(df: int) -> float:
    """Two-tailed 95 % critical value of Student's t. Between table entries the next lower df's (larger)
    value is used, so the test never gets less strict than the exact one."""
    if df < 1:
        raise ValueError("a t-test needs at least 1 degree of freedom")
    for lowest, value in _T95_LARGE:
        if df >= lowest:
            return value
    return _T95[min(df, len(_T95)) - 1]


def student_t(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Student t score (b - a) with pooled variance; n may differ. ±inf for a difference with no
    variance at all, 0 when the means are equal."""
    na, nb = len(a), len(b)
    mean_a, std_a = mean_std(a)
    mean_b, std_b = mean_std(b)
    diff = mean_b - mean_a
    pooled = ((na - 1) * std_a**2 + (nb - 1) * std_b**2) / (na + nb - 2)
    error = math.sqrt(pooled * (1 / na + 1 / nb))
    if error == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / error


@lru_cache(maxsize=1024)
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """How many orderings of m x's and n y's give U = 0, 1, ..., m*n (Mann & Whitney 1947's recursion
    r(m, n, u) = r(m, n-1, u) + r(m-1, n, u-n), as in asv, kept per (m, n) as one count per u)."""
    if m == 0 or n == 0:
        return (1,)
    fewer_y = _u_counts(m, n - 1)
    fewer_x = _u_counts(m - 1, n)
    counts = [0] * (m * n + 1)
    for u, c in enumerate(fewer_y):
        counts[u] += c
    for u, c in enumerate(fewer_x):
        counts[u + n] += c
    return tuple(counts)


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test, ties broken the least significant way (as asv does).

    U counts the pairs with a > b; a tied pair may count either way, so of every U the ties allow, the one
    nearest m*n/2 is tested. Exact for up to 20 values a side; above that the normal approximation with a
    continuity correction and the variance without ties (ties only shrink it): never smaller than the exact
    p-value of any tie-breaking."""
    m, n = len(a), len(b)
    ys = sorted(float(y) for y in b)
    below = ties = 0
    for x in a:
        lo, hi = bisect_left(ys, float(x)), bisect_right(ys, float(x))
        below += lo
        ties += hi - lo
    centre = m * n / 2
    u = min(max(centre, below), below + ties)  # the tie-breaking nearest the centre
    extreme = min(u, m * n - u)  # the smaller tail
    if max(m, n) <= 20:
        tail = sum(_u_counts(m, n)[: math.floor(extreme) + 1]) if extreme < centre else math.comb(m + n, m)
        return min(1.0, 2 * tail / math.comb(m + n, m))
    sigma = math.sqrt(m * n * (m + n + 1) / 12)
    z = max(0.0, abs(u - centre) - 0.5) / sigma
    return min(1.0, math.erfc(z / math.sqrt(2)))


@dataclass(frozen=True)
class Significance:
    """Whether two measurements of a job differ by more than their own noise, and by which test."""

    significant: bool
    basis: str  # "processes" | "samples" | "" (nothing to test)
    test: str  # the test and its threshold, in words
    statistic: float | None  # t score (processes) or p-value (samples)


def significance(
    base_p50s: Sequence[float],
    new_p50s: Sequence[float],
    base_samples: Sequence[float],
    new_samples: Sequence[float],
) -> Significance:
    """Is NEW's latency different from BASE's by more than the noise the rows themselves show?

    - Both sides with at least MIN_PROCESSES processes: the noise between processes decides. Student's
      two-sample t-test, two-tailed at 95 %, on the process p50s (pyperf's `compare_to`, pyperf/_utils.py
      `is_significant`, with its table of critical values; pooled variance, here for unequal n too).
      Mann-Whitney cannot serve here: with 3 + 3 values its smallest two-sided p-value is 0.1.
    - Otherwise the noise within the processes: the Mann-Whitney U test on the per-iteration samples of all
      processes of each side, significant below p = 0.002 (asv's `statistics.is_different`: rank-based, so
      robust to the outliers latency samples have, with asv's strict threshold because iterations of one
      process are not independent draws). This cannot see noise between processes, so the basis is shown.
    - Nothing to test (no samples): never significant.
    """
    if len(base_p50s) >= MIN_PROCESSES and len(new_p50s) >= MIN_PROCESSES:
        t = student_t(base_p50s, new_p50s)
        crit = t_critical_95(len(base_p50s) + len(new_p50s) - 2)
        return Significance(abs(t) >= crit, "processes", "Student's t at 95 % on the process p50s", t)
    if len(base_samples) >= 2 and len(new_samples) >= 2:
        p = mann_whitney_p(base_samples, new_samples)
        return Significance(p < SAMPLES_P, "samples", f"Mann-Whitney U at p < {SAMPLES_P} on the samples", p)
    return Significance(False, "", "too few values to test", None)


def tied(
    a: Spread, b: Spread, a_p50s: Sequence[float], b_p50s: Sequence[float],
    a_samples: Sequence[float], b_samples: Sequence[float],
) -> bool:
    """Two variants cannot be ranked: their process p50s overlap (within each other's spread between
    processes), or the significance test does not tell them apart. Either is enough: never overstate."""
    if a.n >= 2 and b.n >= 2 and a.overlaps(b):
        return True
    return not significance(a_p50s, b_p50s, a_samples, b_samples).significant
