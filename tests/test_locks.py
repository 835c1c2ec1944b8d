"""Locks and work folders: flock claims exclude other processes, die with their holder, and leave no files;
session folders of dead sweeps are swept on the next start, live ones are left alone."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sweep import locks
from sweep.workspace import WORK, Session

ROOT = Path(__file__).resolve().parent.parent

HOLD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from sweep.locks import Claims
claim = Claims(Path(sys.argv[2])).take("k" * 20, 1)
print("held" if claim else "busy", flush=True)
time.sleep(60)
"""


def test_a_claim_excludes_other_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ROOT), str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    claims = locks.Claims(tmp_path)
    assert claims.take("k" * 20, 1) is None  # held elsewhere
    other = claims.take("k" * 20, 2)  # another process of the job is free
    assert other is not None
    other.release()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    mine = claims.take("k" * 20, 1)  # a killed sweep's claim is gone with it
    assert mine is not None
    assert '"pid"' in claims.path("k" * 20, 1).read_text()
    mine.release()
    claims.clean()
    assert not (tmp_path / locks.CLAIMS).exists()


def test_a_busy_device_names_its_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(locks.LOCK_DIR_ENV, str(tmp_path))
    gpu = locks.Device.gpu(3, "GPU-1234", "NVIDIA H200")
    with locks.lock_device(gpu, wait=False, what="matrix h200.yaml"):
        assert not locks.device_free(gpu)
        with pytest.raises(locks.DeviceBusy) as err:
            locks.lock_device(gpu, wait=False)
        message = str(err.value)
        assert message.startswith("GPU 3 (NVIDIA H200, GPU-1234) is in use by sweep pid")
        assert "matrix h200.yaml" in message and "--no-wait" in message
    assert locks.device_free(gpu)
    assert not list(tmp_path.glob("*.lock"))


def test_work_folders_of_dead_sweeps_are_swept_live_ones_kept(tmp_path: Path) -> None:
    dead = tmp_path / WORK / "sweep-1-dead"
    (dead / "00001-job").mkdir(parents=True)
    (dead / "00001-job" / "outputs.pt").write_bytes(b"left by a kill -9")
    live = Session(tmp_path)
    assert not dead.exists() and dead in live.removed
    again = Session(tmp_path)
    assert live.folder.is_dir()  # held by a live session: kept
    work = again.new("a/b c")
    assert work.parent == again.folder and work.name.endswith("a_b_c")
    again.close()
    live.close()
    assert not (tmp_path / WORK).exists()
