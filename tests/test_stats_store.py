"""Statistics derived in one place, the one Parquet schema, durable appends."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from sweep import store
from sweep.errors import ResultsError
from sweep.stats import summarize


def test_summarize_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    samples = list(rng.gamma(5.0, 2.0, size=257))
    s = summarize(samples)
    assert s["mean"] == pytest.approx(np.mean(samples))
    assert s["std"] == pytest.approx(np.std(samples, ddof=1))
    for q in (50, 90, 99):
        assert s[f"p{q}"] == pytest.approx(np.percentile(samples, q))
    assert s["min"] == min(samples)
    assert s["cv"] == pytest.approx(np.std(samples, ddof=1) / np.mean(samples))


def test_summarize_edge_cases() -> None:
    assert summarize([]) == {k: None for k in ("mean", "std", "p50", "p90", "p99", "min", "cv")}
    one = summarize([3.0])
    assert one["mean"] == 3.0 and one["std"] == 0.0 and one["p99"] == 3.0


def _row(key: str, **extra: object) -> dict[str, object]:
    now = datetime.now(timezone.utc)
    return {"job_key": key, "process": 0, "run_id": "r1", "matrix": "m", "model": "tiny", "runtime": "python-eager",
            "status": "ok", "samples_ms": [1.0, 2.0], "started_at": now, "finished_at": now, **extra}


def test_append_and_load_round_trip(tmp_path: Path) -> None:
    store.append_row(tmp_path, _row("a" * 20, latency_ms_mean=1.5))
    store.append_row(tmp_path, _row("b" * 20, status="failed", reason="boom"))
    df = store.load(tmp_path)
    assert list(df.columns) == list(store.COLUMNS)
    assert df["job_key"].tolist() == ["a" * 20, "b" * 20]
    assert list(df.loc[0, "samples_ms"]) == [1.0, 2.0]
    assert (df["schema_version"] == store.SCHEMA_VERSION).all()
    assert not list(tmp_path.glob(".*.tmp"))


def test_rows_with_unknown_columns_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in the schema"):
        store.append_row(tmp_path, _row("a" * 20, latency=1.0))
    assert not list(tmp_path.iterdir())


def test_foreign_parquet_is_refused_with_advice(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(ResultsError, match="not written by sweep"):
        store.load(tmp_path)


def test_empty_folder_loads_empty_frame(tmp_path: Path) -> None:
    df = store.load(tmp_path / "missing")
    assert len(df) == 0 and list(df.columns) == list(store.COLUMNS)


def test_nvml_follows_cuda_visible_devices() -> None:
    from sweep.telemetry import nvml_target

    assert nvml_target("cuda", None) == ("index", 0)
    assert nvml_target("cuda:1", "") == ("index", 1)
    assert nvml_target("cuda", "3,1") == ("index", 3)
    assert nvml_target("cuda:1", "3,1") == ("index", 1)
    assert nvml_target("cuda:0", "GPU-8f2e") == ("uuid", "GPU-8f2e")
