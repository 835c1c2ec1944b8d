"""Slowed and busy hosts (extra.host) in results, report and compare, from real Parquet rows; figures unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sweep import compare, host, report
from sweep.cli import app
from sweep.results import jobs_of
from tests.rowkit import GPU, host_extra, make_row, processes, write_rows

H200 = "NVIDIA H200"


def with_hosts(rows: list[dict[str, Any]], hosts: list[str | None]) -> list[dict[str, Any]]:
    """Each process row with its own extra (None: a row without extra.host, as older rows and C++ runners)."""
    for row, extra in zip(rows, hosts, strict=True):
        if extra is not None:
            row["extra"] = extra
    return rows


def eager_job(p50s: list[float], hosts: list[str | None], **fields: Any) -> list[dict[str, Any]]:
    return with_hosts(processes(len(p50s), p50s, **fields), hosts)


def by_label(tmp_path: Path, rows: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    jobs, _, _ = jobs_of(write_rows(tmp_path / "results", rows))
    return {(j["device_name"], j["amp_dtype"]): j for j in jobs}


# ---------------------------------------------------------------- the flag itself


def test_flag_arithmetic() -> None:
    assert host.canaries(host.figures(host_extra((1.0, 1.4)))) == [1.0, 1.4]
    assert host.figures("") == {} and host.figures("not json") == {} and host.figures('{"tf32": "x"}') == {}
    assert host.canaries({"cpu_canary_ms": [None, float("nan"), -1, 0.9]}) == [0.9]
    assert host.slowed([1.0, 1.31], 1.0) is True
    assert host.slowed([1.3, 1.0], 1.0) is False  # at 1.3× exactly: not above
    assert host.slowed([], 1.0) is None and host.slowed([1.0], None) is None
    assert host.busy(1.5) is True and host.busy(1.0) is False and host.busy(None) is None
    assert host.other_cpus_busy(host.figures(host_extra((1.0, 1.0), other_cpus_busy=3.6))) == 3.6
    # a loop of a few ms: /proc/stat's 10 ms ticks cannot tell, unknown rather than busy
    assert host.other_cpus_busy(host.figures(host_extra((1.0, 1.0), other_cpus_busy=3.6, loop_s=0.005))) is None
    assert host.count([True, False, None]) == host.Count(1, 2) and host.count([None, None]) is None


def test_slowed_processes_are_counted_not_dropped(tmp_path: Path) -> None:
    rows = eager_job([10.0, 15.5, 10.1], [host_extra((0.97, 0.99)), host_extra((1.02, 1.62)),
                                          host_extra((1.0, 1.01), other_cpus_busy=2.5)], amp_dtype="fp16")
    rows += eager_job([12.0, 12.1], [None, None], amp_dtype="bf16")  # no extra.host: unknown, never flagged
    rows += eager_job([11.0, 11.2], [host_extra((1.2, 1.25)), host_extra((1.2, 1.2), 3.6, loop_s=0.005)],
                      amp_dtype="fp32")
    jobs = by_label(tmp_path, rows)
    fp16, bf16, fp32 = jobs[(GPU, "fp16")], jobs[(GPU, "bf16")], jobs[(GPU, "fp32")]
    assert fp16.canary_reference_ms == pytest.approx(0.97)
    assert fp16.host_slowed == host.Count(1, 3)  # 1.62 > 1.3 × 0.97
    assert fp16.host_busy == host.Count(1, 3)
    assert [r["host_slowed"] for r in fp16.rows] == [False, True, False]
    assert bf16.host_slowed is None and bf16.host_busy is None
    assert fp32.host_slowed == host.Count(0, 2)  # 1.25 < 1.261
    assert fp32.host_busy == host.Count(0, 1)  # the 5 ms loop's figure is unknown, not counted
    # the headline figures keep the flagged process: median of all three p50s, their full range
    assert fp16.p50 == pytest.approx(10.1, abs=1e-6)
    assert fp16.spread and fp16.spread.high == pytest.approx(15.5, abs=1e-6) and len(fp16.p50s) == 3


def test_each_machine_has_its_own_reference(tmp_path: Path) -> None:
    """A slower CPU is not a slowed one: 1.5 ms is normal where the best canary is 1.4 ms, slowed where it is 1.0."""
    rtx = eager_job([10.0, 10.0], [host_extra((1.0, 1.02)), host_extra((1.5, 1.49))])
    h200 = eager_job([5.0, 5.0], [host_extra((1.4, 1.45)), host_extra((1.5, 1.52))],
                    device_name=H200, run_id="run-h200")
    # a superseded rerun of H200's process 0 still tells the machine's best canary
    h200.append(dict(h200[0], run_id="run-old", started_at=h200[0]["started_at"].replace(minute=0),
                     extra=host_extra((1.3, 1.31))))
    jobs = by_label(tmp_path, rtx + h200)
    slow, fast = jobs[(GPU, "fp32")], jobs[(H200, "fp32")]
    assert slow.canary_reference_ms == pytest.approx(1.0) and slow.host_slowed == host.Count(1, 2)
    assert fast.canary_reference_ms == pytest.approx(1.3) and fast.host_slowed == host.Count(0, 2)


def test_failed_processes_are_not_counted(tmp_path: Path) -> None:
    rows = eager_job([10.0, 10.0], [host_extra((1.0, 1.0)), host_extra((1.0, 2.0))])
    rows[1].update(status="failed", reason="boom", samples_ms=None)
    (job,) = by_label(tmp_path, rows).values()
    assert job.host_slowed == host.Count(0, 1)


# ---------------------------------------------------------------- the report


def cells(out: str, table: str, header: str) -> list[str]:
    """Every cell under `header` in the table titled `table`."""
    block = out.split(f"**{table}**")[1].split("\n\n")[1].splitlines()
    heads = [c.strip() for c in block[0].strip("|").split("|")]
    return [[c.strip() for c in line.strip("|").split("|")][heads.index(header)] for line in block[2:]]


def test_report_shows_counts_and_one_note_per_machine(tmp_path: Path) -> None:
    rows = eager_job([10.0, 15.5, 10.1], [host_extra((0.97, 0.99)), host_extra((1.02, 1.62)),
                                          host_extra((1.0, 1.01), other_cpus_busy=2.5)], amp_dtype="fp16")
    rows += eager_job([12.0, 12.1], [None, None], amp_dtype="bf16")
    rows += [make_row("cpp-trt", started=9, amp_dtype="", enabled_precisions="fp32")]  # C++ row: no extra.host
    out = report.render(write_rows(tmp_path / "results", rows))
    assert cells(out, "python-eager", "host slowed") == ["1/3", ""]  # fp16 (10.1 ms) first; bf16 has no data
    assert cells(out, "python-eager", "busy host") == ["1/3", ""]
    head = out.split("**python-eager**")[1].split("\n\n")[1].splitlines()[0]
    heads = [c.strip() for c in head.strip("|").split("|")]
    assert heads[heads.index("GPU busy (%)"):][:4] == ["GPU busy (%)", "host slowed", "busy host", "TFLOP/s"]
    assert "host slowed" not in out.split("**cpp-trt**")[1]  # a table without host data has no column
    extended = out.split("## All runtimes")[1]
    note = extended.split("\n\n")[1]
    assert "\n" not in note and note.startswith("Each job ran in one or more fresh processes.")
    assert "CPU canaries" in note and "1.3× this machine's best canary" in note
    assert "(0.970 ms here, so above 1.26 ms)" in note
    assert "indicator" in note and "may have run fast" in note and "CUDA-graph rows are barely affected" in note
    assert "busy host" in note and "other work" in note and "Neither drops a process" in note
    assert out.count("CPU canaries") == 1
    # the flagged process stays in the figures: median of all three p50s, their whole range
    assert cells(out, "python-eager", "p50 (ms)")[0] == "10.100"
    assert cells(out, "python-eager", "p50 range (ms)")[0] == "10.000–15.500"


def test_report_without_host_data_is_unchanged(tmp_path: Path) -> None:
    rows = eager_job([10.0, 10.1, 10.2], [None, None, None])
    plain = report.render(write_rows(tmp_path / "a", rows))
    assert "host slowed" not in plain and "busy host" not in plain and "canar" not in plain


def test_two_machines_each_get_their_note_and_reference(tmp_path: Path) -> None:
    rtx = eager_job([10.0, 10.0], [host_extra((1.0, 1.02)), host_extra((1.5, 1.49))])
    h200 = eager_job([5.0, 5.0], [host_extra((1.4, 1.45)), host_extra((1.5, 1.52))],
                    device_name=H200, run_id="run-h200")
    out = report.render(write_rows(tmp_path / "results", rtx + h200))
    first, second = out.split("## All runtimes")[1:]
    assert "(1.00 ms here, so above 1.30 ms)" in first and cells(first, "python-eager", "host slowed") == ["1/2"]
    assert "(1.40 ms here, so above 1.82 ms)" in second and cells(second, "python-eager", "host slowed") == ["0/2"]


def test_seed_tables_do_not_move_with_host_data(tmp_path: Path) -> None:
    from tests.test_report import seed_blocks, seed_rows

    rows = seed_rows()
    for i, row in enumerate(rows):
        row["extra"] = host_extra((1.0, 1.0 + 0.1 * i), other_cpus_busy=0.5 * i)
    out = report.render(write_rows(tmp_path / "results", rows), fmt="myst")
    for block in seed_blocks():
        assert block in out
    assert "host slowed" in out.split("## All runtimes")[1]


# ---------------------------------------------------------------- compare


def test_compare_json_and_footnote_name_slowed_hosts(tmp_path: Path, cli: Any) -> None:
    base = eager_job([10.0, 10.2, 9.9], [host_extra((1.0, 1.0))] * 3, amp_dtype="fp32")
    base += eager_job([5.0, 5.1, 5.05], [None] * 3, amp_dtype="fp16")
    new = eager_job([15.0, 15.2, 14.9], [host_extra((1.0, 1.01)), host_extra((1.6, 1.7)),
                                         host_extra((1.0, 1.0), other_cpus_busy=3.0)], amp_dtype="fp32")
    new += eager_job([5.0, 5.1, 5.05], [None] * 3, amp_dtype="fp16")
    write_rows(tmp_path / "base", base)
    write_rows(tmp_path / "new", new)
    res = cli.invoke(app, ["compare", str(tmp_path / "base"), str(tmp_path / "new"), "--json"])
    assert res.exit_code == 0, res.output
    objects = {o["amp_dtype"]: o for o in json.loads(res.stdout)}
    slow, plain = objects["fp32"], objects["fp16"]
    assert slow["significant"] is True
    assert (slow["base_host_slowed"], slow["base_host_known"], slow["new_host_slowed"], slow["new_host_known"]) \
        == (0, 3, 1, 3)
    assert (slow["base_busy_host"], slow["new_busy_host"], slow["new_busy_known"]) == (0, 1, 3)
    assert (plain["base_host_slowed"], plain["new_host_slowed"], plain["base_host_known"]) == (None, None, 0)
    assert plain["new_busy_host"] is None and plain["new_busy_known"] == 0
    text = cli.invoke(app, ["compare", str(tmp_path / "base"), str(tmp_path / "new")]).stdout
    footnote = text.split("jobs changed significantly.\n")[1]
    assert footnote.startswith("Host: 1 of 2 jobs had processes on a slowed host core")
    assert f"{slow['job_key'][:12]} (significant): base none, new 1/3 slowed, 1/3 busy" in footnote
    assert "indicator" in footnote


def test_compare_without_flags_has_no_host_footnote(tmp_path: Path) -> None:
    rows = eager_job([10.0, 10.2, 9.9], [host_extra((1.0, 1.1))] * 3)
    df = write_rows(tmp_path / "r", rows)
    result = compare.compare(df, df)
    assert "Host:" not in compare.render_text(result, "a", "b")
    (obj,) = compare.to_json(result.comparisons)
    assert (obj["base_host_slowed"], obj["new_host_slowed"], obj["base_host_known"]) == (0, 0, 3)


def test_each_side_has_its_own_reference(tmp_path: Path) -> None:
    """The same canaries read slowed or not by the best canary of their own result set."""
    base = write_rows(tmp_path / "base", eager_job([10.0, 10.0], [host_extra((1.0, 1.0)), host_extra((1.4, 1.4))]))
    new = write_rows(tmp_path / "new", eager_job([10.0, 10.0], [host_extra((1.4, 1.4)), host_extra((1.4, 1.45))]))
    (c,) = compare.compare(base, new).comparisons
    assert c.base and c.new and c.base.host_slowed == host.Count(1, 2) and c.new.host_slowed == host.Count(0, 2)


def test_footnote_says_when_a_side_did_not_record_the_host(tmp_path: Path) -> None:
    base = write_rows(tmp_path / "base", eager_job([10.0, 10.0], [None, None]))
    new = write_rows(tmp_path / "new", eager_job([10.0, 10.0], [host_extra((1.0, 1.0)), host_extra((1.0, 1.5))]))
    text = compare.render_text(compare.compare(base, new), "a", "b")
    assert "Host: 1 of 1 jobs" in text and ": base not recorded, new 1/2 slowed." in text
