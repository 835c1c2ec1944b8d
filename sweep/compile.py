"""The variant cache: build each compiled artifact once, in its own subprocess, and never trust a half-built one.

A `Variant` is what a compile depends on (model, shapes, precision, backend settings, device, seed and the
versions that make artifacts non-portable); its key names the folder `artifacts/<key>/`. A folder is only
ever created by renaming a finished temporary folder into place, and it is valid only while its
`manifest.json` lists files that exist with their recorded sizes, so a crash, a kill or a full disk
never leaves something that looks usable.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep import atomic, contract, execute, telemetry
from sweep.digest import sha256_file
from sweep.executor import Launch, run_here
from sweep.jobs import Job, ModelSpec, canonical_key
from sweep.paths import runner_env
from sweep.runtimes import RUNTIMES
from sweep.trt_api import install_hint
from sweep.workspace import WORK, Session

if TYPE_CHECKING:
    from sweep.rows import MachineFacts

FORMAT = 1  # bump when what the compile runner writes changes: every cached variant is rebuilt
MANIFEST = "manifest.json"
LOG = "compile.log"
REFERENCES = "references"  # orchestrate.References' cache, beside the variants; never listed or pruned here
TMP_PREFIX = ".tmp-"
COMPILE_RUNNER = "runners.compile"  # the module that builds variants (`python -m`)
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
    tf32: str = ""  # aoti only: inductor bakes the TF32 choice into the kernels it generates

    @staticmethod
    def of(job: Job, machine: MachineFacts | None = None) -> Variant:
        """The variant a job needs, on `machine` (the one it will run on; default: this host), whose GPU name
        and versions make artifacts non-portable."""
        kind = RUNTIMES[job.runtime].artifact
        if kind is None:
            raise ValueError(f"runtime {job.runtime} needs no compiled artifact")
        backend = ARTIFACT_KINDS[kind][0]
        if machine is not None:
            trt = ({"torch_tensorrt_version": machine.torch_tensorrt_version,
                    "tensorrt_version": machine.tensorrt_version} if backend == "trt" else {})
            device_name, torch_version = machine.device_name, machine.torch_version
        else:
            trt = telemetry.trt_versions() if backend == "trt" else {}
            device_name = telemetry.device_name(job.device)
            torch_version = telemetry.torch_install()["torch_version"]
        return Variant(
            backend=backend,
            model=job.model,
            model_precision=job.model_precision,
            enabled_precisions=job.enabled_precisions if backend == "trt" else (),
            device=job.device.split(":")[0],
            seed=job.seed,
            device_name=device_name,
            torch_version=torch_version,
            torch_tensorrt_version=trt.get("torch_tensorrt_version", ""),
            tensorrt_version=trt.get("tensorrt_version", ""),
            tf32=job.tf32 if backend == "aoti" else "",
        )

    def identity(self) -> dict[str, Any]:
        identity = {
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
        if self.tf32:  # only when set, so the keys of variants built before stay the same
            identity["tf32"] = self.tf32
        if self.backend == "torchscript" and self.model.kind == "builtin":
            # 2: the builtin models trace without arithmetic on sizes, so the TorchScript can be captured in a
            # CUDA graph; variants traced before are rebuilt rather than reused (their graphs sync on the GPU).
            identity["trace_revision"] = 2
        return identity

    @property
    def key(self) -> str:
        return canonical_key(self.identity())

    def describe(self) -> str:
        parts = [self.backend, self.model.label, self.model_precision]
        if self.enabled_precisions:
            parts.append("trt=" + "+".join(self.enabled_precisions))
        if self.tf32:
            parts.append(f"tf32={self.tf32}")
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
    rebuilt: str = ""  # why a cached variant was rebuilt (damaged, or it failed to load like a broken build)


# Failures (and unavailable / unsupported answers) seen by this process: three jobs that need the same
# broken variant compile it once. Keyed by (artifacts dir, variant key).
_REMEMBERED: dict[tuple[str, str], tuple[VariantResult, float]] = {}


def forget() -> None:
    """Drop the remembered failures (a new sweep in the same process, tests)."""
    _REMEMBERED.clear()


def artifact_for(kind: str, folder: Path) -> dict[str, Any]:
    """The `artifact` object of job.json (runners/README.md)."""
    return {"dir": str(folder), "kind": kind, "file": str(folder / ARTIFACT_KINDS[kind][1])}


def read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Verifier:
    """sha256 checks of cached files, at most once per sweep for each state of a file (path, mtime, size):
    a file that changes afterwards is checked again, one that does not is hashed once."""

    def __init__(self) -> None:
        self._good: dict[str, tuple[int, int]] = {}

    def matches(self, path: Path, sha256: str) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        state = (st.st_mtime_ns, st.st_size)
        if self._good.get(str(path)) == state:
            return True
        if sha256_file(path) != sha256:
            self._good.pop(str(path), None)
            return False
        self._good[str(path)] = state
        return True

    def forget(self, folder: Path) -> None:
        for name in [n for n in self._good if n.startswith(f"{folder}{os.sep}")]:
            del self._good[name]


def inspect(folder: Path, verifier: Verifier | None = None) -> tuple[dict[str, Any] | None, str]:
    """(manifest, "") when the folder is a complete variant: every listed file exists with its recorded size
    and, with a verifier, its recorded sha256. Else (None, what is wrong; "" when there is no folder at all)."""
    if not folder.exists():
        return None, ""
    manifest = read_manifest(folder)
    if manifest is None:
        return None, "no readable manifest.json"
    if manifest.get("format") != FORMAT or manifest.get("key") != folder.name:
        return None, f"manifest of format {manifest.get('format')!r} (this sweep writes {FORMAT})"
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        return None, "the manifest lists no files"
    for entry in files:
        path = folder / str(entry.get("name", ""))
        try:
            if not path.is_file():
                return None, f"{path.name} is missing"
            if path.stat().st_size != entry.get("size"):
                return None, f"{path.name} has {path.stat().st_size} bytes, the manifest says {entry.get('size')}"
        except OSError as exc:
            return None, f"{path.name} cannot be read ({exc.strerror or exc})"
        if verifier is not None and not verifier.matches(path, str(entry.get("sha256"))):
            return None, f"{path.name} does not match the sha256 in its manifest (damaged or tampered with)"
    return manifest, ""


def validate(folder: Path, deep: bool = False) -> dict[str, Any] | None:
    """The manifest when the folder is a complete variant (sizes; with deep, sha256 too), else None."""
    return inspect(folder, Verifier() if deep else None)[0]


# How a load fails when the build it loads is broken (a damaged shared library or package): the dynamic
# loader's own messages, and the shell's "cannot execute" code.
BROKEN_LOAD = ("Inconsistency detected by ld.so", "undefined symbol", "cannot open shared object file",
               "invalid ELF header", "file too short", "ELF load command", "PytorchStreamReader failed")


def broken_load(returncode: int | None, reason: str) -> bool:
    """Did a runner fail the way a damaged compiled variant makes it fail?"""
    return returncode == 127 or any(marker in reason for marker in BROKEN_LOAD)


def trt_missing() -> str:
    """Why TensorRT jobs cannot run here ('' when both packages are importable as far as a cheap look can tell)."""
    missing = [m for m in ("torch_tensorrt", "tensorrt") if importlib.util.find_spec(m) is None]
    if not missing:
        return ""
    return f"{' and '.join(missing)} not installed: TensorRT jobs need torch-tensorrt and TensorRT; {install_hint()}"


def remove_tree(folder: Path) -> None:
    """Rename out of the way first, then delete: a half-deleted variant (or reference) must not keep its name."""
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


def _cached(variant: Variant, kind: str, folder: Path, manifest: dict[str, Any], status: str,
            spent_s: float, rebuilt: str = "") -> VariantResult:
    return VariantResult(key=variant.key, status=status, seconds=manifest.get("compile_s"),
                         artifact=artifact_for(kind, folder), spent_s=spent_s, variant=variant,
                         extra=dict(manifest.get("facts") or {}), rebuilt=rebuilt)


@dataclass
class Build:
    """A compile that has to run: its launch, and what `finish` needs to move the result into the cache."""

    job: Job
    variant: Variant
    kind: str
    launch: Launch
    tmp: Path
    t0: float
    rebuilt: str = ""


def prepare(job: Job, artifacts_dir: Path, timeout_s: float, work: Path, env: dict[str, str] | None = None,
            verifier: Verifier | None = None, rebuild: str = "", machine: MachineFacts | None = None,
            ) -> VariantResult | Build:
    """The variant when it is cached and valid, an answer already known (failure, TensorRT missing), or the
    Build to run. A cached folder that fails verification is removed and rebuilt, and the result says why;
    `rebuild` forces that (a load that failed like a broken build), with its reason."""
    t0 = time.perf_counter()
    kind = RUNTIMES[job.runtime].artifact
    if kind is None:
        raise ValueError(f"runtime {job.runtime} needs no compiled artifact")
    variant = Variant.of(job, machine)
    key = variant.key
    artifacts_dir = Path(artifacts_dir).resolve()
    folder = artifacts_dir / key
    problem = rebuild
    if not rebuild:
        manifest, problem = inspect(folder, verifier)
        if manifest is not None:
            return _cached(variant, kind, folder, manifest, "cached", time.perf_counter() - t0)
    memo_key = (str(artifacts_dir), key)
    if memo_key in _REMEMBERED and not rebuild:
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
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    if folder.exists():  # there, but not valid (damaged, files lost, truncated, older format): rebuild
        remove_tree(folder)
        if verifier is not None:
            verifier.forget(folder)
    tmp = artifacts_dir / f"{TMP_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    doc = contract.compile_document(job, variant, tmp, work)
    launch = Launch(kind="compile", key=key, command=(sys.executable, "-m", COMPILE_RUNNER), doc=doc,
                    workdir=work, timeout_s=timeout_s, env=dict(env if env is not None else runner_env()),
                    device=job.device, memory_limit_gb=job.memory_limit_gb)
    return Build(job=job, variant=variant, kind=kind, launch=launch, tmp=tmp, t0=t0,
                 rebuilt=f"{problem}: rebuilt" if problem else "")


def finish(build: Build, outcome: execute.Outcome) -> VariantResult:
    """Move a successful compile into the cache (atomically) with its manifest; any other ending leaves no
    folder behind and comes back as failed (with the log's headline), unavailable or unsupported."""
    variant, tmp, key = build.variant, build.tmp, build.variant.key
    artifacts_dir = tmp.parent
    folder = artifacts_dir / key
    memo_key = (str(artifacts_dir), key)
    try:
        log_tail = outcome.stderr_tail
        if (build.launch.workdir / "stderr.log").exists() and tmp.exists():
            shutil.copyfile(build.launch.workdir / "stderr.log", tmp / LOG)
        spent = time.perf_counter() - build.t0
        failure: VariantResult | None = None
        if outcome.status in ("unavailable", "unsupported"):
            failure = VariantResult(key=key, status=outcome.status, reason=outcome.reason, spent_s=spent,
                                    seconds=None, variant=variant)
        elif outcome.status != "ok":
            why = headline(outcome.stderr_tail)
            failure = VariantResult(key=key, status="failed", seconds=outcome.wall_s, spent_s=spent, variant=variant,
                                    reason=f"compile {outcome.status}: {why + ' | ' if why else ''}{outcome.reason}",
                                    timed_out=outcome.status == "timeout")
        else:
            missing = [name for name in BACKEND_FILES[variant.backend] if not (tmp / name).is_file()]
            if missing:
                failure = VariantResult(key=key, status="failed", seconds=outcome.wall_s, spent_s=spent,
                                        variant=variant, reason=f"compile wrote no {', '.join(missing)}: {log_tail}")
        if failure is not None:
            failure.rebuilt = build.rebuilt
            _REMEMBERED[memo_key] = (failure, build.launch.timeout_s)
            return failure
        result = outcome.result
        files = []
        for name in BACKEND_FILES[variant.backend]:
            path = tmp / name
            atomic.fsync_file(path)
            files.append({"name": name, "size": path.stat().st_size, "sha256": sha256_file(path)})
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
            return _cached(variant, build.kind, folder, theirs, "cached", time.perf_counter() - build.t0,
                           build.rebuilt)
        atomic.fsync_dir(artifacts_dir)
        _REMEMBERED.pop(memo_key, None)
        return _cached(variant, build.kind, folder, manifest, "built", time.perf_counter() - build.t0, build.rebuilt)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def discard(artifacts_dir: Path, key: str) -> None:
    """Remove a cached variant (it failed to load like a broken build): the next prepare rebuilds it."""
    remove_tree(Path(artifacts_dir).resolve() / key)
    _REMEMBERED.pop((str(Path(artifacts_dir).resolve()), key), None)


def ensure(job: Job, artifacts_dir: Path, timeout_s: float, env: dict[str, str] | None = None,
           deep: bool = False, session: Session | None = None) -> VariantResult:
    """The artifact a job needs: cached when valid (with deep: its sha256 checked too), else built here, in an
    isolated subprocess. Only a successful build is renamed into `artifacts_dir/<key>/`."""
    own = session is None
    session = session or Session(artifacts_dir, "compile")
    try:
        prepared = prepare(job, artifacts_dir, timeout_s, session.new("compile"), env,
                           Verifier() if deep else None)
        if isinstance(prepared, VariantResult):
            return prepared
        return finish(prepared, run_here(prepared.launch).outcome)
    finally:
        if own:
            session.close()


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
        if not folder.is_dir() or folder.name in (REFERENCES, WORK):
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
            remove_tree(folder)
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
