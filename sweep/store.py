"""The results dataset: durable one-row Parquet files with page checksums, read back verified and upgraded."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import pyarrow as pa
import pyarrow.parquet as pq

from sweep import atomic
from sweep.errors import ResultsError
from sweep.schema import (
    COLUMNS,
    REQUIRED,
    REQUIRED_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    SchemaMismatch,
    check_columns,
    file_version,
    upgrade,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COLUMNS", "RESUME_COLUMNS", "SCHEMA", "SCHEMA_VERSION", "BadFile", "append_row", "load", "resume_rows",
           "row_files"]

# What resume needs to decide that a (job, process) is done on this machine (sweep.orchestrate).
RESUME_COLUMNS = ("job_key", "process", "status", "device_name", "torch_version", "torch_tensorrt_version",
                  "tensorrt_version", "runtime")
T = TypeVar("T")
# Row file names: the whole job key (bounded, for synthetic keys), a random suffix, nothing but [A-Za-z0-9_.-].
KEY_CHARS = 64
UNIQUE_CHARS = 8
NAME_TRIES = 8
SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
LISTED_BAD = 8  # bad files named in the one-line error; the rest are counted
WHY_CHARS = 120


@dataclass(frozen=True)
class BadFile:
    """A row file that could not be read, and why (one line)."""

    path: Path
    why: str


# ---------------------------------------------------------------- writing


def _table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    rows = list(rows)
    unknown = {k for row in rows for k in row} - set(COLUMNS)
    if unknown:
        raise ValueError(f"row has columns not in the schema: {sorted(unknown)}")
    data = {name: [row.get(name) for row in rows] for name in COLUMNS}
    data["schema_version"] = [SCHEMA_VERSION] * len(rows)
    empty = [name for name in REQUIRED if any(v is None for v in data[name])]
    if empty:
        raise ValueError(f"row lacks required columns: {empty}")
    return pa.Table.from_pydict(data, schema=SCHEMA)


def _suffix() -> str:
    return uuid.uuid4().hex[:UNIQUE_CHARS]


def row_name(row: Mapping[str, Any], unique: str) -> str:
    """A row file's name: run, start to the second, the whole job key, process and `unique` (a random suffix).

    Only for people listing the folder: readers take every `*.parquet` under it and never parse names, so the
    shorter names of older rows (16 characters of the key, no suffix) read the same.
    """
    stamp = str(row.get("started_at") or "").replace(":", "").replace(" ", "T").replace("+0000", "")
    key = SAFE_NAME.sub("_", str(row["job_key"]))[:KEY_CHARS]
    return f"row-{SAFE_NAME.sub('_', str(row['run_id']))}-{stamp[:17]}-{key}-p{row['process']}-{unique}.parquet"


def append_row(results_dir: Path, row: Mapping[str, Any]) -> Path:
    """Write one row as its own Parquet file, durably and with page checksums, before the sweep moves on.

    The file gets a name no other row has: a random suffix, and a publish that fails rather than replace an
    existing file (then another suffix is drawn), so two rows never overwrite each other."""
    results_dir.mkdir(parents=True, exist_ok=True)
    table = _table([row])
    for _ in range(NAME_TRIES):
        final = results_dir / row_name(row, _suffix())
        try:
            with atomic.atomic_file(final, replace=False) as fh:  # mode 0666 less the umask, like any user file
                pq.write_table(table, fh, write_page_checksum=True)
        except FileExistsError:
            continue
        return final
    raise FileExistsError(f"{results_dir}: no free row file name after {NAME_TRIES} tries")


# ---------------------------------------------------------------- reading


def row_files(results_dir: Path) -> list[Path]:
    """All row files under the folder (recursively: a results/ tree may hold one folder per machine)."""
    if not results_dir.exists():
        return []
    return sorted(p for p in results_dir.rglob("*.parquet") if not p.name.startswith("."))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= WHY_CHARS else text[: WHY_CHARS - 1] + "…"


def _damage(exc: Exception) -> str:
    """pyarrow's words for a damaged file, shortened to what the user needs to know."""
    text = _one_line(exc)
    if "CRC checksum verification failed" in str(exc):
        return "damaged: a page checksum does not match"
    if "Corrupt snappy" in text or "decompress" in text.lower():
        return f"damaged: {text}"
    return f"unreadable: {text}"


def _pylist(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as dicts, column by column: Table.to_pylist (like pa.array) makes pyarrow import pandas."""
    names = table.column_names
    columns = [table.column(name).to_pylist() for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _open(path: Path, columns: Sequence[str]) -> tuple[pa.Table, int]:
    """A file's `columns` (and, for older versions, what their upgrade needs) as stored, with its schema
    version; checksums verified. SchemaMismatch, or pyarrow's error for a damaged file, when it cannot be used."""
    parquet = pq.ParquetFile(path, page_checksum_verification=True)
    arrow_schema = parquet.schema_arrow
    version = file_version(arrow_schema.metadata)
    check_columns(version, arrow_schema.names)
    if version == SCHEMA_VERSION or tuple(columns) == RESUME_COLUMNS:
        # Resume's columns have the same names in every version (v1's process is a constant of its step).
        wanted = [c for c in arrow_schema.names if c in columns]
    else:
        wanted = list(arrow_schema.names)  # an upgrade step may derive a column from others
    table = parquet.read(columns=wanted)
    read = set(table.column_names)
    nulls = [c for c in REQUIRED_COLUMNS[version] if c in read and table.column(c).null_count]
    if nulls:
        raise SchemaMismatch(f"required columns {', '.join(nulls)} hold nulls")
    return table, version


def _current(table: pa.Table, version: int, columns: Sequence[str]) -> pa.Table:
    """A file's table as `columns` of the current schema: upgraded when older, nulls for absent optional columns."""
    if version != SCHEMA_VERSION:
        rows = [upgrade(row, version) for row in _pylist(table)]
        table = pa.Table.from_pylist(rows, schema=pa.schema([SCHEMA.field(c) for c in SCHEMA.names
                                                              if any(c in r for r in rows)]))
    target = pa.schema([SCHEMA.field(c) for c in columns])
    present = set(table.column_names)
    if present >= set(columns):
        table = table.select(list(columns))
        return table if table.schema.equals(target) else table.cast(target)
    arrays = [table.column(c) if c in present else pa.nulls(len(table), SCHEMA.field(c).type) for c in columns]
    return pa.Table.from_arrays(arrays, names=list(columns)).cast(target)


def _read_file(path: Path, columns: Sequence[str]) -> pa.Table:
    """One file as `columns` of the current schema (a table: pyarrow then needs pandas for older versions)."""
    return _current(*_open(path, columns), columns)


def _resume_file(path: Path, columns: Sequence[str]) -> list[dict[str, Any]]:
    """One file's rows as dicts of `columns`, upgraded in Python: no Arrow data is built, so no pandas."""
    table, version = _open(path, columns)
    return [{c: row.get(c) for c in columns} for row in (upgrade(r, version) for r in _pylist(table))]


def _read_all(results_dir: Path, read: Callable[[Path, Sequence[str]], T], columns: Sequence[str],
              files: Sequence[Path] | None = None) -> tuple[list[T], list[BadFile]]:
    """`read` of every row file (or of `files`), and every file it failed on with why (one line each)."""
    out: list[T] = []
    bad: list[BadFile] = []
    for path in row_files(results_dir) if files is None else files:
        try:
            out.append(read(path, columns))
        except SchemaMismatch as exc:
            bad.append(BadFile(path, _one_line(exc)))
        except Exception as exc:  # noqa: BLE001 — a damaged file may fail anywhere in pyarrow's decoder
            bad.append(BadFile(path, _damage(exc)))
    return out, bad


def bad_files_error(results_dir: Path, bad: Sequence[BadFile]) -> ResultsError:
    """One line naming every bad file (the first LISTED_BAD with why, then a count)."""

    def name(path: Path) -> str:
        try:
            return str(path.relative_to(results_dir))
        except ValueError:
            return str(path)

    listed = "; ".join(f"{name(b.path)} ({b.why})" for b in bad[:LISTED_BAD])
    more = f"; and {len(bad) - LISTED_BAD} more" if len(bad) > LISTED_BAD else ""
    files = "file" if len(bad) == 1 else "files"
    return ResultsError(f"{results_dir}: {len(bad)} unreadable row {files}: {listed}{more}; move them out of the "
                        "results folder (or render the rest with `sweep report --skip-bad`)")


@overload
def load(results_dir: Path, skip_bad: Literal[False] = False) -> pd.DataFrame: ...


@overload
def load(results_dir: Path, skip_bad: Literal[True]) -> tuple[pd.DataFrame, list[BadFile]]: ...


def load(results_dir: Path, skip_bad: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, list[BadFile]]:
    """Every row under the folder as one DataFrame of the current schema's columns (empty if none).

    Every file is read (checksums verified) and older versions upgraded. Bad files are all collected:
    one ResultsError names them all, or with skip_bad the good rows come back with the skipped files.
    """
    tables, bad = _read_all(results_dir, _read_file, COLUMNS)
    if bad and not skip_bad:
        raise bad_files_error(results_dir, bad)
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    df = table.to_pandas()
    if len(df):
        df = df.sort_values(["started_at", "job_key", "process"], kind="stable").reset_index(drop=True)
    return (df, bad) if skip_bad else df


def resume_rows(results_dir: Path, files: Sequence[Path] | None = None) -> list[dict[str, Any]]:
    """RESUME_COLUMNS of every row (v1 rows upgraded: process 0), pyarrow only: no pandas, no torch.

    Only these columns' pages are read and verified; a file damaged elsewhere is found by `load`.
    Bad files raise one ResultsError naming them all, as `load` does. `files` limits the reading to those
    row files (the orchestrator reads only the files that appeared since it last looked).
    """
    per_file, bad = _read_all(results_dir, _resume_file, RESUME_COLUMNS, files)
    if bad:
        raise bad_files_error(results_dir, bad)
    return [row for rows in per_file for row in rows]
