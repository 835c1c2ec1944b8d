"""Schema v2 on real Parquet files: typed rows, v1 upgrades, refusals, damage named all at once, permissions."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sweep import schema, store
from sweep.errors import ResultsError
from sweep.execute import Outcome
from sweep.jobs import Job, ModelSpec, canonical_key
from sweep.orchestrate import Machine
from sweep.rows import make_row

ROOT = Path(__file__).resolve().parent.parent
H200 = ROOT / "results" / "h200-2026-11-28"
NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _row(key: str, **fields: Any) -> dict[str, Any]:
    return {"job_key": key, "process": 0, "run_id": "r1", "runtime": "python-eager", "status": "ok",
            "samples_ms": [1.0, 2.0], "started_at": NOW, "finished_at": NOW, **fields}


def _sweep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sweep", *args], env=ENV, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)


def _flip_value(path: Path, needle: bytes, column: str) -> None:
    """Flip one bit of the copy of `needle` that lives in a data page: the one whose flip, read WITHOUT checksum
    verification, changes `column`'s value (the other copies are min/max statistics, never read back)."""
    data = path.read_bytes()
    original = pq.read_table(path).column(column)[0].as_py()
    offset = data.find(needle)
    while offset >= 0:
        damaged = bytearray(data)
        damaged[offset + len(needle) // 2] ^= 0x01
        path.write_bytes(bytes(damaged))
        try:
            unverified = pq.read_table(path, page_checksum_verification=False).column(column)[0].as_py()
        except (OSError, pa.ArrowException):
            unverified = original
        if unverified != original:
            return
        offset = data.find(needle, offset + 1)
    path.write_bytes(data)
    raise AssertionError(f"no data-page copy of {needle!r} in {path}")


# ---------------------------------------------------------------- the committed v1 rows


def test_committed_h200_v1_rows_load_as_v2() -> None:
    files = store.row_files(H200)
    assert len(files) == 20 and all(pq.read_schema(f).metadata[b"sweep_schema_version"] == b"1" for f in files)
    df = store.load(H200)
    assert list(df.columns) == list(schema.COLUMNS) and len(df) == 20
    assert (df["schema_version"] == 2).all() and (df["process"] == 0).all() and (df["processes"] == 1).all()
    assert (df["executor"] == "local").all() and not df["cuda_graphs"].any() and (df["tf32"] == "").all()
    assert df["fidelity"].isna().all()
    assert (df["fidelity_note"] == "row predates fidelity verdicts (schema v1)").all()
    b = ModelSpec(kind="builtin", ref="dino-vitdet-b", input_shapes=((3, 512, 512),), input_range=(0.0, 255.0))
    assert set(df["model_key"]) == {b.key}  # the v1 `job` JSON's model, hashed as the new code hashes it
    assert all([list(s) for s in shapes] == [[3, 512, 512]] for shapes in df["input_shapes"])
    labels = {"+".join(p) for p in df["enabled_precisions"]}
    assert labels == {"", "fp32", "fp32+bf16", "fp32+bf16+fp16"}
    eager = df[(df["runtime"] == "python-eager") & (df["status"] == "ok")].iloc[0]
    assert eager["telemetry"]["before"]["sm_clock_mhz"] == 1980.0
    assert eager["tf32_matmul"] is False and eager["tf32_cudnn"] is True
    assert eager["int_mismatch"] == 0.02 and "tf32_matmul" not in json.loads(eager["extra"])
    cpp = df[df["runtime"] == "cpp-torchscript"].iloc[0]
    assert json.loads(cpp["extra"])["binary"] == "sweep-bench"  # runtime-specific facts stay in extra


def test_committed_h200_rows_render() -> None:
    res = _sweep("report", "--results", str(H200))
    assert res.returncode == 0, res.stderr
    df = store.load(H200)
    df["settings"] = [f"{p}|{a}|{'+'.join(e)}|{c}" for p, a, e, c in
                      zip(df["model_precision"], df["amp_dtype"], df["enabled_precisions"], df["compile_mode"],
                          strict=True)]
    latest = df[df["status"] == "ok"].groupby(["runtime", "settings"]).tail(1)  # re-runs: the latest is shown
    assert len(latest) == 9
    for mean, std in zip(latest["latency_ms_mean"], latest["latency_ms_std"], strict=True):
        assert f"{mean:.3f} ± {std:.3f}" in res.stdout
    assert "fp32+bf16+fp16" in res.stdout  # a TensorRT label, from the v1 text through list<string>


def test_v1_to_v2_step_is_pure_and_the_chain_ends_at_the_current_version() -> None:
    model = {"kind": "factory", "ref": "m:f", "input_shapes": [[2, 8]], "input_range": [-1.0, 1.0], "options": {},
             "checkpoint": False, "content_hash": ""}
    v1 = {"schema_version": 1, "job_key": "k", "run_id": "r", "runtime": "cpp-trt", "status": "ok",
          "enabled_precisions": "fp32+bf16", "input_shapes": "[[2, 8]]", "telemetry": "{}",
          "extra": json.dumps({"tf32_cudnn": True, "int_mismatch": 0.5, "engine": "x"}),
          "job": json.dumps({"model": model}), "started_at": NOW}
    frozen = dict(v1)
    v2 = schema.upgrade(v1, 1)
    assert v1 == frozen  # the step copies, never edits its input
    assert v2["schema_version"] == schema.SCHEMA_VERSION and "job" not in v2
    assert v2["model_key"] == canonical_key(model) == ModelSpec("factory", "m:f", ((2, 8),)).key
    assert v2["enabled_precisions"] == ["fp32", "bf16"] and v2["input_shapes"] == [[2, 8]]
    assert v2["telemetry"] is None and v2["tf32_cudnn"] is True and v2["int_mismatch"] == 0.5
    assert v2["tf32_matmul"] is None and json.loads(v2["extra"]) == {"engine": "x"}
    assert set(v2) <= set(schema.COLUMNS)
    assert schema.upgrade(v2, schema.SCHEMA_VERSION) == v2
    assert sorted(schema.UPGRADES) == list(range(1, schema.SCHEMA_VERSION))


# ---------------------------------------------------------------- refusals


def test_newer_schema_version_is_refused_saying_upgrade(tmp_path: Path) -> None:
    path = store.append_row(tmp_path, _row("a" * 20))
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"sweep_schema_version": b"3"}), path)
    with pytest.raises(ResultsError, match=r"schema_version 3 is newer than this sweep reads \(2\); upgrade sweep"):
        store.load(tmp_path)


def test_missing_required_columns_are_rejected_naming_them(tmp_path: Path) -> None:
    path = store.append_row(tmp_path, _row("a" * 20))
    pq.write_table(pq.read_table(path).drop_columns(["process", "status"]), path)
    with pytest.raises(ResultsError, match="missing required columns process, status") as info:
        store.load(tmp_path)
    assert path.name in str(info.value)
    with pytest.raises(ValueError, match="lacks required columns"):
        store.append_row(tmp_path / "w", {k: v for k, v in _row("b" * 20).items() if k != "process"})
    assert not store.row_files(tmp_path / "w")


def test_optional_columns_may_be_absent_but_unknown_ones_mean_damage(tmp_path: Path) -> None:
    path = store.append_row(tmp_path, _row("a" * 20, latency_ms_std=0.5))
    pq.write_table(pq.read_table(path).drop_columns(["gpu_uuid"]), path)
    assert store.load(tmp_path)["gpu_uuid"].isna().all()
    table = pq.read_table(path)
    renamed = table.rename_columns(["latency_ms_stc" if n == "latency_ms_std" else n for n in table.column_names])
    pq.write_table(renamed.replace_schema_metadata(table.schema.metadata), path)  # a flipped byte in a name
    with pytest.raises(ResultsError, match="latency_ms_stc are not in schema_version 2"):
        store.load(tmp_path)


# ---------------------------------------------------------------- damage


def test_a_flipped_float_byte_is_detected_not_read_back(tmp_path: Path) -> None:
    path = store.append_row(tmp_path, _row("a" * 20, latency_ms_std=46.30))
    _flip_value(path, struct.pack("<d", 46.30), "latency_ms_std")  # asserts the unverified read is wrong
    with pytest.raises(ResultsError, match="page checksum") as info:
        store.load(tmp_path)
    assert path.name in str(info.value)
    _, bad = store.load(tmp_path, skip_bad=True)
    assert [b.path for b in bad] == [path]


def _damaged_folder(tmp_path: Path) -> tuple[Path, list[Path]]:
    folder = tmp_path / "r"
    store.append_row(folder, _row("c" * 20))
    bad = []
    for key in (canonical_key("a"), canonical_key("b")):  # not repetitive: snappy keeps them literal
        path = store.append_row(folder, _row(key))
        _flip_value(path, key.encode(), "job_key")  # a data page of a column resume reads
        bad.append(path)
    newer = store.append_row(folder / "later", _row("d" * 20))
    pq.write_table(pq.read_table(newer).replace_schema_metadata({b"sweep_schema_version": b"7"}), newer)
    return folder, [*bad, newer]


def test_skip_bad_returns_good_rows_and_every_skipped_file(tmp_path: Path) -> None:
    folder, bad = _damaged_folder(tmp_path)
    df, skipped = store.load(folder, skip_bad=True)
    assert df["job_key"].tolist() == ["c" * 20]
    assert sorted(b.path for b in skipped) == sorted(bad)
    whys = {b.path.name: b.why for b in skipped}
    assert "page checksum" in whys[bad[0].name] and "newer than this sweep" in whys[bad[2].name]
    with pytest.raises(ResultsError) as info:
        store.load(folder)
    message = str(info.value)
    assert "\n" not in message and "3 unreadable row files" in message
    assert all(str(p.relative_to(folder)) in message for p in bad)


def test_many_bad_files_are_counted_after_the_first_few(tmp_path: Path) -> None:
    for i in range(store.LISTED_BAD + 3):
        (tmp_path / f"junk-{i:02d}.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ResultsError, match=r"11 unreadable row files: junk-00.parquet .*; and 3 more;"):
        store.load(tmp_path)


@pytest.mark.parametrize("command", ["report", "run"])
def test_damaged_pages_exit_2_naming_every_bad_file(command: str, write_matrix, tmp_path: Path) -> None:
    folder, bad = _damaged_folder(tmp_path)
    if command == "report":
        res = _sweep("report", "--results", str(folder))
    else:
        matrix = write_matrix("""
            model: {factory: "fault_models:small", input_shape: [2, 8]}
            jobs: [{runtime: python-eager}]
        """)
        res = _sweep("run", str(matrix), "--results", str(folder), "--artifacts", str(tmp_path / "a"))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and res.stderr.strip().endswith(errors[0]), res.stderr  # (run: after its progress line)
    assert all(p.name in errors[0] for p in bad)
    assert len(store.row_files(folder)) == 4  # nothing ran, nothing written


# ---------------------------------------------------------------- permissions, typed columns, resume


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_row_files_follow_the_umask(umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        path = store.append_row(tmp_path, _row("a" * 20))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def _runner_result() -> dict[str, Any]:
    """A result.json as the CUDA Python runner writes it (TEAM.md), every new field present."""
    snap = {"sm_clock_mhz": 1980, "mem_clock_mhz": 3201, "temperature_c": 40, "power_w": 300.5,
            "utilization_pct": 90, "device_mem_used_mb": 2048.0}
    return {"status": "ok", "samples_ms": [5.0, 5.2, 5.1], "samples_cuda_ms": [4.9, 5.1, 5.0],
            "telemetry": {"before": snap, "after": {**snap, "temperature_c": 44}}, "peak_mem_mb": 500.0,
            "reserved_mem_mb": 600.0, "nvml_mem_mb": 900.0, "load_s": 1.5, "cuda_graphs": True,
            "tf32_matmul": False, "tf32_cudnn": True, "num_threads": 16, "kernel_busy_ms": 4.7,
            "kernels_per_forward": 966.0, "profile_note": "", "energy_mj_per_forward": 12.3, "mean_power_w": 410.0,
            "energy_note": "", "extra": {"compile_calls": 1, "tf32_matmul": False},
            "fidelity": {"rel_err": 1e-3, "rel_err_sorted": 5e-4, "max_abs_err": 0.1, "int_mismatch": 0.0,
                         "error": 2e-3, "finite": True, "note": ""},
            "env": {"python_version": "3.12.1"}}


def _made_row(**kwargs: Any) -> dict[str, Any]:
    job = Job("python-eager", ModelSpec("builtin", "tiny", ((1, 3, 64, 64),)), "cuda", model_precision="fp16",
              cuda_graphs=True, processes=3)
    machine = Machine("NVIDIA H200", "2.11.0", "node1", cuda_version="13.0", driver_version="580")
    return make_row(job, Outcome(status="ok", result=_runner_result(), wall_s=9.0), run_id="run", machine=machine,
                    started_at=NOW, finished_at=NOW, **kwargs)


def test_make_row_maps_every_result_field_to_a_typed_column(tmp_path: Path) -> None:
    verdict = {"fidelity": "pass", "fidelity_precision": "fp16", "fidelity_tolerance": 2e-2,
               "fidelity_measure": "elementwise", "fidelity_error": 2e-3}
    row = _made_row(verdict=verdict, process=2, processes=3, gpu_index=5, gpu_uuid="GPU-1", executor="slurm",
                    slurm_job_id="77_1")
    store.append_row(tmp_path, row)
    got = store.load(tmp_path).iloc[0]
    assert (got["process"], got["processes"], got["gpu_index"], got["executor"]) == (2, 3, 5, "slurm")
    assert got["cuda_graphs"] and got["fidelity"] == "pass" and got["fidelity_tolerance"] == 2e-2
    assert got["rel_err"] == 1e-3 and got["int_mismatch"] == 0.0 and got["num_threads"] == 16
    assert got["kernel_busy_ms"] == 4.7 and got["energy_mj_per_forward"] == 12.3 and got["mean_power_w"] == 410.0
    assert got["telemetry"]["after"]["temperature_c"] == 44.0 and list(got["input_shapes"][0]) == [1, 3, 64, 64]
    assert json.loads(got["extra"]) == {"compile_calls": 1}  # runtime facts only: TF32 left for its column
    with pytest.raises(ValueError, match="not verdict columns"):
        _made_row(verdict={"verdict": "pass"})


def test_no_column_holds_json_text_except_extra(tmp_path: Path) -> None:
    """Rows made now and rows upgraded from v1, as written to disk: only `extra` parses as a JSON object/list."""
    store.append_row(tmp_path, _made_row())
    for path in store.row_files(H200):
        for row in pq.read_table(path).to_pylist():
            store.append_row(tmp_path, {k: v for k, v in schema.upgrade(row, 1).items() if k != "schema_version"})
    for path in store.row_files(tmp_path):
        table = pq.read_table(path)
        assert table.schema.equals(schema.SCHEMA, check_metadata=False)
        for name in table.column_names:
            if not pa.types.is_string(table.schema.field(name).type) or name in schema.JSON_COLUMNS:
                continue
            for value in table.column(name).to_pylist():
                try:
                    parsed = json.loads(value) if value else None
                except ValueError:
                    continue
                assert not isinstance(parsed, (dict, list)), (path.name, name, value)


def test_resume_reads_v1_and_v2_without_pandas_or_torch(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    store.append_row(folder, _row("a" * 20, process=1, device_name="X", torch_version="2.13"))
    for path in store.row_files(H200)[:2]:
        (folder / path.name).write_bytes(path.read_bytes())
    probe = (f"import sys, json; from pathlib import Path; from sweep import store; "
             f"rows = store.resume_rows(Path({str(folder)!r})); "
             f"print(json.dumps([sorted(rows[0]), sorted(set(m.split('.')[0] for m in sys.modules))]))")
    res = subprocess.run([sys.executable, "-c", probe], env=ENV, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    columns, modules = json.loads(res.stdout)
    assert columns == sorted(store.RESUME_COLUMNS)
    assert "pandas" not in modules and "torch" not in modules
    rows = {(r["job_key"], r["process"]) for r in store.resume_rows(folder)}
    assert ("a" * 20, 1) in rows and len(rows) == 3 and all(p in (0, 1) for _, p in rows)


# ---------------------------------------------------------------- row file names


def test_rows_that_shared_a_file_name_before_are_all_kept(tmp_path: Path) -> None:
    """One run, one second, keys alike in their first 16 characters, one process: the old name
    (`row-<run>-<second>-<key[:16]>-p<process>`) was the same for all three, so the last replaced the others."""
    keys = ["0123456789abcdef" + tail for tail in ("aaaa", "bbbb", "bbbb")]  # the last two rows: one key, twice
    paths = [store.append_row(tmp_path, _row(key, latency_ms_mean=float(i))) for i, key in enumerate(keys)]
    assert len(set(paths)) == 3 and all(p.is_file() for p in paths)
    assert all(keys[0] in paths[0].name and keys[1] in p.name for p in paths[1:])  # the whole key is in the name
    df = store.load(tmp_path)
    assert sorted(df["latency_ms_mean"]) == [0.0, 1.0, 2.0]
    assert sorted(r["job_key"] for r in store.resume_rows(tmp_path)) == sorted(keys)


def test_a_row_never_replaces_an_existing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the random suffix repeats, the second row gets another name and the first file is untouched."""
    draws = iter(["same", "same", "other"])
    monkeypatch.setattr(store, "_suffix", lambda: next(draws))
    first = store.append_row(tmp_path, _row("k" * 20, latency_ms_mean=1.0))
    before = first.read_bytes()
    second = store.append_row(tmp_path, _row("k" * 20, latency_ms_mean=2.0))
    assert second != first and first.read_bytes() == before
    assert sorted(store.load(tmp_path)["latency_ms_mean"]) == [1.0, 2.0]
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind by the refused publish


def test_committed_rows_with_older_names_still_read(tmp_path: Path) -> None:
    """Readers never parse names: the committed files (16-character keys, no suffix) load beside new ones."""
    old = store.row_files(H200)
    for path in old:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    store.append_row(tmp_path, _row("n" * 20))
    assert len(store.load(tmp_path)) == len(old) + 1
