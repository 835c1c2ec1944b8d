"""Formatting, the only place: numbers, reasons, markdown tables, titled blocks, footnotes and unique names."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sweep.results import number as _float
from sweep.stats import NOISY_CV

DASH = "—"
REASON_CHARS = 200  # footnotes stay one readable line; the head and the tail of a stderr tail both matter
MEMORY_SPREAD = 0.15  # configurations whose peak memory is within this of each other share one figure

Row = Any  # a cleaned row dict or a sweep.results.JobResult: both answer item lookups for their settings


# ---------------------------------------------------------------- number formatting (the only place)


def fmt_fixed(x: object, digits: int = 3) -> str:
    value = _float(x)
    return DASH if value is None else f"{value:.{digits}f}"


def fmt_mean_std(mean: object, std: object) -> str:
    """The seed's latency cell: `66.322 ± 0.927`."""
    m, s = _float(mean), _float(std)
    if m is None:
        return DASH
    return f"{m:.3f}" if s is None else f"{m:.3f} ± {s:.3f}"


def fmt_sig(x: object, sig: int = 3) -> str:
    """`sig` significant digits in plain notation (2.00, 0.0512, 123), never scientific."""
    value = _float(x)
    if value is None:
        return DASH
    if value == 0:
        return "0"
    digits = max(0, sig - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def fmt_sci(x: object) -> str:
    """Errors span decades: `1.2e-04`."""
    value = _float(x)
    return DASH if value is None else f"{value:.1e}"


def fmt_cv(cv: object, noisy: object) -> str:
    """CV in percent, with ⚠ when the row was flagged noisy (or, unflagged, exceeds stats.NOISY_CV)."""
    value = _float(cv)
    if value is None:
        return DASH
    flagged = bool(noisy) if isinstance(noisy, bool) else value > NOISY_CV
    return f"{value * 100:.1f}" + (" ⚠" if flagged else "")


def fmt_memory(mb: float) -> str:
    """The seed's rough figures: `~500MB`, `~770MB`, `~1GB` (MB as torch counts them, 1 GB = 1024 MB)."""
    if mb < 10:
        return f"~{mb:.1f}MB"
    if mb < 100:
        return f"~{mb:.0f}MB"
    if round(mb, -1) < 1000:
        return f"~{round(mb, -1):.0f}MB"
    gb = f"{mb / 1024:.1f}".removesuffix(".0")
    return f"~{gb}GB"


def fmt_percent(fraction: object) -> str:
    value = _float(fraction)
    return DASH if value is None else f"{value * 100:.0f}"


def fmt_range(low: object, high: object) -> str:
    """`15.790–24.460`: min–max of the process p50s."""
    lo, hi = _float(low), _float(high)
    return DASH if lo is None or hi is None else f"{lo:.3f}–{hi:.3f}"


def fmt_count(count: tuple[int, int] | None) -> str:
    """`1/3`: flagged of known processes; empty where no process has the figure."""
    return "" if count is None else f"{count[0]}/{count[1]}"


def fmt_tflops(gflops: object, p50_ms: object) -> str:
    """Achieved TFLOP/s = gflops * 1e9 / (p50 / 1e3) / 1e12, which is gflops / p50_ms."""
    work, p50 = _float(gflops), _float(p50_ms)
    if work is None or p50 is None or p50 <= 0:
        return DASH
    return fmt_sig(work / p50)


def one_line(reason: object, limit: int = REASON_CHARS) -> str:
    """A reason fit for a footnote: one line, pipes escaped, head and tail kept when too long."""
    text = " ".join(str(reason or "").split())
    if len(text) > limit:
        half = (limit - 3) // 2
        text = f"{text[:half]} … {text[-half:]}"
    return text.replace("|", "\\|")


def amp_label(amp_dtype: str) -> str:
    """The seed's amp column: `fp32` without autocast, `fp32+fp16` with fp16 autocast."""
    if not amp_dtype:
        return ""
    return "fp32" if amp_dtype == "fp32" else f"fp32+{amp_dtype}"


# ---------------------------------------------------------------- markdown building blocks


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[Row], str]
    min_width: int = 0
    right: bool = False


def markdown_table(columns: Sequence[Column], rows: Sequence[Row]) -> list[str]:
    """Pipe table padded like the seed: each column as wide as its widest cell, header or min_width."""
    body = [[col.cell(row).replace("|", "\\|") for col in columns] for row in rows]
    widths = [max(col.min_width, len(col.header), *(len(r[i]) for r in body)) for i, col in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        padded = (c.rjust(w) if col.right else c.ljust(w) for c, w, col in zip(cells, widths, columns, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = ("-" * (w - 1) + ":" if col.right else "-" * w for w, col in zip(widths, columns, strict=True))
    return [line([col.header for col in columns]), "| " + " | ".join(rule) + " |", *(line(r) for r in body)]


def table_block(
    fmt: str,
    title: str,
    name: str,
    table: list[str],
    note: str | None = None,
    blank_before_close: bool = True,
    blank_after_close: bool = True,
) -> list[str]:
    """A titled table: MyST `{table}` directive with a `:name:` to reference, or a bold title line."""
    if fmt == "myst":
        lines = [f"```{{table}} **{title}**", f":name: {name}", "", *table]
        lines += ["", "```"] if blank_before_close else ["```"]
        if note:
            lines += ["", note] if blank_after_close else [note]
        return lines
    lines = [f"**{title}**", "", *table]
    return lines + ["", note] if note else lines


def join_words(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def memory_line(entries: Sequence[tuple[str, float]]) -> str | None:
    """The seed's memory sentence: one figure for the configurations within MEMORY_SPREAD of each other
    (the largest such cluster), then the exceptions by name: `... ~500MB except for fp32+fp32 which is ~770MB.`
    """
    if not entries:
        return None
    values = sorted(v for _, v in entries)

    def members(low: float) -> list[tuple[str, float]]:
        return [(k, v) for k, v in entries if low <= v <= low * (1 + MEMORY_SPREAD)]

    main = max((members(low) for low in values), key=len)  # max keeps the first (lowest) of equal clusters
    text = f"Max memory usage for all configurations is {fmt_memory(max(v for _, v in main))}"
    others = [f"{k} which is {fmt_memory(v)}" for k, v in entries if (k, v) not in main]
    return text + (f" except for {join_words(others)}." if others else ".")


class Footnotes:
    """Reasons and notes, numbered in order of first use; the same text shares a number."""

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}

    def mark(self, text: object) -> str:
        """`[^n]` for the text, or "" when there is nothing to say."""
        line = one_line(text)
        if not line:
            return ""
        return f"[^{self._numbers.setdefault(line, len(self._numbers) + 1)}]"

    def status(self, row: Row) -> str:
        """A status that is not ok, with its reason as a footnote: `failed[^2]`."""
        return f"{row['status'] or 'unknown'}{self.mark(row['reason'])}"

    def lines(self) -> list[str]:
        return [f"[^{n}]: {text}" for text, n in self._numbers.items()]


class Names:
    """MyST `:name:`s must be unique in a document: the first use of a name keeps it (py_notrt stays
    py_notrt for references), later ones get a suffix."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def take(self, base: str, suffix: str) -> str:
        name = base
        if name in self._used:
            name = f"{base}_{suffix}"
        n = 2
        while name in self._used:
            name, n = f"{base}_{suffix}_{n}", n + 1
        self._used.add(name)
        return name


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


