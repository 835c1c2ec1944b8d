"""Each GPU worker of a local pool owns its own CPUs: the pure split, the guard's pinning, and whole sweeps on fake
GPUs whose fixture runners report the affinity and thread variables they got (torch-free)."""

from __future__ import annotations

import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sweep import execute, store
from sweep.executor import compact
from sweep.pool import split_cpus
from sweep.telemetry import cpus_of_mask

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "fixtures" / "fixture_sweep.py"
ALLOWED = sorted(os.sched_getaffinity(0))


def _check_partition(sets: list[tuple[int, ...]], allowed: list[int]) -> None:
    assert all(sets), "every GPU gets at least one CPU"
    flat = [cpu for s in sets for cpu in s]
    assert len(flat) == len(set(flat)), "the sets are disjoint"
    assert set(flat) <= set(allowed)


# --- the pure split ------------------------------------------------------------------------------------------

def test_without_nvml_the_allowed_cpus_are_split_evenly_and_contiguously() -> None:
    assert split_cpus(range(32), 2) == ([tuple(range(16)), tuple(range(16, 32))], "even")
    sets, basis = split_cpus(range(32), 3) or ([], "")
    assert basis == "even" and sets == [tuple(range(11)), tuple(range(11, 22)), tuple(range(22, 32))]
    # the sweep's own affinity (taskset 0-15 in the two-GPU visit), not the machine's 32 CPUs
    assert split_cpus(range(16), 2) == ([tuple(range(8)), tuple(range(8, 16))], "even")
    assert split_cpus([0, 1], 2) == ([(0,), (1,)], "even")  # this machine
    assert split_cpus([3, 9, 4], 2) == ([(3, 4), (9,)], "even")  # sorted, gaps kept
    assert split_cpus([0], 2) is None  # no disjoint split exists
    assert split_cpus(range(32), 2, [None, None]) == split_cpus(range(32), 2)


def test_nvml_local_cpus_are_used_when_disjoint() -> None:
    halves = [set(range(16)), set(range(16, 32))]
    assert split_cpus(range(32), 2, halves) == ([tuple(range(16)), tuple(range(16, 32))], "local")
    # the local sets need not cover the machine, and are cut to the sweep's affinity
    assert split_cpus(range(32), 2, [{1, 2, 3}, {20, 21}]) == ([(1, 2, 3), (20, 21)], "local")
    assert split_cpus([0, 1, 2, 3, 20], 2, [set(range(16)), set(range(16, 32))]) == ([(0, 1, 2, 3), (20,)], "local")
    # listed in the GPUs' order, whatever the order of their sockets
    assert split_cpus(range(32), 2, halves[::-1]) == ([tuple(range(16, 32)), tuple(range(16))], "local")


def test_gpus_sharing_one_local_set_split_it_among_themselves() -> None:
    sockets = [set(range(16)), set(range(16)), set(range(16, 32)), set(range(16, 32))]
    sets, basis = split_cpus(range(32), 4, sockets) or ([], "")
    assert basis == "local"
    assert sets == [tuple(range(8)), tuple(range(8, 16)), tuple(range(16, 24)), tuple(range(24, 32))]
    # three GPUs on one socket, one on the other
    sets, basis = split_cpus(range(32), 4, [sockets[0], sockets[0], sockets[0], sockets[2]]) or ([], "")
    assert basis == "local" and sets[3] == tuple(range(16, 32)) and [len(s) for s in sets[:3]] == [6, 5, 5]


def test_overlapping_unknown_or_unusable_local_sets_fall_back_to_an_even_split() -> None:
    even = split_cpus(range(32), 2)
    assert split_cpus(range(32), 2, [set(range(24)), set(range(8, 32))]) == even  # overlap
    assert split_cpus(range(32), 2, [set(range(16)), None]) == even  # one unknown
    assert split_cpus(range(32), 2, [set(range(16)), set()]) == even  # NVML said nothing
    # the sweep runs on 0-15 while GPU 1's local CPUs are 16-31: nothing local is left for it
    assert split_cpus(range(16), 2, [set(range(16)), set(range(16, 32))]) == ([tuple(range(8)),
                                                                             tuple(range(8, 16))], "even")
    # three GPUs share a set of two CPUs: no disjoint local split, the even split of all CPUs instead
    assert split_cpus(range(8), 3, [{0, 1}, {0, 1}, {0, 1}]) == split_cpus(range(8), 3)
    assert split_cpus(range(32), 3, [set(range(16)), set(range(16, 32))]) == split_cpus(range(32), 3)  # wrong length


def test_hyperthread_siblings_stay_with_one_gpu() -> None:
    core_of = {cpu: (0, cpu % 16) for cpu in range(32)}  # CPU n and n+16 are one physical core
    sets, _ = split_cpus(range(32), 2, None, core_of) or ([], "")
    assert sets == [tuple(range(8)) + tuple(range(16, 24)), tuple(range(8, 16)) + tuple(range(24, 32))]
    assert [compact(s) for s in sets] == ["0-7,16-23", "8-15,24-31"]
    # fewer whole cores than GPUs: single CPUs then (siblings apart beats sharing one CPU)
    assert split_cpus([0, 16], 2, None, core_of) == ([(0,), (16,)], "even")


def test_every_split_is_a_disjoint_non_empty_partition() -> None:
    rng = random.Random(7)
    for _ in range(300):
        n_cpus = rng.randint(1, 64)
        allowed = sorted(rng.sample(range(128), n_cpus))
        count = rng.randint(1, 8)
        local = [set(rng.sample(range(128), rng.randint(0, 40))) if rng.random() < 0.8 else None
                 for _ in range(count)] if rng.random() < 0.7 else None
        core_of = {cpu: (0, cpu % rng.randint(1, 64)) for cpu in range(128)} if rng.random() < 0.5 else None
        plan = split_cpus(allowed, count, local, core_of)
        if n_cpus < count:
            assert plan is None
            continue
        assert plan is not None
        sets, basis = plan
        assert len(sets) == count
        _check_partition(sets, allowed)
        if basis == "even":
            assert sorted(itertools.chain(*sets)) == allowed, "an even split uses every allowed CPU"
            sizes = [len(s) for s in sets]
            if core_of is None:
                assert max(sizes) - min(sizes) <= 1


def test_compact_and_nvml_masks() -> None:
    assert compact([0, 1, 2, 3, 4, 5, 6, 7]) == "0-7"
    assert compact([5, 0, 2, 1, 9]) == "0-2,5,9"
    assert compact([]) == ""
    assert cpus_of_mask([0xFF, 0]) == frozenset(range(8))
    assert cpus_of_mask([0, 0b101]) == frozenset({64, 66})
    assert cpus_of_mask([2**64 - 1]) == frozenset(range(64))


# --- the guard pins the runner ---------------------------------------------------------------------------------

AFFINITY = "import json, os; print(json.dumps({'cpus': sorted(os.sched_getaffinity(0))}))"


def test_a_launch_pinned_to_cpus_runs_on_them_and_says_so(tmp_path: Path) -> None:
    last = ALLOWED[-1:]
    outcome = execute.launch([sys.executable, "-c", AFFINITY], {}, tmp_path / "w", 30, contract=False, cpus=last)
    assert outcome.status == "ok", outcome.reason
    assert outcome.result["cpus"] == last and outcome.cpus == last
    unpinned = execute.launch([sys.executable, "-c", AFFINITY], {}, tmp_path / "u", 30, contract=False)
    assert unpinned.result["cpus"] == ALLOWED and unpinned.cpus is None


def test_cpus_that_cannot_be_had_fail_the_launch_instead_of_running_unpinned(tmp_path: Path) -> None:
    outcome = execute.launch([sys.executable, "-c", AFFINITY], {}, tmp_path / "w", 30, contract=False,
                             cpus=[100000])
    assert outcome.status == "failed"
    assert "cannot pin the runner to CPUs 100000" in outcome.reason


# --- whole sweeps on fake GPUs ---------------------------------------------------------------------------------

def _sweep(tmp_path: Path, write_matrix: Any, fake_gpus: str, env_more: dict[str, str],
           name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    log = tmp_path / f"{name}.jsonl"
    path = write_matrix(f"""
        name: {name}
        model: {{factory: "fixture_models:model", input_shape: [2, 8],
                 options: {{log: "{log}", sleep_ms: 30, log_child_cpus: true}}}}
        measure: {{warmup: 1, iters: 3, processes: 2}}
        jobs:
          - runtime: fixture
            device: cuda
            amp_dtype: [fp32, bf16]
    """, name=f"{name}.yaml")
    results, art = tmp_path / f"{name}-r", tmp_path / f"{name}-a"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update({"PYTHONPATH": str(ROOT), "SWEEP_LOCK_DIR": str(tmp_path / "locks"), "SWEEP_FAKE_GPUS": fake_gpus,
                **env_more})
    done = subprocess.run([sys.executable, str(DRIVER), "run", str(path), "--results", str(results), "--artifacts",
                           str(art), "--gpus", "all"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    rows = store.load(results).to_dict("records")
    return lines, rows


@pytest.mark.skipif(len(ALLOWED) < 2, reason="two GPU workers need two CPUs to own one each")
def test_two_gpus_each_own_their_cpus_and_threads(write_matrix, tmp_path: Path) -> None:
    lines, rows = _sweep(tmp_path, write_matrix, "GPU-fake-0,GPU-fake-1", {"MKL_NUM_THREADS": "5"}, "two")
    by_gpu: dict[str, set[tuple[int, ...]]] = {}
    for line in lines:  # references included: every launch on a GPU runs on that GPU's CPUs
        by_gpu.setdefault(line["visible"], set()).add(tuple(line["cpus"]))
        assert line["cpus_allowed_list"] == compact(line["cpus"])  # as the kernel says it
        assert line["child_cpus"] == line["cpus"]  # what the runner starts inherits them
        assert line["threads_env"] == {"OMP_NUM_THREADS": str(len(line["cpus"])), "MKL_NUM_THREADS": "5"}
    assert set(by_gpu) == {"GPU-fake-0", "GPU-fake-1"}
    assert all(len(sets) == 1 for sets in by_gpu.values()), "a GPU keeps its CPU set for the whole sweep"
    sets = [next(iter(by_gpu[g])) for g in ("GPU-fake-0", "GPU-fake-1")]
    _check_partition(sets, ALLOWED)
    assert sorted(itertools.chain(*sets)) == ALLOWED, "no NVML here: the sweep's CPUs are split evenly"
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert json.loads(row["extra"])["cpus"] == compact(next(iter(by_gpu[row["gpu_uuid"]])))


def test_one_gpu_leaves_the_affinity_and_threads_alone(write_matrix, tmp_path: Path) -> None:
    lines, rows = _sweep(tmp_path, write_matrix, "GPU-fake-0", {}, "one")
    assert lines and all(line["cpus"] == ALLOWED and line["child_cpus"] == ALLOWED for line in lines)
    assert all(line["threads_env"] == {"OMP_NUM_THREADS": None, "MKL_NUM_THREADS": None} for line in lines)
    assert len(rows) == 4 and all("cpus" not in json.loads(r["extra"]) for r in rows)


@pytest.mark.skipif(len(ALLOWED) < 2, reason="two GPU workers need two CPUs to own one each")
def test_rows_that_did_not_end_ok_keep_what_the_parent_knows(write_matrix, tmp_path: Path) -> None:
    """A crash, a timeout and an unsupported answer, on two fake GPUs with CPUs of their own: each row still says
    which CPUs its runner was pinned to, and the compiled job's row keeps its variant's facts."""
    def model(mode: str) -> str:
        return f'{{factory: "fixture_models:model", input_shape: [2, 8], options: {{mode: {mode}}}}}'

    path = write_matrix(f"""
        name: faults
        device: cuda
        measure: {{warmup: 1, iters: 3, processes: 1, timeout_s: 60}}
        jobs:
          - {{runtime: fixture, model: {model("crash")}}}
          - {{runtime: fixture-compiled, model: {model("crash")}}}
          - {{runtime: fixture, model: {model("unsupported")}}}
          - {{runtime: fixture, model: {model("hang")}, measure: {{timeout_s: 2}}}}
    """, name="faults.yaml")
    results = tmp_path / "faults-r"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SWEEP_LOCK_DIR": str(tmp_path / "locks"),
           "SWEEP_FAKE_GPUS": "GPU-fake-0,GPU-fake-1"}
    done = subprocess.run([sys.executable, str(DRIVER), "run", str(path), "--results", str(results), "--artifacts",
                           str(tmp_path / "faults-a"), "--gpus", "all"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 1, done.stderr  # failures are rows, and the exit status says so
    rows = {(r["runtime"], json.loads(r["extra"]).get("variant") is not None, r["status"]): r
            for r in store.load(results).to_dict("records")}
    assert set(rows) == {("fixture", False, "failed"), ("fixture-compiled", True, "failed"),
                         ("fixture", False, "unsupported"), ("fixture", False, "timeout")}, done.stderr
    by_gpu: dict[str, set[str]] = {}
    for row in rows.values():
        extra = json.loads(row["extra"])
        cpus = {cpu for part in extra["cpus"].split(",") for cpu in _cpu_range(part)}
        assert cpus and cpus < set(ALLOWED), row["status"]  # pinned to a GPU's share, not the sweep's CPUs
        by_gpu.setdefault(row["gpu_uuid"], set()).add(extra["cpus"])
        assert "runner_fact" not in extra  # a runner that did not end ok is not trusted for its own facts
    assert all(len(sets) == 1 for sets in by_gpu.values())  # each GPU's own set
    assert json.loads(rows[("fixture-compiled", True, "failed")]["extra"])["variant"] == {
        "fixture_backend": "torchscript"}


def _cpu_range(part: str) -> range:
    low, _, high = part.partition("-")
    return range(int(low), int(high or low) + 1)
