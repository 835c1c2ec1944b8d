"""Is the python-eager runner biased against a plain script? Fresh processes, interleaved, one table.

Each round starts one fresh process of every variant, in turn (reversed every other round), so that
drift in clocks, heat or neighbours hits every variant alike; the answer is the median over rounds of
each variant's p50.

  plain          bench/probes/plain_eager.py PREC MODEL          (the yardstick, started from a shell)
  runner         python -m runners.python_eager --job J --out R   (the runner alone, no orchestrator)
  launch         the same runner started by sweep.execute.launch  (own session, logs to files, a timeout)
  sweep          python -m sweep run M.yaml --force              (the whole orchestrator)
  inproc         bench/bias_inproc.py: one process, plain loop vs the runner's timed loop, alternated

Run on a GPU machine from the project root (PYTHONPATH=.):
    python3 bench/bias_probe.py --precision fp16 --rounds 4 --out /tmp/bias
It prints one JSON line per process and a summary table; --variants picks a subset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def p50_of(samples: list[float]) -> float:
    return statistics.median(samples)


def write_job(work: Path, model: str, precision: str, device: str, warmup: int, iters: int) -> tuple[Path, Path]:
    """A one-job matrix and the job.json the orchestrator would give the runner for it."""
    matrix = work / "one.yaml"
    matrix.write_text(
        f"name: bias\nmodel: {{name: {model}}}\ndevice: {device}\n"
        f"measure: {{warmup: {warmup}, iters: {iters}, timeout_s: 600, seed: 0, processes: 1}}\n"
        f"jobs:\n  - runtime: python-eager\n    model_precision: {precision}\n    amp_dtype: fp32\n")
    sys.path.insert(0, str(ROOT))
    from sweep import contract
    from sweep import matrix as matrix_mod

    job = matrix_mod.load(matrix).jobs[0]
    doc = contract.job_document(job, work / "outputs.pt", None)
    job_path = work / "job.json"
    job_path.write_text(json.dumps(doc))
    return matrix, job_path


def run_variant(name: str, work: Path, args: argparse.Namespace, matrix: Path, job_path: Path,
                index: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    out: dict[str, object] = {"variant": name, "round": index, "t_start": round(time.time(), 2)}
    if name == "plain":
        proc = subprocess.run([sys.executable, str(ROOT / "bench/probes/plain_eager.py"), args.precision, args.model],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not line:
            out["error"] = proc.stderr[-800:]
        else:
            out["p50_ms"] = json.loads(line[-1])["p50_ms"]
    elif name == "runner":
        result = work / f"result-{index}.json"
        proc = subprocess.run([sys.executable, "-m", "runners.python_eager", "--job", str(job_path),
                               "--out", str(result)], capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode or not result.exists():
            out["error"] = proc.stderr[-800:]
        else:
            out["p50_ms"] = p50_of(json.loads(result.read_text())["samples_ms"])
    elif name == "launch":
        from sweep import execute

        doc = json.loads(job_path.read_text())
        outcome = execute.launch([sys.executable, "-m", "runners.python_eager"], doc, work / f"launch-{index}",
                                 600.0, env={"PYTHONPATH": str(ROOT)})
        if outcome.status != "ok":
            out["error"] = outcome.reason[-800:]
        else:
            out["p50_ms"] = p50_of(outcome.result["samples_ms"])
    elif name == "sweep":
        results = work / f"results-{index}"
        proc = subprocess.run([sys.executable, "-m", "sweep", "run", str(matrix), "--results", str(results),
                               "--artifacts", str(work / "artifacts"), "--force"],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        import pyarrow.parquet as pq

        files = sorted(results.rglob("*.parquet"))
        if not files:
            out["error"] = proc.stderr[-800:]
        else:
            rows = [r for f in files for r in pq.read_table(f).to_pylist() if r.get("status") == "ok"]
            out["p50_ms"] = statistics.median(r["latency_ms_p50"] for r in rows) if rows else None
            if rows:  # the host during the runner's timed loop (extra.host), and its GPU busy time
                out["host"] = json.loads(rows[0].get("extra") or "{}").get("host")
                out["kernel_busy_ms"] = rows[0].get("kernel_busy_ms")
            if not rows:
                out["error"] = proc.stderr[-800:]
    elif name == "inproc":
        proc = subprocess.run([sys.executable, str(ROOT / "bench/bias_inproc.py"), args.precision, args.model],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not line:
            out["error"] = proc.stderr[-800:]
        else:
            out.update(json.loads(line[-1]))
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--model", default="dino-vitdet-b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--variants", default="plain,runner,launch,sweep")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bias"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    matrix, job_path = write_job(args.out, args.model, args.precision, args.device, warmup=20, iters=100)
    if "sweep" in variants:  # the fp32 reference is computed once and cached: keep it out of the rounds
        subprocess.run([sys.executable, "-m", "sweep", "run", str(matrix), "--results", str(args.out / "warm"),
                        "--artifacts", str(args.out / "artifacts")], capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    records = []
    with (args.out / "bias.jsonl").open("w") as log:
        for i in range(args.rounds):
            # ABBA: odd rounds run the variants in reverse, so no variant always follows the same one
            for name in (variants if i % 2 == 0 else variants[::-1]):
                rec = run_variant(name, args.out, args, matrix, job_path, i)
                records.append(rec)
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(json.dumps(rec), flush=True)
    print(f"\n{'variant':<10} {'n':>2} {'median p50 (ms)':>16} {'min–max p50':>18}  vs plain")
    base = None
    for name in variants:
        p50s = [float(r["p50_ms"]) for r in records if r["variant"] == name and r.get("p50_ms") is not None]
        if not p50s:
            print(f"{name:<10}  0  (no ok process)")
            continue
        med = statistics.median(p50s)
        base = med if name == "plain" else base
        ratio = f"{med / base:.3f}" if base else ""
        print(f"{name:<10} {len(p50s):>2} {med:>16.3f} {min(p50s):>8.3f}–{max(p50s):<8.3f}  {ratio}")


if __name__ == "__main__":
    main()
