"""Hostile or mistaken matrices (issue 15): each is refused with exit 2 and one line, in little CPU time and
under a hard memory limit, before anything is run or written."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from sweep import cli, matrix
from sweep.paths import runner_env

MEMORY_LIMIT = 1 << 30  # address space of the refusing `sweep` process (it needs ~0.3 GB)
CPU_LIMIT_S = 5.0  # CPU seconds it may spend, start-up included: wall time on a shared machine says little

LAUGHS = "\n".join(["a0: &a0 [fp16, fp16, fp16, fp16, fp16, fp16, fp16, fp16, fp16, fp16]"] + [
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)])


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def refuse(path: Path, *args: str, command: str = "plan") -> str:
    """Run `sweep COMMAND path` under the limits; it must end with exit 2 and one error line, which is returned."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "sweep", command, str(path), *args], capture_output=True,
                          text=True, timeout=120, cwd=path.parent, preexec_fn=_limit_memory,
                          env={**os.environ, **runner_env(), "COLUMNS": "200"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines[0]) < 1500
    assert cpu < CPU_LIMIT_S, f"{cpu:.1f} s of CPU"
    return lines[0]


def test_alias_bomb_in_an_axis_value(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"{LAUGHS}\nmodel: {{name: tiny}}\njobs: [{{runtime: python-eager, amp_dtype: *a8}}]\n")
    line = refuse(path)
    assert "refused: expands to more than 50000 YAML nodes (aliases included)" in line and ": line " in line


def test_alias_bomb_in_model_options(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"{LAUGHS}\nmodel: {{factory: 'user:build', input_shape: [1], options: {{x: *a8}}}}\n"
                    f"jobs: [{{runtime: python-eager}}]\n")
    (tmp_path / "user.py").write_text("def build(x):\n    pass\n")
    assert "refused: expands to more than 50000 YAML nodes" in refuse(path)


def test_many_aliases_of_a_small_value(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    aliases = ", ".join(["*v"] * 150)
    path.write_text(f"v: &v fp16\nmodel: {{name: tiny}}\njobs: [{{runtime: python-eager, amp_dtype: [{aliases}]}}]\n")
    assert "refused: more than 100 aliases" in refuse(path)


def test_an_alias_that_contains_itself(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("model: {name: tiny, options: {x: &a [1, *a]}}\njobs: [{runtime: python-eager}]\n")
    assert "refused: an alias refers to a node that contains it" in refuse(path)


def test_900_000_jobs_are_counted_not_made(tmp_path: Path) -> None:
    devices = ", ".join(f"cuda:{i}" for i in range(900))
    path = tmp_path / "m.yaml"
    path.write_text(f"model: {{name: tiny}}\njobs:\n  - runtime: python-eager\n    device: [{devices}]\n"
                    f"    amp_dtype: [{', '.join(['fp16'] * 1000)}]\n")
    line = refuse(path)
    assert "jobs: would expand to 900,000 jobs" in line and "more than --max-jobs 20,000" in line
    refuse(path, "--results", str(tmp_path / "r"), command="run")
    assert not (tmp_path / "r").exists()


def test_max_jobs_option_and_default() -> None:
    import inspect

    assert inspect.signature(cli.plan).parameters["max_jobs"].default == matrix.DEFAULT_MAX_JOBS
    assert inspect.signature(cli.run).parameters["max_jobs"].default == matrix.DEFAULT_MAX_JOBS


def test_max_jobs_lower_than_the_matrix(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("model: {name: tiny}\njobs: [{runtime: python-eager, amp_dtype: [fp16, bf16, fp32]}]\n")
    assert "would expand to 3 jobs" in refuse(path, "--max-jobs", "2")


def test_two_million_exclude_rules(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    with path.open("w") as fh:
        fh.write("model: {name: tiny}\njobs:\n  - runtime: python-eager\n    exclude:\n")
        fh.writelines("      - {amp_dtype: fp16}\n" for _ in range(2_000_000))
    assert f"(file): is {path.stat().st_size} bytes; a matrix file is at most 1048576 bytes" in refuse(path)


def test_too_many_exclude_rules_in_a_small_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    rules = ", ".join(["{amp_dtype: fp16}"] * 5000)
    path.write_text(f"model: {{name: tiny}}\njobs: [{{runtime: python-eager, exclude: [{rules}]}}]\n")
    assert "jobs[0].exclude: has 5000 rules; at most 200 per block" in refuse(path)


@pytest.mark.parametrize("where", ["options", "top"])
def test_3000_deep_nesting(tmp_path: Path, where: str) -> None:
    deep = "[" * 3000 + "]" * 3000
    path = tmp_path / "m.yaml"
    text = (f"model: {{name: tiny, options: {{x: {deep}}}}}\njobs: [{{runtime: python-eager}}]\n"
            if where == "options" else f"x: {deep}\n")
    path.write_text(text)
    assert "line 1: refused: nested deeper than 32 levels" in refuse(path)


def test_long_values_are_cut_short_in_messages(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"model: {{name: tiny}}\njobs: [{{runtime: python-eager, amp_dtype: {'x' * 200_000}}}]\n")
    line = refuse(path)
    assert "jobs[0].amp_dtype: unknown value 'xxxx" in line and "xxx...xxx" in line
    assert line.endswith("'; allowed: fp32, fp16, bf16")


def test_a_newline_in_a_key_stays_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text('model: {name: tiny}\n"bad\\nkey": 1\njobs: [{runtime: python-eager}]\n')
    assert "bad\\nkey: unknown key" in refuse(path)


def test_an_integer_too_long_to_convert(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"model: {{name: tiny}}\nmeasure: {{iters: {'9' * 6000}}}\njobs: [{{runtime: python-eager}}]\n")
    assert "YAML value error" in refuse(path)


def test_too_many_processes(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("model: {name: tiny}\nmeasure: {processes: 1000000000}\njobs: [{runtime: python-eager}]\n")
    assert "measure.processes: must be an integer in 1..1000" in refuse(path)
