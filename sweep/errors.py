"""User-facing errors: one family, caught only in cli.py, printed as one line, exit code 2."""

from __future__ import annotations

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(32), 0x7F, 0x85)} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t",
                                                                   0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(text: str, limit: int) -> str:
    """User-supplied text inside an error message: control characters escaped (the message stays one line)
    and at most `limit` characters, so a hostile or mistaken value cannot flood the terminal."""
    flat = text[: limit + 1].translate(_CONTROL)
    return flat if len(flat) <= limit and len(text) <= limit else flat[: limit - 1] + "…"


class SweepError(Exception):
    """A problem the user can fix (bad matrix, unreadable results); never a bug."""

    exit_code = 2


class MatrixError(SweepError):
    """The matrix file is invalid: the message names the file, the key and what is allowed."""

    def __init__(self, path: object, key: str, message: str) -> None:
        super().__init__(f"{one_line(str(path), 300)}: {one_line(key, 160)}: {one_line(message, 800)}")
        self.path = path
        self.key = key


class ResultsError(SweepError):
    """The results dataset cannot be read or written as asked."""
