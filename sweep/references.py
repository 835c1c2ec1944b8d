"""The fp32 reference outputs jobs are judged against: computed before the jobs that need them, cached
content-addressed in `<artifacts>/references/<key>/`, and verified against their sha256 before use.

A reference is true fp32 eager (TF32 off) of the same model, inputs, seed and device type, on the same kind
of device and torch. `reference.json` beside `outputs.pt` records the file's sha256 and the model's GFLOPs.
Verification is cached by (mtime, size) for the life of a sweep, so each file is hashed once per sweep. A
reference that fails verification is recomputed once per sweep, and the rows that use it say so.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep import atomic, contract, execute
from sweep.compile import Verifier, remove_tree
from sweep.digest import sha256_file
from sweep.executor import Launch
from sweep.jobs import Job, canonical_key
from sweep.paths import runner_env
from sweep.runtimes import RUNTIMES

REFERENCES = "references"
OUTPUTS = "outputs.pt"
FACTS = "reference.json"
RUNTIME = "python-eager"  # the runtime that computes references


@dataclass
class Reference:
    """A verified reference (path and sha256 for job.json), or why there is none."""

    key: str
    path: Path | None = None
    sha256: str = ""
    gflops: float | None = None
    error: str = ""  # why there is no reference (it failed to run)
    recomputed: str = ""  # why it was recomputed in this sweep

    def for_job(self) -> dict[str, str] | None:
        """job.json's `reference` object."""
        return {"path": str(self.path), "sha256": self.sha256} if self.path is not None else None


def reference_key(job: Job, device_name: str, torch_version: str) -> str:
    """Which reference a job needs: its model, inputs, seed and device, on this kind of device and torch."""
    return canonical_key({"model": job.model.identity(), "device": job.device, "seed": job.seed,
                          "device_name": device_name, "torch": torch_version})


class References:
    """The reference cache of one sweep: lookups, the launches that compute missing ones, and their results."""

    def __init__(self, artifacts_dir: Path, verifier: Verifier | None = None) -> None:
        self.folder = Path(artifacts_dir).resolve() / REFERENCES
        self.verifier = verifier or Verifier()
        self.known: dict[str, Reference] = {}  # verified or failed, this sweep
        self.damaged: dict[str, str] = {}  # key -> why its cached copy was thrown away, this sweep

    def lookup(self, key: str) -> Reference | None:
        """The verified cached reference, a known failure, or None when it has to be computed."""
        if key in self.known:
            return self.known[key]
        folder = self.folder / key
        if not folder.exists():
            return None
        ref, problem = self._verify(folder, key)
        if ref is not None:
            ref.recomputed = self.damaged.get(key, "")
            self.known[key] = ref
            return ref
        if key in self.damaged:  # damaged again after one recomputation: give up on it for this sweep
            self.known[key] = Reference(key, error=f"reference damaged again after recomputing it: {problem}")
            return self.known[key]
        self.damaged[key] = f"cached reference {problem}; recomputed"
        remove_tree(folder)
        return None

    def _verify(self, folder: Path, key: str) -> tuple[Reference | None, str]:
        outputs, facts_path = folder / OUTPUTS, folder / FACTS
        try:
            facts = json.loads(facts_path.read_text())
        except (OSError, ValueError):
            return None, f"{FACTS} is missing or unreadable"
        expected = str(facts.get("sha256") or "") if isinstance(facts, dict) else ""
        if not expected:
            return None, f"{FACTS} records no sha256 (written by an older sweep)"
        if not outputs.is_file():
            return None, f"{OUTPUTS} is missing"
        if not self.verifier.matches(outputs, expected):
            return None, f"{OUTPUTS} does not match its recorded sha256 (damaged or tampered with)"
        gflops = facts.get("gflops")
        return Reference(key, outputs, expected, float(gflops) if isinstance(gflops, (int, float)) else None), ""

    def forget(self, key: str, why: str) -> bool:
        """A runner found the reference damaged mid-sweep: drop it so it is recomputed (once). False when it
        was recomputed in this sweep already."""
        if key in self.damaged:
            return False
        self.damaged[key] = f"reference {why}; recomputed"
        self.known.pop(key, None)
        remove_tree(self.folder / key)
        return True

    def launch(self, key: str, job: Job, work: Path, timeout_s: float) -> Launch:
        """The launch that computes a reference into `work` (python-eager, true fp32, one iteration)."""
        doc = contract.reference_document(job, work / OUTPUTS)
        return Launch(kind="reference", key=key, command=tuple(RUNTIMES[RUNTIME].command()), doc=doc, workdir=work,
                      timeout_s=timeout_s, env=runner_env(), device=job.device, memory_limit_gb=job.memory_limit_gb)

    def finish(self, key: str, launch: Launch, outcome: execute.Outcome) -> Reference:
        """Move a computed reference into the cache with its sha256 (atomically: a folder appears whole or not
        at all); a failure is remembered for this sweep, so its jobs say why they have no verdict."""
        produced = launch.workdir / OUTPUTS
        if outcome.status != "ok" or not produced.is_file():
            why = outcome.reason if outcome.status != "ok" else "the reference run saved no outputs"
            ref = Reference(key, error=f"reference {outcome.status}: {why}"[:500])
            self.known[key] = ref
            return ref
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = self.folder / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            shutil.move(str(produced), staging / OUTPUTS)
            digest = sha256_file(staging / OUTPUTS)
            gflops = (outcome.result.get("extra") or {}).get("gflops", outcome.result.get("gflops"))
            facts: dict[str, Any] = {"sha256": digest, "gflops": gflops, "job": launch.doc}
            atomic.write_json(staging / FACTS, facts, indent=1)
            atomic.fsync_file(staging / OUTPUTS)
            try:
                os.rename(staging, self.folder / key)
                atomic.fsync_dir(self.folder)
            except OSError:  # a concurrent sweep put one there first: use theirs if it verifies
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        verified, problem = self._verify(self.folder / key, key)
        if verified is None:
            verified = Reference(key, error=f"reference just computed does not verify: {problem}")
        else:
            verified.recomputed = self.damaged.get(key, "")
        self.known[key] = verified
        return verified

