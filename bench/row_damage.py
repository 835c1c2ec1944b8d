"""Flip every byte of one row file in turn and count what sweep.store makes of it: refused, same or wrong.

A real row (the first committed H200 v1 row, upgraded and written as v2 with page checksums) is damaged one
byte at a time (XOR 0xFF). Each damaged file is read the way `sweep report` reads it (sweep.store._read_file,
checksums verified) and, for comparison, with checksum verification off. Outcomes per byte:
refused (named as unreadable), same (every value reads back equal: the byte was statistics or padding) or
WRONG (a different value came back without complaint: the failure issue 15.2 describes).

    PYTHONPATH=. python bench/row_damage.py [--stride N]   # stride 1: ~10 CPU-minutes; --stride 50: ~10 s

Recorded: bench/results/row-damage.txt (2-core machine under load, nice 19, hence the wall time).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sweep import schema, store

ROOT = Path(__file__).resolve().parent.parent


def classify(path: Path, reference: pa.Table, verified: bool) -> tuple[str, str]:
    try:
        if verified:
            table = store._read_file(path, schema.COLUMNS)
        else:
            table = store._current(pq.read_table(path), schema.SCHEMA_VERSION, schema.COLUMNS)
    except Exception as exc:  # noqa: BLE001 — any refusal counts as detected
        return "refused", type(exc).__name__
    if table.equals(reference):
        return "same", ""
    wrong = [c for c in reference.column_names if not table.column(c).equals(reference.column(c))]
    return "WRONG", ",".join(wrong)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stride", type=int, default=1, help="damage every Nth byte only")
    args = parser.parse_args()
    source = sorted((ROOT / "results" / "h200").glob("*.parquet"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        row = store._read_file(source, schema.COLUMNS).to_pylist()[0]
        path = store.append_row(folder / "rows", {k: v for k, v in row.items() if k != "schema_version"})
        reference = store._read_file(path, schema.COLUMNS)
        data = path.read_bytes()
        damaged = folder / "damaged.parquet"
        counts: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
        wrong_columns: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
        t0 = time.perf_counter()
        for offset in range(0, len(data), args.stride):
            bad = bytearray(data)
            bad[offset] ^= 0xFF
            damaged.write_bytes(bytes(bad))
            for verified in (True, False):
                outcome, detail = classify(damaged, reference, verified)
                counts[verified][outcome] += 1
                if outcome == "WRONG":
                    wrong_columns[verified].update(detail.split(","))
        shutil.rmtree(folder / "rows")
    print(f"row file: {source.name} as v2, {len(data)} bytes; {sum(counts[True].values())} single-byte damages "
          f"(stride {args.stride}); {time.perf_counter() - t0:.0f} s")
    for verified, label in ((True, "sweep.store (page checksums verified)"), (False, "checksums not verified")):
        c = counts[verified]
        print(f"  {label}: refused {c['refused']}, same {c['same']}, WRONG {c['WRONG']}")
        if wrong_columns[verified]:
            print(f"    wrong values in: {', '.join(f'{k} ({n})' for k, n in wrong_columns[verified].most_common(12))}")


if __name__ == "__main__":
    main()
