"""User-facing errors: one family, caught only in cli.py, printed as one line, exit code 2."""

from __future__ import annotations


class SweepError(Exception):
    """A problem the user can fix (bad matrix, unreadable results); never a bug."""

    exit_code = 2


class MatrixError(SweepError):
    """The matrix file is invalid: the message names the file, the key and what is allowed."""

    def __init__(self, path: object, key: str, message: str) -> None:
        super().__init__(f"{path}: {key}: {message}")
        self.path = path
        self.key = key


class ResultsError(SweepError):
    """The results dataset cannot be read or written as asked."""
