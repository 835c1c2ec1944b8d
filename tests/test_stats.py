"""sweep.stats: the spread between processes, Student's t with pyperf's table, Mann-Whitney U, and the verdicts."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from sweep import stats


def test_spread_of_process_p50s() -> None:
    s = stats.spread([16.4, 15.8, 24.5])
    assert s is not None and s.n == 3 and s.median == 16.4 and (s.low, s.high) == (15.8, 24.5)
    assert s.cv == pytest.approx(np.std([16.4, 15.8, 24.5], ddof=1) / np.mean([16.4, 15.8, 24.5]))
    one = stats.spread([5.0])
    assert one is not None and one.cv is None and one.low == one.high == 5.0
    assert stats.spread([]) is None
    assert s.overlaps(stats.Spread(2, 25.0, 24.0, 26.0, None))
    assert not s.overlaps(stats.Spread(2, 30.0, 25.0, 31.0, None))


def test_t_critical_values_are_pyperfs_table() -> None:
    assert stats.t_critical_95(1) == 12.706
    assert stats.t_critical_95(4) == 2.776  # 3 + 3 processes
    assert stats.t_critical_95(30) == 2.042
    assert stats.t_critical_95(35) == 2.042  # between entries: the stricter (lower df) value
    assert stats.t_critical_95(45) == 2.021
    assert stats.t_critical_95(198) == 1.984
    assert stats.t_critical_95(10_000) == 1.960
    with pytest.raises(ValueError):
        stats.t_critical_95(0)


def test_student_t_by_hand() -> None:
    # means 2 and 5, both variances 1: pooled 1, standard error sqrt(2/3), t = 3 / 0.8165 = 3.674
    assert stats.student_t([1, 2, 3], [4, 5, 6]) == pytest.approx(3 / math.sqrt(2 / 3))
    assert stats.student_t([4, 5, 6], [1, 2, 3]) == pytest.approx(-3 / math.sqrt(2 / 3))
    # unequal n: pooled variance weighs each side by its degrees of freedom
    a, b = [1.0, 2.0, 3.0, 4.0], [3.0, 5.0, 7.0]
    pooled = (3 * np.var(a, ddof=1) + 2 * np.var(b, ddof=1)) / 5
    assert stats.student_t(a, b) == pytest.approx((5.0 - 2.5) / math.sqrt(pooled * (1 / 4 + 1 / 3)))
    assert stats.student_t([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]) == 0.0
    assert stats.student_t([2.0, 2.0, 2.0], [3.0, 3.0, 3.0]) == math.inf


def brute_force_p(a: list[float], b: list[float]) -> float:
    """Two-sided permutation p-value of U over every split of the pooled values (ties count half)."""
    values = a + b

    def u(x: list[float], y: list[float]) -> float:
        return sum((xi > yi) + 0.5 * (xi == yi) for xi in x for yi in y)

    centre = len(a) * len(b) / 2
    observed = abs(u(a, b) - centre)
    splits = list(itertools.combinations(range(len(values)), len(a)))
    extreme = 0
    for chosen in splits:
        x = [values[i] for i in chosen]
        y = [values[i] for i in range(len(values)) if i not in chosen]
        extreme += abs(u(x, y) - centre) >= observed - 1e-9
    return extreme / len(splits)


def test_mann_whitney_exact_matches_permutations() -> None:
    rng = random.Random(4)
    for m, n in [(3, 3), (4, 6), (5, 5)]:
        a = [round(rng.gauss(0, 1), 3) for _ in range(m)]
        b = [round(rng.gauss(0.7, 1), 3) for _ in range(n)]
        assert stats.mann_whitney_p(a, b) == pytest.approx(brute_force_p(a, b))
    assert stats.mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)  # the smallest p of 3 + 3
    # ties are counted the least significant way: never smaller than the permutation p-value
    a, b = [1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0]
    assert stats.mann_whitney_p(a, b) >= brute_force_p(a, b) - 1e-12


def test_mann_whitney_normal_approximation() -> None:
    rng = random.Random(5)
    base = [rng.gauss(10.0, 0.3) for _ in range(100)]
    assert stats.mann_whitney_p(base, list(base)) == pytest.approx(1.0)
    assert stats.mann_whitney_p(base, [x + 5.0 for x in base]) < 1e-30
    noise = [rng.gauss(10.0, 0.3) for _ in range(100)]
    assert stats.mann_whitney_p(base, noise) > stats.SAMPLES_P  # the same distribution
    assert stats.mann_whitney_p([1.0] * 30, [1.0] * 30) == 1.0


def test_significance_between_processes_when_both_sides_have_three() -> None:
    base, slower = [10.0, 10.2, 9.9], [15.1, 15.0, 15.3]
    verdict = stats.significance(base, slower, [], [])
    assert verdict.significant and verdict.basis == "processes" and verdict.statistic is not None
    assert verdict.statistic > 0  # NEW is slower
    noisy = stats.significance([10.0, 14.0, 9.0], [11.0, 9.5, 13.0], [], [])
    assert not noisy.significant and noisy.basis == "processes"
    same = stats.significance(base, base, [], [])
    assert not same.significant and same.statistic == 0.0


def test_significance_within_samples_below_three_processes() -> None:
    rng = random.Random(6)
    a = [rng.gauss(1.0, 0.05) for _ in range(20)]
    b = [x + 5.0 for x in a]
    verdict = stats.significance([1.0], [6.0], a, b)
    assert verdict.significant and verdict.basis == "samples"
    # 3 processes on one side only: still the samples
    assert stats.significance([1.0, 1.0, 1.0], [6.0], a, b).basis == "samples"
    assert not stats.significance([1.0], [1.0], a, list(a)).significant
    nothing = stats.significance([1.0], [6.0], [], [])
    assert not nothing.significant and nothing.basis == ""  # nothing to test: never significant


def test_tied_when_spreads_overlap_or_the_test_cannot_tell() -> None:
    a_p50s, b_p50s = [5.94, 5.95, 5.96], [5.90, 6.00, 6.10]
    a, b = stats.spread(a_p50s), stats.spread(b_p50s)
    assert a is not None and b is not None
    assert stats.tied(a, b, a_p50s, b_p50s, [], [])
    c_p50s = [8.0, 8.1, 8.05]
    c = stats.spread(c_p50s)
    assert c is not None and not stats.tied(a, c, a_p50s, c_p50s, [], [])
    one_a, one_b = stats.spread([5.0]), stats.spread([5.01])
    assert one_a is not None and one_b is not None
    rng = random.Random(7)
    samples = [rng.gauss(5.0, 0.2) for _ in range(50)]
    assert stats.tied(one_a, one_b, [5.0], [5.01], samples, [x + 0.01 for x in samples])
