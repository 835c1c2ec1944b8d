"""The report package: the seed's tables byte for byte from real Parquet rows, the answers, and all around them."""

from __future__ import annotations

import random
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sweep import report, stats, store
from tests.rowkit import GPU, T0, make_row, processes, write_rows

DATA = Path(__file__).parent / "data"
SEED_COPY = DATA / "seed_tables.md"
SEED_DOC = Path(__file__).parents[2] / "shared" / "seed" / "benchmarks-and-results.md"
MARKER = "<!-- seed-table -->\n"

# The seed's figures, in the seed's order: (model precision, amp / enabled precisions, mean, std, peak MB).
# Peak memory is not in the seed's tables, only in its sentences (~1GB; ~500MB except fp32+fp32 ~770MB).
SEED_ROWS: dict[str, list[tuple[str, str, float, float, float]]] = {
    "python-eager": [
        ("fp32", "fp16", 66.322, 0.927, 1012.4),
        ("fp32", "bf16", 66.497, 1.052, 1019.8),
        ("fp32", "fp32", 76.275, 0.587, 1043.1),
    ],
    "python-trt": [
        ("fp32+fp16", "fp32+bf16+fp16", 15.369, 0.023, 489.0),
        ("fp32", "fp32+bf16+fp16", 23.164, 0.031, 497.5),
        ("fp32", "fp32+bf16", 25.148, 0.030, 503.2),
        ("fp32", "fp32", 38.381, 0.022, 771.3),
    ],
    "cpp-trt": [
        ("fp32+fp16", "fp32+bf16+fp16", 15.433, 0.029, 491.0),
        ("fp32", "fp32+bf16+fp16", 23.263, 0.027, 499.0),
        ("fp32", "fp32+bf16", 25.255, 0.014, 504.9),
        ("fp32", "fp32", 38.465, 0.029, 768.0),
    ],
}


def load_rows(tmp_path: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Through the real store: one Parquet file per row, then load() of the folder."""
    return write_rows(tmp_path / "results", rows)


def seed_rows(order: list[int] | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for runtime, figures in SEED_ROWS.items():
        for precision, setting, mean, std, mem in figures:
            amp = setting if runtime == "python-eager" else ""
            enabled = "" if runtime == "python-eager" else setting
            rows.append(
                make_row(
                    runtime,
                    started=len(rows),
                    model_precision=precision,
                    amp_dtype=amp,
                    enabled_precisions=enabled,
                    mean=mean,
                    std=std,
                    peak_mem_mb=mem,
                )
            )
    return rows if order is None else [rows[i] for i in order]


def seed_blocks() -> list[str]:
    blocks = SEED_COPY.read_text(encoding="utf-8").split(MARKER)[1:]
    assert len(blocks) == 3
    return blocks


# ---------------------------------------------------------------- the golden test


def test_seed_copy_matches_seed_document() -> None:
    if not SEED_DOC.exists():
        pytest.skip("shared/seed is not beside this checkout; the copy in tests/data stands in for it")
    seed = SEED_DOC.read_text(encoding="utf-8")
    for block in seed_blocks():
        assert block in seed
    titles = re.findall(r"^```\{table\} \*\*(.*?)\*\*$", seed, flags=re.M)
    assert [t for t in titles if "previous" not in t] == [
        "Python Runtime, no TensorRT",
        "Python Runtime, with TensorRT",
        "C++ Runtime, with TensorRT",
    ]


def test_golden_seed_tables_verbatim(tmp_path: Path) -> None:
    df = load_rows(tmp_path, seed_rows())
    out = report.render(df, fmt="myst")
    for block in seed_blocks():
        assert block in out, f"not rendered verbatim:\n{block}\n--- got ---\n{out}"


def test_order_does_not_depend_on_insertion_order(tmp_path: Path) -> None:
    order = list(range(11))
    random.Random(3).shuffle(order)
    shuffled = [dict(row, started_at=T0 + timedelta(minutes=i)) for i, row in enumerate(seed_rows(order))]
    out = report.render(load_rows(tmp_path, shuffled), fmt="myst")
    for block in seed_blocks():
        assert block in out


def test_md_format_uses_bold_titles(tmp_path: Path) -> None:
    out = report.render(load_rows(tmp_path, seed_rows()), fmt="md")
    assert "```{table}" not in out and ":name:" not in out
    assert "**Python Runtime, no TensorRT**\n\n| model's precision | amp_dtype              | latency (ms)   |" in out
    assert "| fp32              | fp32                   | 38.381 ± 0.022 |" in out
    assert "Max memory usage for all configurations is ~500MB except for fp32+fp32 which is ~770MB." in out


def test_header_names_machine_matrix_runs_and_dates(tmp_path: Path) -> None:
    rows = seed_rows()
    rows[-1] = dict(rows[-1], run_id="run-b", started_at=T0 + timedelta(days=2))
    out = report.render(load_rows(tmp_path, rows))
    head = out.split("Measured on:", 1)[1].split("## ", 1)[0]
    assert GPU in head and "torch 2.5.1" in head and "torch-tensorrt 2.5.0" in head and "TensorRT 10.3.0" in head
    assert "`rtx4060ti`" in head and "`run-a`, `run-b`" in head and "2024-10-31 to 2024-11-02" in head


# ---------------------------------------------------------------- rows that are not ok, re-runs


def table_lines(out: str, needle: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("|") and needle in line]


def footnote(out: str, text: str) -> str:
    """`[^n]` of the footnote whose text starts with `text`."""
    number = next(m.group(1) for m in re.finditer(r"^\[\^(\d+)\]: (.*)$", out, flags=re.M)
                  if m.group(2).startswith(text))
    return f"[^{number}]"


def test_not_ok_rows_show_status_and_footnote_never_a_number(tmp_path: Path) -> None:
    reason = "torch_tensorrt is not installed | pip install 'sweep[trt]'\n  (NVIDIA index unreachable)"
    rows = seed_rows()[:3] + [
        make_row("python-trt", started=5, status="unavailable", reason=reason, enabled_precisions="fp32"),
        make_row("cpp-trt", started=6, status="unavailable", reason=reason, enabled_precisions="fp32"),
        make_row("python-inductor", started=7, status="timeout", reason="x" * 500, compile_mode="max-autotune"),
    ]
    out = report.render(load_rows(tmp_path, rows), fmt="myst")
    trt = footnote(out, "torch_tensorrt is not installed")
    cells = table_lines(out, f"unavailable{trt}")
    assert len(cells) == 4  # the two seed tables and the two extended tables, one shared footnote
    assert all(not re.search(r"\d\.\d", line) for line in cells)
    assert f"| fp32              | fp32                   | unavailable{trt} |" in out
    note = f"{trt}: torch_tensorrt is not installed \\| pip install 'sweep[trt]' (NVIDIA index unreachable)"
    assert note in out.splitlines()
    slow = footnote(out, "xxx")
    assert len(table_lines(out, f"timeout{slow}")) == 1
    long_note = next(line for line in out.splitlines() if line.startswith(f"{slow}: "))
    assert "…" in long_note and len(long_note) <= len(f"{slow}: ") + report.REASON_CHARS
    assert out.rstrip().endswith(long_note)  # footnotes close the document
    assert "Max memory usage" not in out.split("**Python Runtime, with TensorRT**")[1].split("```\n")[1]


def test_reruns_use_latest_ok_row_else_latest(tmp_path: Path) -> None:
    rows = [
        make_row(started=0, amp_dtype="fp16", mean=50.0),
        make_row(started=1, amp_dtype="fp16", mean=40.0),  # latest ok: shown
        make_row(started=2, amp_dtype="fp16", status="failed", reason="segfault"),
        make_row(started=3, amp_dtype="bf16", status="failed", reason="first failure"),
        make_row(started=4, amp_dtype="bf16", status="timeout", reason="second failure"),  # latest: shown
    ]
    out = report.render(load_rows(tmp_path, rows), fmt="md")
    assert "40.000 ± 0.100" in out and "50.000" not in out and "segfault" not in out
    assert f"timeout{footnote(out, 'second failure')}" in out and "first failure" not in out


# ---------------------------------------------------------------- extended tables and figures


def test_extended_tables_for_every_runtime(tmp_path: Path) -> None:
    rows = seed_rows() + [
        make_row("python-inductor", started=20, compile_mode="max-autotune", mean=12.0, gflops=30.0),
        make_row("cpp-aoti", started=21, mean=11.0, gflops=None, device="cpu", amp_dtype=""),
    ]
    out = report.render(load_rows(tmp_path, rows), fmt="myst")
    for runtime in ["cpp-aoti", "cpp-trt", "python-eager", "python-inductor", "python-trt"]:
        assert f"```{{table}} **{runtime}**\n:name: all_{runtime.replace('-', '_')}\n" in out
    inductor = out.split("**python-inductor**")[1]
    head = inductor.split("\n")[3]
    assert "compile_mode" in head and "amp_dtype" not in head and "trt.enabled_precisions" not in head
    assert "TFLOP/s" in head and "p99 (ms)" in head and "rel_err" in head and "CV (%)" in head
    assert "max-autotune" in inductor and "1.2e-04" in inductor
    aoti = out.split("**cpp-aoti**")[1].split("```\n")[0]
    aoti_row = table_lines(aoti, "detector")[0]
    assert re.search(r"\|\s+—\s+\|", aoti_row)  # no gflops: no TFLOP/s
    # python-eager keeps its amp column, TRT its enabled precisions
    assert "amp_dtype" in out.split("**python-eager**")[1].split("\n")[3]
    assert "trt.enabled_precisions" in out.split("**python-trt**")[1].split("\n")[3]
    assert out.index("**python-eager**") < out.index("**python-inductor**") < out.index("**cpp-trt**")
    assert report.SEED_TABLES[0].name == "py_notrt" and out.count(":name: py_notrt\n") == 1


def test_tflops_arithmetic() -> None:
    # 30 GFLOP in 15 ms: 30e9 / 0.015 s = 2e12 FLOP/s
    assert report.fmt_tflops(30.0, 15.0) == "2.00"
    assert report.fmt_tflops(1.6, 31.25) == "0.0512"
    assert report.fmt_tflops(None, 15.0) == "—"
    assert report.fmt_tflops(30.0, float("nan")) == "—"
    assert report.fmt_tflops(30.0, 0.0) == "—"


def test_tflops_cell_from_p50(tmp_path: Path) -> None:
    row = make_row("python-inductor", samples_ms=[15.0] * 10, gflops=30.0)
    row.update({f"latency_ms_{k}": v for k, v in stats.summarize(row["samples_ms"]).items()})
    out = report.render(load_rows(tmp_path, [row]))
    line = table_lines(out, "detector")[0]
    assert re.search(r"\|\s+2\.00 \|", line)


def test_number_helpers_handle_missing_values() -> None:
    for missing in (None, float("nan"), pd.NA, "x"):
        assert report.fmt_fixed(missing) == "—"
        assert report.fmt_mean_std(missing, 1.0) == "—"
        assert report.fmt_sci(missing) == "—"
        assert report.fmt_cv(missing, True) == "—"
    assert report.fmt_mean_std(66.3224, None) == "66.322"
    assert report.fmt_sci(0.000123) == "1.2e-04"
    assert report.fmt_cv(0.031, True) == "3.1 ⚠"
    assert report.fmt_cv(0.031, None) == "3.1 ⚠"  # unflagged rows: stats.NOISY_CV decides
    assert report.fmt_cv(0.004, False) == "0.4"


def test_noisy_rows_are_marked(tmp_path: Path) -> None:
    out = report.render(load_rows(tmp_path, [make_row("python-aoti", mean=10.0, std=0.5)]))
    assert "5.0 ⚠" in out


@pytest.mark.parametrize(
    ("mb", "text"),
    [(503.2, "~500MB"), (771.3, "~770MB"), (1043.1, "~1GB"), (996.0, "~1GB"), (1536.0, "~1.5GB"), (37.4, "~37MB")],
)
def test_memory_rounding(mb: float, text: str) -> None:
    assert report.fmt_memory(mb) == text


def test_memory_sentence() -> None:
    line = report.memory_line
    assert line([("a", 1000.0), ("b", 1040.0)]) == "Max memory usage for all configurations is ~1GB."
    assert (
        line([("a", 500.0), ("fp32+fp32", 770.0), ("c", 505.0)])
        == "Max memory usage for all configurations is ~500MB except for fp32+fp32 which is ~770MB."
    )
    assert line([("a", 500.0), ("b", 770.0), ("c", 505.0), ("d", 2048.0)]) == (
        "Max memory usage for all configurations is ~500MB except for b which is ~770MB and d which is ~2GB."
    )
    assert line([]) is None


# ---------------------------------------------------------------- plot, empty input, contract


def test_plot_link_and_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    df = load_rows(tmp_path, seed_rows() + [make_row("cpp-trt", started=30, status="failed", reason="boom")])
    out = report.render(df, plot="latency.png")
    assert f"![{report.plot.CAPTION}](latency.png)" in out
    assert not (tmp_path / "latency.png").exists()  # render writes nothing
    png = report.plot_latency(df, tmp_path / "plots" / "latency.png")
    assert png == tmp_path / "plots" / "latency.png"
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) < 200_000


def test_plot_without_ok_rows_or_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = load_rows(tmp_path, [make_row(status="failed", reason="boom")])
    assert report.plot_latency(failed, tmp_path / "a.png") is None
    assert report.plot_latency(store.load(tmp_path / "none"), tmp_path / "b.png") is None
    ok = load_rows(tmp_path / "ok", [make_row()])
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, name, None)
    assert report.plot_latency(ok, tmp_path / "c.png") is None
    assert not list(tmp_path.glob("*.png"))


def test_empty_dataframe_says_how_to_get_results(tmp_path: Path) -> None:
    out = report.render(store.load(tmp_path / "nothing"))
    assert "No results yet" in out and "sweep run" in out and "|" not in out


def test_bad_format_and_missing_columns(tmp_path: Path) -> None:
    df = load_rows(tmp_path, [make_row()])
    with pytest.raises(report.SweepError, match="md, myst"):
        report.render(df, fmt="html")
    with pytest.raises(ValueError, match="status"):
        report.render(df.drop(columns=["status"]))
    # optional columns an older row file lacks render as missing figures
    assert "| —" in report.render(df.drop(columns=["peak_mem_mb"]))


def test_two_machines_get_their_own_sections_and_unique_names(tmp_path: Path) -> None:
    h200 = [
        dict(row, device_name="NVIDIA H200", started_at=T0 + timedelta(days=1, minutes=i))
        for i, row in enumerate(seed_rows())
    ]
    out = report.render(load_rows(tmp_path, seed_rows() + h200), fmt="myst")
    assert f"## Summary — {GPU}" in out and "## Summary — NVIDIA H200" in out
    names = re.findall(r"^:name: (\S+)$", out, flags=re.M)
    assert len(names) == len(set(names)) and "py_notrt" in names and "py_notrt_nvidia_h200" in names
    for block in seed_blocks():
        assert block in out  # the first machine keeps the seed's names


# ---------------------------------------------------------------- fidelity columns, calibration


def calibration(device_name: str = GPU, tflops: float = 80.0, **fields: Any) -> dict[str, Any]:
    """A report as `sweep calibrate` saves it (sweep.calibrate.calibrate), with round figures."""
    cal: dict[str, Any] = {
        "created_at": "2024-10-30T09:00:00+00:00",
        "model": "detector",
        "device": "cuda",
        "precision": "fp32",
        "env": {"device_name": device_name, "torch_version": "2.5.1", "hostname": "bench-1"},
        "clocks_before": {"sm_clock_mhz": 345, "mem_clock_mhz": 9001, "temperature_c": 34, "power_w": 18.75},
        "forms": {
            "eager": {
                "first_call_s": 0.5,
                "ours_host_ms": 17.3394,
                "ours_cuda_events_ms": 17.2867,
                "torch_benchmark_ms": 19.462,
                "triton_do_bench_ms": 19.7416,
                "ratio_ours_host_vs_independent": 0.87832,
                "ratio_ours_events_vs_independent": 0.87565,
            },
            "torch.compile": {
                "ours_host_ms": 1.6134,
                "ours_cuda_events_ms": None,
                "torch_benchmark_ms": 1.7809,
                "triton_error": "ImportError: no triton | here",
                "ratio_ours_host_vs_independent": 0.90598,
            },
        },
        "model_gflops": 30.0,
        "peak": {"matmul_dtype": "bf16", "matmul_tflops": tflops, "copy_gbps": 4260.2},
        "floor_ms": 30.0 / tflops,
        "clocks_after": {"sm_clock_mhz": 2535, "mem_clock_mhz": 9001, "temperature_c": 61, "power_w": 155.4},
    }
    cal.update(fields)
    return cal


def column_cell(out: str, table: str, header: str, needle: str = "detector") -> str:
    """The cell under `header` in the first line holding `needle` of the table titled `table`."""
    block = out.split(f"**{table}**")[1]
    head = table_lines(block, header)[0]
    cells = [c.strip() for c in head.strip("|").split("|")]
    line = table_lines(block, needle)[0]
    return [c.strip() for c in line.strip("|").split("|")][cells.index(header)]


def test_sorted_error_column_beside_rel_err(tmp_path: Path) -> None:
    rows = [
        make_row("python-inductor", rel_err=0.45, rel_err_sorted=3.41e-6),
        make_row("cpp-aoti", started=1, amp_dtype="", status="failed", reason="boom", rel_err_sorted=1e-3),
    ]
    out = report.render(load_rows(tmp_path, rows))
    head = table_lines(out, "rel_err (sorted)")[0]
    assert "| rel_err | rel_err (sorted) |" in head  # side by side
    assert column_cell(out, "python-inductor", "rel_err") == "4.5e-01"
    assert column_cell(out, "python-inductor", "rel_err (sorted)") == "3.4e-06"
    assert column_cell(out, "cpp-aoti", "rel_err (sorted)") == "—"  # not ok: no figure
    extended = out.split("## All runtimes")[1]
    sentence = extended.split("\n\n")[1]
    assert "rel_err is the element-wise relative L2 error" in sentence and "fp32 eager reference" in sentence
    assert "sorted values" in sentence and "near-ties" in sentence and "\n" not in sentence
    assert "× floor" not in out  # no calibration, no floor column


def test_floor_arithmetic() -> None:
    # 30 GFLOP at 80 TFLOP/s: floor 0.375 ms; p50 15 ms is 40× the floor
    assert report.fmt_floor(15.0, 30.0, 80.0) == "40.0×"
    assert report.fmt_floor(16.0375, 30.0, 750.0) == "401×"
    assert report.fmt_floor(0.3, 30.0, 80.0) == "0.800×"
    for args in [(15.0, None, 80.0), (15.0, 30.0, None), (None, 30.0, 80.0), (15.0, 0.0, 80.0), (15.0, 30.0, 0.0)]:
        assert report.fmt_floor(*args) == "—"


def test_floor_column_uses_the_devices_calibration(tmp_path: Path) -> None:
    fast = make_row("python-inductor", compile_mode="default", samples_ms=[15.0] * 10, gflops=30.0)
    fast.update({f"latency_ms_{k}": v for k, v in stats.summarize(fast["samples_ms"]).items()})
    unknown = make_row("python-inductor", started=1, compile_mode="max-autotune", gflops=None)
    failed = make_row("python-inductor", started=2, compile_mode="reduce-overhead", status="failed", reason="x")
    other = dict(make_row("python-eager", started=3), device_name="NVIDIA H200")
    df = load_rows(tmp_path, [fast, unknown, failed, other])
    # two calibrations of the GPU: the best measured ceiling counts; another device's changes nothing here
    cals = [calibration(tflops=60.0), calibration(tflops=80.0), calibration("AMD EPYC", tflops=0.04)]
    out = report.render(df, calibrations=cals)
    gpu = out.split(f"## All runtimes — {GPU}")[1].split("## ")[0]
    assert column_cell(gpu, "python-inductor", "× floor", "| default ") == "40.0×"  # 15 / (30 / 80)
    assert column_cell(gpu, "python-inductor", "× floor", "max-autotune") == "—"  # no gflops
    assert column_cell(gpu, "python-inductor", "× floor", "reduce-overhead") == "—"  # not ok
    assert "GFLOP / 80.0 TFLOP/s (bf16 matmul" in gpu
    assert "× floor" not in out.split("## All runtimes — NVIDIA H200")[1].split("## ")[0]  # no calibration for it
    assert [c["peak"]["matmul_tflops"] for c in cals] == [60.0, 80.0, 0.04]  # render is pure


def test_calibration_section(tmp_path: Path) -> None:
    cal = calibration(note="eager form only | the rest did not fit")
    out = report.render(load_rows(tmp_path, seed_rows()), fmt="myst", calibrations=[cal])
    for block in seed_blocks():
        assert block in out  # the seed's tables do not move
    section = out.split("## Calibration\n")[1]
    assert section.startswith(f"\n### {GPU} · detector, fp32 · 2024-10-30\n")
    assert "matmul 80.0 TFLOP/s (bf16), copy 4260 GB/s" in section
    assert "30.0 GFLOP per forward; FLOP floor 0.375 ms" in section
    assert "before: SM 345 MHz, memory 9001 MHz, 34 °C, 19 W; after: SM 2535 MHz, memory 9001 MHz, 61 °C, 155 W." in (
        section
    )
    assert "- Note: eager form only \\| the rest did not fit" in section
    assert "triton do_bench failed for torch.compile: ImportError: no triton \\| here" in section
    assert ":name: calibration_nvidia_geforce_rtx_4060_ti_detector\n" in section
    head = table_lines(section, "form")[0]
    for name in ("ours host p50", "ours CUDA events p50", "torch.utils.benchmark", "triton do_bench", "ratio"):
        assert name in head
    eager = table_lines(section, "| eager ")[0]
    assert re.search(r"\|\s+17\.339 \|\s+17\.287 \|\s+19\.462 \|\s+19\.742 \|\s+0\.878 \|$", eager)
    compiled = table_lines(section, "torch.compile")[0]
    assert re.search(r"\|\s+1\.613 \|\s+— \|\s+1\.781 \|\s+— \|\s+0\.906 \|$", compiled)
    assert out.index("## Calibration") > out.index("## All runtimes")


def test_calibration_without_rows_or_nvml(tmp_path: Path) -> None:
    cpu = calibration("AMD EPYC", tflops=0.04, device="cpu", clocks_before={}, clocks_after={}, created_at=None)
    out = report.render(store.load(tmp_path / "nothing"), calibrations=[cpu])
    assert "No results yet" in out and "## Calibration" in out and "### AMD EPYC · detector, fp32\n" in out
    assert "no NVML readings" in out and "FLOP floor 750 ms" in out
    assert report.render(store.load(tmp_path / "nothing"), calibrations=[]) == report.render(
        store.load(tmp_path / "nothing")
    )


def test_cli_report_reads_calibrations(tmp_path: Path, cli: Any) -> None:
    import json

    from sweep.cli import app

    folder = tmp_path / "results"
    write_rows(folder / "rtx", seed_rows())
    (folder / "rtx" / "calibration-cuda-detector.json").write_text(json.dumps(calibration()))
    res = cli.invoke(app, ["report", "--results", str(folder)])
    assert res.exit_code == 0, res.output
    assert "## Calibration" in res.stdout and "× floor" in res.stdout
    bad = folder / "calibration-cuda-broken.json"
    bad.write_text("{not json")
    res = cli.invoke(app, ["report", "--results", str(folder)])
    assert res.exit_code == 2
    assert str(bad) in res.output and "Traceback" not in res.output
    bad.write_text("[1, 2]")
    res = cli.invoke(app, ["report", "--results", str(folder)])
    assert res.exit_code == 2 and str(bad) in res.output


# ---------------------------------------------------------------- processes, answers, fidelity (issues 9, 10, 11, 15)


def eager(p50s: list[float], precision: str = "fp32", **fields: Any) -> list[dict[str, Any]]:
    fields.setdefault("fidelity", "pass")
    return processes(len(p50s), p50s, model_precision=precision, amp_dtype="fp32", **fields)


def answers_of(out: str) -> str:
    return out.split("## Answers\n", 1)[1].split("Measured on:", 1)[0]


def test_seed_cell_is_mean_std_over_all_samples_of_all_processes(tmp_path: Path) -> None:
    rows = eager([10.0, 10.5, 11.0])
    out = report.render(load_rows(tmp_path, rows))
    pooled = stats.summarize([x for r in rows for x in r["samples_ms"]])
    assert report.fmt_mean_std(pooled["mean"], pooled["std"]) in table_lines(out.split("## All runtimes")[0], "fp32")[0]
    line = table_lines(out.split("## All runtimes")[1], "detector")[0]
    assert "|   10.500 |" in line and "10.000–11.000" in line  # p50: median of the process p50s; their range
    assert column_cell(out, "python-eager", "processes") == "3"
    assert column_cell(out, "python-eager", "CV between (%)") == "4.8"


def test_answers_first_fastest_passing_with_speedup(tmp_path: Path) -> None:
    rows = (
        eager([18.0, 18.3, 18.1], kernel_busy_ms=16.8, energy_mj_per_forward=7200.0, mean_power_w=400.0)
        + eager([15.8, 16.0, 17.1], "fp16", started=10, kernel_busy_ms=5.74)
        + eager([5.95, 5.96, 5.94], "fp16", cuda_graphs=True, started=20, energy_mj_per_forward=1800.0,
                mean_power_w=300.0)
        + eager([5.0, 5.1, 5.05], "bf16", cuda_graphs=True, fidelity="fail", started=30)
    )
    out = report.render(load_rows(tmp_path, rows))
    assert out.startswith("# Benchmark results\n\n## Answers\n")
    answer = answers_of(out)
    assert "Fastest that passes fidelity: **python-eager · fp16 · CUDA graphs** at p50 5.950 ms" in answer
    assert "median of 3 processes, range 5.940–5.960 ms" in answer
    assert "Runner-up: **python-eager · fp16** at p50 16.000 ms" in answer
    assert "**3.04×** (3.02–3.08× between the extremes of the process p50s; significant by Student's t" in answer
    assert "same machine and sweep" in answer
    assert "Its cost: 1800 mJ per inference, 300 W mean power." in answer
    assert "Faster but failing fidelity: **python-eager · bf16 · CUDA graphs**" in answer
    assert "python-eager · fp16: 16.000 → 5.950 ms, 2.69× faster" in answer
    # the seed-format summary marks the failing row beside its latency, and has a fidelity column
    seed = out.split("**Python Runtime, no TensorRT**")[1].split("## ")[0]
    assert re.search(r"\| bf16 .*\d ± \d\.\d{3} \(fails fidelity\) \| fail ", seed)
    # GPU busy = kernel busy / p50; launch-bound below half
    assert column_cell(out, "python-eager", "GPU busy (%)", "| fp16              | fp32      | off") == (
        "36 launch-bound"
    )
    assert column_cell(out, "python-eager", "GPU busy (%)", "| fp32              | fp32      | off") == "93"
    assert column_cell(out, "python-eager", "mJ/inference", "| fp32              | fp32      | off") == "7200"


def test_two_fastest_within_their_spread_are_tied(tmp_path: Path) -> None:
    rows = (
        eager([18.0, 18.3, 18.1])
        + eager([5.94, 5.95, 5.96], "fp16", cuda_graphs=True, started=10)
        + processes(3, [5.9, 6.0, 6.1], runtime="python-inductor", amp_dtype="", model_precision="fp16",
                    compile_mode="reduce-overhead", fidelity="pass", compile_s=160.0, started=20)
    )
    answer = answers_of(report.render(load_rows(tmp_path, rows)))
    assert "Fastest that passes fidelity: **tied**, **python-eager · fp16 · CUDA graphs**" in answer
    assert "and **python-inductor · fp16 · reduce-overhead** at p50 6.000 ms" in answer
    assert "neither is faster here" in answer and "Runner-up" not in answer


def test_rows_without_a_verdict_say_why_and_are_never_called_correct(tmp_path: Path) -> None:
    note = "C++ outputs not compared: no reference for this device"
    rows = [
        make_row("cpp-aoti", amp_dtype="", mean=4.0, fidelity=None, fidelity_note=note,
                 profile_note="not measured for C++ runtimes", energy_note="no NVML energy counter"),
        make_row(mean=9.0, started=1),
    ]
    out = report.render(load_rows(tmp_path, rows))
    answer = answers_of(out)
    assert "No variant passes fidelity (2 variants without a verdict" in answer
    assert "**correctness not established**: **cpp-aoti · fp32** at p50" in answer
    assert "1 process: the spread between processes was not measured" in answer
    assert "by Mann-Whitney U at p < 0.002 on the samples" in answer
    assert "cannot see the noise between processes" in answer
    mark = footnote(out, note)
    assert column_cell(out, "cpp-aoti", "fidelity") == f"—{mark}"
    assert column_cell(out, "cpp-aoti", "GPU busy (%)") == f"—{footnote(out, 'not measured for C++')}"
    assert column_cell(out, "cpp-aoti", "mJ/inference") == f"—{footnote(out, 'no NVML energy counter')}"


def test_graph_capture_failure_and_missing_baseline(tmp_path: Path) -> None:
    rows = [
        make_row("cpp-aoti", amp_dtype="", fidelity="pass", mean=6.0),
        make_row("cpp-aoti", amp_dtype="", cuda_graphs=True, status="unsupported", started=1,
                 reason="CUDA graph capture failed: operation not permitted when stream is capturing"),
    ]
    out = report.render(load_rows(tmp_path, rows))
    answer = answers_of(out)
    assert "no ok eager fp32 job" in answer
    assert f"cpp-aoti · fp32: with graphs unsupported{footnote(out, 'CUDA graph capture failed')}" in answer
    no_graphs = answers_of(report.render(load_rows(tmp_path / "b", [make_row(fidelity="pass")])))
    assert "CUDA graphs: not measured in this sweep" in no_graphs
    assert "Eager fp32 itself is the fastest here" in no_graphs


def test_failed_process_and_compile_time(tmp_path: Path) -> None:
    rows = processes(3, [8.0, 8.1, 8.2], runtime="python-inductor", amp_dtype="", compile_mode="default",
                     fidelity="pass", compile_s=164.0)
    rows[1] = dict(rows[1], status="failed", reason="killed by SIGSEGV", samples_ms=[])
    out = report.render(load_rows(tmp_path, rows))
    cell = column_cell(out, "python-inductor", "processes")
    assert cell == f"2 of 3{footnote(out, 'process 1: failed: killed by SIGSEGV')}"
    assert column_cell(out, "python-inductor", "compile (s)") == "164"
    assert column_cell(out, "python-inductor", "p50 (ms)") == "8.100"  # median of the two ok processes


def test_a_compile_failure_counts_once_however_many_processes_it_stopped(tmp_path: Path) -> None:
    """A job's variant failed to compile: one row per planned process (sweep.schema.NOT_LAUNCHED), one failure.
    A job whose earlier run went ok for one process and whose rerun's compile then failed: one footnote."""
    why = "compile failed: FixtureCompileError"
    stopped = [make_row("python-aoti", process=i, processes=3, status="compile_failed", reason=why, started=5 + i,
                        variant_key="v1", samples_ms=[]) for i in range(3)]
    partly = processes(3, [8.0, 8.1, 8.2], runtime="python-inductor", amp_dtype="", compile_mode="default")
    for i in (1, 2):
        partly[i] = dict(partly[i], status="compile_failed", reason=why, samples_ms=[])
    out = report.render(load_rows(tmp_path, processes(3) + stopped + partly))
    assert "3 configurations (4 processes run; 2 configurations whose variant failed to compile) from 9 rows" in out
    assert column_cell(out, "python-aoti", "processes") == "0 of 3"
    assert column_cell(out, "python-aoti", "status") == f"compile_failed{footnote(out, why)}"
    cell = column_cell(out, "python-inductor", "processes")
    assert cell == f"1 of 3{footnote(out, 'processes 1, 2: compile_failed: ' + why)}"


def test_duplicate_rows_are_named(tmp_path: Path) -> None:
    rows = eager([10.0, 10.1, 10.2]) + [dict(eager([30.0])[0], run_id="run-b", started_at=T0 + timedelta(hours=1))]
    out = report.render(load_rows(tmp_path, rows))
    job_key = rows[0]["job_key"]
    assert "Duplicate rows: 1 (job, process) pair has more than one row" in out
    assert f"`{job_key}` (python-eager · fp32) process 0: runs `run-a`, `run-b`; shown: `run-b`" in out
    assert column_cell(out, "python-eager", "p50 (ms)") == "10.200"  # processes 0 (run-b, 30), 1, 2: median


def test_machines_are_never_mixed(tmp_path: Path) -> None:
    h200 = [dict(r, device_name="NVIDIA H200", run_id="run-h200") for r in eager([5.0, 5.1, 5.2], "fp16")]
    rows = eager([10.0, 10.1, 10.2]) + eager([9.0, 9.1, 9.2], "fp16") + h200
    out = report.render(load_rows(tmp_path, rows))
    answer = answers_of(out)
    assert answer.count("**NVIDIA H200 · torch 2.5.1") == 1 and answer.count(f"**{GPU} · torch 2.5.1") == 1
    blocks = {block.split(" · ")[0]: block for block in answer.split("\n**")[1:]}
    assert set(blocks) == {"NVIDIA H200", GPU}
    assert "no ok eager fp32 job" in blocks["NVIDIA H200"]  # the other machine's eager fp32 is not its baseline
    assert "Speedup over eager fp32" in blocks[GPU]
    assert f"## Summary — {GPU} · torch 2.5.1" in out and "## All runtimes — NVIDIA H200 · torch 2.5.1" in out
    h200_table = out.split("## All runtimes — NVIDIA H200")[1]
    assert column_cell(h200_table, "python-eager", "processes") == "3"  # not 6: its rows only


def test_skipped_files_are_listed(tmp_path: Path) -> None:
    out = report.render(load_rows(tmp_path, [make_row()]), skipped=[("r/bad.parquet", "Corrupt snappy\n data")])
    assert "Skipped 1 unreadable row file (--skip-bad)" in out and "- `r/bad.parquet`: Corrupt snappy data" in out
    empty = report.render(store.load(tmp_path / "none"), skipped=[("r/bad.parquet", "bad")])
    assert "No results yet" in empty and "r/bad.parquet" in empty


def test_committed_h200_results_render(cli: Any) -> None:
    from sweep.cli import app

    folder = Path(__file__).parents[1] / "results" / "h200-2026-11-28"
    res = cli.invoke(app, ["report", "--results", str(folder)])
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert out.startswith("# Benchmark results\n\n## Answers\n\n**NVIDIA H200")
    assert "No variant passes fidelity" in out and "correctness not established" in out
    assert "**Python Runtime, no TensorRT**" in out and "**python-inductor**" in out
    assert "Duplicate rows:" in out and "## Calibration" in out


def test_cli_skip_bad_renders_the_rest_and_lists_what_it_skipped(tmp_path: Path, cli: Any) -> None:
    from sweep.cli import app

    folder = tmp_path / "results"
    write_rows(folder, eager([10.0, 10.1, 10.2]))
    bad = folder / "row-damaged.parquet"
    bad.write_bytes(b"PAR1 not really parquet PAR1")
    refused = cli.invoke(app, ["report", "--results", str(folder)])
    assert refused.exit_code == 2 and "row-damaged.parquet" in refused.stderr and "Traceback" not in refused.output
    res = cli.invoke(app, ["report", "--results", str(folder), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert "Skipped 1 unreadable row file (--skip-bad)" in res.stdout and f"`{bad}`" in res.stdout
    assert "**python-eager · fp32** at p50 10.100 ms" in res.stdout
    assert f"skipped {bad}" in res.stderr


def test_unmeasured_figures_say_why_even_without_a_note(tmp_path: Path) -> None:
    rows = [make_row("cpp-aoti", amp_dtype="", fidelity="pass"), make_row(device="cpu", fidelity="pass", started=1)]
    out = report.render(load_rows(tmp_path, rows))
    assert column_cell(out, "cpp-aoti", "GPU busy (%)") == f"—{footnote(out, 'not measured for C++ runtimes')}"
    assert column_cell(out, "python-eager", "GPU busy (%)") == f"—{footnote(out, 'not measured: kernel time')}"
    assert column_cell(out, "python-eager", "mJ/inference") == f"—{footnote(out, 'not measured: NVML')}"
