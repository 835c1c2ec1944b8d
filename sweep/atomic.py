"""The one durable atomic write: a temporary file in the same folder, fsync, rename into place, fsync the folder.

A reader, a crash or a kill sees the old file or the new one, never a part. The temporary file is created
with mode 0666 so the process umask decides the permissions, as for any file `open()` creates (a results
folder shared between users stays readable); mkstemp's 0600 would not. With `replace=False` the finished file
is published by a hard link instead of a rename, which fails when the name is taken: an existing file is never
replaced (the row files of sweep.store).
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"  # temporary files are ".<name>.<pid>.<random>.tmp" beside their target


def temp_name(path: Path) -> Path:
    """A fresh name beside `path` that no other writer (process or thread) can pick."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def fsync_dir(folder: Path | str) -> None:
    """Make a rename or creation inside `folder` survive power loss. Filesystems that cannot fsync a
    folder (some network and FUSE mounts) say EINVAL / ENOTSUP: nothing more can be done there."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_file(path: Path | str) -> None:
    """Flush a file another process wrote (a compiled artifact) to disk before it is published by a rename."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _publish_new(tmp: Path, target: Path) -> None:
    """Give the finished `tmp` the name `target` unless that name exists (FileExistsError then). A hard link is
    atomic and never replaces. A filesystem without hard links gets a look, then a rename: only two writers
    racing for the very same name could then lose one file, and callers pick names no other writer picks."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists", str(target)) from None
        os.rename(tmp, target)
        return
    os.unlink(tmp)


@contextmanager
def atomic_file(path: Path | str, replace: bool = True) -> Iterator[IO[bytes]]:
    """Write `path` through a binary file object; it appears, complete and durable, only when the block ends
    without an exception. On an exception the temporary file is removed and `path` is left as it was.
    With replace=False an existing `path` is never replaced: FileExistsError, and nothing is written."""
    target = Path(path)
    tmp = temp_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, target)
        else:
            _publish_new(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_bytes(path: Path | str, data: bytes) -> Path:
    with atomic_file(path) as fh:
        fh.write(data)
    return Path(path)


def write_text(path: Path | str, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def write_json(path: Path | str, data: Any, *, indent: int | None = None, sort_keys: bool = False) -> Path:
    """JSON; values JSON has no type for (paths, datetimes) are written as their str()."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, default=str)
    return write_text(path, text + ("\n" if indent is not None else ""))
