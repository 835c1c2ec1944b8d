"""The variant cache: build each compiled artifact once, in its own subprocess, and never trust a half-built one.

A `Variant` is what a compile depends on (model, shapes, precision, backend settings, device, seed and the
versions that make artifacts non-portable); its key names the folder `artifacts/<key>/`. A folder is only
ever created by renaming a finished temporary folder into place, and it is valid only while its
`manifest.json` lists files that exist with their recorded sizes, so a crash, a kill or a full disk
never leaves something that looks usable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sweep import atomic, execute, telemetry
from sweep.jobs import Job, ModelSpec, canonical_key
from sweep.paths import runner_env
from sweep.runtimes import RUNTIMES
from sweep.trt_api import install_hint

FORMAT = 1  # bump when what the compile runner writes changes: every cached variant is rebuilt
MANIFEST = "manifest.json"
LOG = "compile.log"
REFERENCES = "references"  # orchestrate.References' cache, beside the variants; never listed or pruned here
TMP_PREFIX = ".tmp-"
STALE_TMP_S = 24 * 3600.0  # a temporary folder of a live process older than this is abandoned too

# artifact kind (Runtime.artifact, job.json's artifact.kind) -> (compile backend, the file the runner loads)
ARTIFACT_KINDS: dict[str, tuple[str, str]] = {
    "aoti": ("aoti", "model.pt2"),
    "torchscript": ("torchscript", "model.ts"),
    "exported-trt": ("trt", "model.ep"),
    "torchscript-trt": ("trt", "model.ts"),
}
# the files each compile backend must leave (one TensorRT compile serves python-trt .ep and cpp-trt .ts)
BACKEND_FILES: dict[str, tuple[str, ...]] = {
    backend: tuple(f for b, f in ARTIFACT_KINDS.values() if b == backend) for backend, _ in ARTIFACT_KINDS.values()
}


@dataclass(frozen=True)
class Variant:
    """What a compiled artifact depends on; runtimes that load the same file share it."""

    backend: str  # aoti | torchscript | trt
    model: ModelSpec
    model_precision: str
    enabled_precisions: tuple[str, ...]  # trt only
    device: str  # device type: cpu | cuda (an engine built on cuda:0 serves cuda:1 of the same GPU name)
    seed: int  # builtin and factory weights are drawn from the seed
    device_name: str
    torch_version: str
    torch_tensorrt_version: str = ""  # trt only: other backends stay cached across TensorRT upgrades
    tensorrt_version: str = ""

    @staticmethod
    def of(job: Job) -> Variant:
        kind = RUNTIMES[job.runtime].artifact
        if kind is None:
            raise ValueError(f"runtime {job.runtime} needs no compiled artifact")
        backend = ARTIFACT_KINDS[kind][0]
        import torch

        trt = telemetry.trt_versions() if backend == "trt" else {}
        return Variant(
            backend=backend,
            model=job.model,
            model_precision=job.model_precision,
            enabled_precisions=job.enabled_precisions if backend == "trt" else (),
            device=job.device.split(":")[0],
            seed=job.seed,
            device_name=telemetry.device_name(job.device),
            torch_version=torch.__version__,
            torch_tensorrt_version=trt.get("torch_tensorrt_version", ""),
            tensorrt_version=trt.get("tensorrt_version", ""),
        )

    def identity(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "backend": self.backend,
            "settings": {"enabled_precisions": list(self.enabled_precisions)} if self.backend == "trt" else {},
            "model": self.model.identity(),
            "input_shapes": [list(s) for s in self.model.input_shapes],
            "model_precision": self.model_precision,
            "device": self.device,
            "seed": self.seed,
            "env": {"device_name": self.device_name, "torch": self.torch_version,
                    "torch_tensorrt": self.torch_tensorrt_version, "tensorrt": self.tensorrt_version},
        }

    @property
    def key(self) -> str:
        return canonical_key(self.identity())

    def describe(self) -> str:
        parts = [self.backend, self.model.label, self.model_precision]
        if self.enabled_precisions:
            parts.append("trt=" + "+".join(self.enabled_precisions))
        parts.append(self.device)
        return " ".join(parts)


@dataclass
class VariantResult:
    """What `ensure` found or did. `seconds` is the artifact's compile wall time (recorded when cached);
    `spent_s` is the time this call took (near zero when cached)."""

    key: str
    status: str  # built | cached | failed | unavailable | unsupported
    seconds: float | None = None
    artifact: dict[str, Any] | None = None
    reason: str = ""
    spent_s: float = 0.0
    variant: Variant | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # facts for the row's `extra` (TensorRT API, layers)
    timed_out: bool = False


# Failures (and unavailable / unsupported answers) seen by this process: three jobs that need the same
# broken variant compile it once. Keyed by (artifacts dir, variant key).
_REMEMBERED: dict[tuple[str, str], tuple[VariantResult, float]] = {}


def forget() -> None:
    """Drop the remembered failures (a new sweep in the same process, tests)."""
    _REMEMBERED.clear()


def artifact_for(kind: str, folder: Path) -> dict[str, Any]:
    """The `artifact` object of job.json (runners/README.md)."""
    return {"dir": str(folder), "kind": kind, "file": str(folder / ARTIFACT_KINDS[kind][1])}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def validate(folder: Path, deep: bool = False) -> dict[str, Any] | None:
    """The manifest when the folder is a complete variant: every listed file exists with its recorded size
    (and, with deep, its sha256). Sizes are checked always: cheap, and enough to catch truncation."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("format") != FORMAT or manifest.get("key") != folder.name:
        return None
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        return None
    for entry in files:
        path = folder / str(entry.get("name", ""))
        try:
            if not path.is_file() or path.stat().st_size != entry.get("size"):
                return None
        except OSError:
            return None
        if deep and _sha256(path) != entry.get("sha256"):
            return None
    return manifest


def trt_missing() -> str:
    """Why TensorRT jobs cannot run here ('' when both packages are importable as far as a cheap look can tell)."""
    missing = [m for m in ("torch_tensorrt", "tensorrt") if importlib.util.find_spec(m) is None]
    if not missing:
        return ""
    return f"{' and '.join(missing)} not installed: TensorRT jobs need torch-tensorrt and TensorRT; {install_hint()}"


def _remove_tree(folder: Path) -> None:
    """Rename out of the way first, then delete: a half-deleted variant must not keep its name."""
    if not folder.exists():
        return
    doomed = folder.with_name(f"{TMP_PREFIX}{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}-removing")
    try:
        os.replace(folder, doomed)
    except OSError:
        doomed = folder
    shutil.rmtree(doomed, ignore_errors=True)


_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|SymNode|Failure|Unsupported)\b.*")


def headline(log: str) -> str:
    """The last exception line of a traceback (what went wrong), or '' when there is none."""
    lines = [line.strip() for line in log.splitlines()]
    found = [line for line in lines if _EXCEPTION_LINE.match(line)]
    return found[-1][:300] if found else ""


def _compile_doc(job: Job, variant: Variant, out_dir: Path, work: Path) -> dict[str, Any]:
    """job.json for runners/compile.py: the runner contract plus `variant`, `backend` and `out_dir`.

    The compile's one "sample" is its wall time in ms (iters 1), so the parent's classification of the
    ending applies unchanged.
    """
    return {
        "job_key": variant.key,
        "runtime": f"compile-{variant.backend}",
        "device": job.device,
        "model": job.model.to_runner(),
        "inputs": job.model.inputs(),
        "model_precision": job.model_precision,
        "amp_dtype": "",
        "enabled_precisions": list(variant.enabled_precisions),
        "compile_mode": "",
        "warmup": 0,
        "iters": 1,
        "seed": job.seed,
        "artifact": None,
        "outputs_path": str(work / "outputs.pt"),
        "backend": variant.backend,
        "variant": variant.identity(),
        "out_dir": str(out_dir),
    }


def _cached(variant: Variant, kind: str, folder: Path, manifest: dict[str, Any], status: str,
            spent_s: float) -> VariantResult:
    return VariantResult(key=variant.key, status=status, seconds=manifest.get("compile_s"),
                         artifact=artifact_for(kind, folder), spent_s=spent_s, variant=variant,
                         extra=dict(manifest.get("facts") or {}))


def ensure(job: Job, artifacts_dir: Path, timeout_s: float, env: dict[str, str] | None = None,
           deep: bool = False) -> VariantResult:
    """The artifact a job needs: cached when valid, else built in an isolated subprocess.

    Only a successful build is renamed into `artifacts_dir/<key>/`; anything else leaves no folder
    behind and comes back as failed (with the log tail), unavailable or unsupported.
    """
    t0 = time.perf_counter()
    kind = RUNTIMES[job.runtime].artifact
    if kind is None:
        raise ValueError(f"runtime {job.runtime} needs no compiled artifact")
    variant = Variant.of(job)
    key = variant.key
    artifacts_dir = Path(artifacts_dir).resolve()
    folder = artifacts_dir / key
    manifest = validate(folder, deep=deep)
    if manifest is not None:
        return _cached(variant, kind, folder, manifest, "cached", time.perf_counter() - t0)
    memo_key = (str(artifacts_dir), key)
    if memo_key in _REMEMBERED:
        seen, seen_timeout = _REMEMBERED[memo_key]
        if not (seen.timed_out and timeout_s > seen_timeout):  # a longer timeout deserves another try
            return VariantResult(key=key, status=seen.status, seconds=seen.seconds, reason=seen.reason,
                                 spent_s=time.perf_counter() - t0, variant=variant, timed_out=seen.timed_out)
    if variant.backend == "trt":
        missing = trt_missing()
        if missing:
            result = VariantResult(key=key, status="unavailable", reason=missing, variant=variant)
            _REMEMBERED[memo_key] = (result, timeout_s)
            return result
    result = _build(job, variant, kind, artifacts_dir, timeout_s, env if env is not None else runner_env(), t0)
    if result.status not in ("built", "cached"):
        _REMEMBERED[memo_key] = (result, timeout_s)
    return result


def _build(job: Job, variant: Variant, kind: str, artifacts_dir: Path, timeout_s: float, env: dict[str, str],
           t0: float) -> VariantResult:
    key = variant.key
    folder = artifacts_dir / key
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    if folder.exists():  # there, but not valid (files lost, truncated, older format): rebuild
        _remove_tree(folder)
    tmp = artifacts_dir / f"{TMP_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        with tempfile.TemporaryDirectory(prefix="sweep-compile-") as work_name:
            work = Path(work_name)
            doc = _compile_doc(job, variant, tmp, work)
            outcome = execute.launch([sys.executable, "-m", "runners.compile"], doc, work, timeout_s, env=env)
            log_tail = outcome.stderr_tail
            if (work / "stderr.log").exists():
                shutil.copyfile(work / "stderr.log", tmp / LOG)
        spent = time.perf_counter() - t0
        if outcome.status in ("unavailable", "unsupported"):
            return VariantResult(key=key, status=outcome.status, reason=outcome.reason, spent_s=spent,
                                 seconds=None, variant=variant)
        if outcome.status != "ok":
            why = headline(outcome.stderr_tail)
            return VariantResult(key=key, status="failed", seconds=outcome.wall_s, spent_s=spent, variant=variant,
                                 reason=f"compile {outcome.status}: {why + ' | ' if why else ''}{outcome.reason}",
                                 timed_out=outcome.status == "timeout")
        missing = [name for name in BACKEND_FILES[variant.backend] if not (tmp / name).is_file()]
        if missing:
            return VariantResult(key=key, status="failed", seconds=outcome.wall_s, spent_s=spent, variant=variant,
                                 reason=f"compile wrote no {', '.join(missing)}: {log_tail}")
        result = outcome.result
        files = []
        for name in BACKEND_FILES[variant.backend]:
            path = tmp / name
            atomic.fsync_file(path)
            files.append({"name": name, "size": path.stat().st_size, "sha256": _sha256(path)})
        compile_s = float(result.get("compile_s") or outcome.wall_s)
        manifest = {
            "format": FORMAT,
            "key": key,
            "backend": variant.backend,
            "kinds": {k: name for k, (b, name) in ARTIFACT_KINDS.items() if b == variant.backend},
            "describe": variant.describe(),
            "variant": variant.identity(),
            "model": variant.model.label,
            "versions": {**(result.get("env") or {}), "python": sys.version.split()[0]},
            "files": files,
            "compile_s": compile_s,
            "wall_s": outcome.wall_s,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "log": LOG,
            "log_tail": log_tail[-1000:],
            "facts": result.get("extra") or {},
        }
        atomic.write_json(tmp / MANIFEST, manifest, indent=1)
        try:
            os.rename(tmp, folder)  # atomic; fails if another process put a folder there meanwhile
        except OSError:
            theirs = validate(folder)
            if theirs is None:
                return VariantResult(key=key, status="failed", seconds=compile_s, spent_s=spent, variant=variant,
                                     reason=f"cannot move the built variant into {folder}")
            return _cached(variant, kind, folder, theirs, "cached", time.perf_counter() - t0)
        atomic.fsync_dir(artifacts_dir)
        return _cached(variant, kind, folder, manifest, "built", time.perf_counter() - t0)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# --- listing and pruning (`sweep artifacts`) -------------------------------------------------------------


@dataclass
class Entry:
    """One folder of the cache as `sweep artifacts` shows it."""

    name: str
    kind: str  # variant | invalid | tmp | stale-tmp
    backend: str = ""
    model: str = ""
    precision: str = ""
    device: str = ""
    size_bytes: int = 0
    age_s: float = 0.0
    compile_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.name, "kind": self.kind, "backend": self.backend, "model": self.model,
                "precision": self.precision, "device": self.device, "size_bytes": self.size_bytes,
                "age_days": round(self.age_s / 86400.0, 3), "compile_s": self.compile_s}


def _size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue
    return total


def _age_s(folder: Path, manifest: dict[str, Any] | None) -> float:
    now = time.time()
    if manifest and manifest.get("built_at"):
        try:
            return max(0.0, now - datetime.fromisoformat(str(manifest["built_at"])).timestamp())
        except ValueError:
            pass
    try:
        return max(0.0, now - folder.stat().st_mtime)
    except OSError:
        return 0.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tmp_is_stale(folder: Path) -> bool:
    """A temporary folder whose builder is gone (its pid is part of the name), or that is a day old."""
    parts = folder.name[len(TMP_PREFIX):].split("-")
    pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    if pid is None or pid != os.getpid() and not _pid_alive(pid):
        return True
    return _age_s(folder, None) > STALE_TMP_S


def entries(artifacts_dir: Path) -> list[Entry]:
    """Every folder of the cache except the reference cache, newest first."""
    artifacts_dir = Path(artifacts_dir)
    if not artifacts_dir.is_dir():
        return []
    out = []
    for folder in artifacts_dir.iterdir():
        if not folder.is_dir() or folder.name == REFERENCES:
            continue
        if folder.name.startswith(TMP_PREFIX):
            out.append(Entry(folder.name, "stale-tmp" if _tmp_is_stale(folder) else "tmp",
                             size_bytes=_size(folder), age_s=_age_s(folder, None)))
            continue
        manifest = validate(folder)
        raw = manifest or read_manifest(folder) or {}
        variant = raw.get("variant") or {}
        precision = str(variant.get("model_precision", ""))
        enabled = (variant.get("settings") or {}).get("enabled_precisions")
        if enabled:
            precision += " trt=" + "+".join(enabled)
        out.append(Entry(folder.name, "variant" if manifest else "invalid", backend=str(raw.get("backend", "")),
                         model=str(raw.get("model", "")), precision=precision,
                         device=str(variant.get("device", "")), size_bytes=_size(folder),
                         age_s=_age_s(folder, raw or None), compile_s=raw.get("compile_s")))
    return sorted(out, key=lambda e: e.age_s)


def references_summary(artifacts_dir: Path) -> dict[str, Any]:
    folder = Path(artifacts_dir) / REFERENCES
    if not folder.is_dir():
        return {"count": 0, "size_bytes": 0}
    return {"count": sum(1 for p in folder.iterdir() if p.is_dir() and not p.name.startswith(TMP_PREFIX)),
            "size_bytes": _size(folder)}


def prune(artifacts_dir: Path, older_than_days: float | None = None, everything: bool = False) -> list[Entry]:
    """Remove variants older than the given age (or all of them) and every abandoned temporary folder.

    Invalid folders go with either option; temporary folders of a live build are left alone; the
    reference cache is never touched.
    """
    removed = []
    for entry in entries(artifacts_dir):
        folder = Path(artifacts_dir) / entry.name
        if entry.kind == "tmp":
            continue
        if entry.kind == "stale-tmp":
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(entry)
            continue
        old = older_than_days is not None and entry.age_s > older_than_days * 86400.0
        if everything or old or (entry.kind == "invalid" and older_than_days is not None):
            _remove_tree(folder)
            removed.append(entry)
    return removed


@dataclass
class Planned:
    """A distinct variant of a matrix and the jobs (runtimes) that need it."""

    variant: Variant
    jobs: list[Job]

    @property
    def runtimes(self) -> list[str]:
        return sorted({j.runtime for j in self.jobs})


def plan(jobs: tuple[Job, ...] | list[Job]) -> list[Planned]:
    """The distinct variants the jobs need, in job order: python-aoti and cpp-aoti of one model share one."""
    out: dict[str, Planned] = {}
    for job in jobs:
        if RUNTIMES[job.runtime].artifact is None:
            continue
        variant = Variant.of(job)
        out.setdefault(variant.key, Planned(variant, [])).jobs.append(job)
    return list(out.values())
