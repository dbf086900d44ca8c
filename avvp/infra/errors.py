"""Exceptions that carry the file (and line) they are about, so users see where input went wrong."""

from __future__ import annotations

from pathlib import Path


class AvvpError(Exception):
    """Base class for every error avvp raises on purpose (bad input, bad config, missing files)."""


class InputError(AvvpError):
    """Bad input: names the file, optionally the line, and the problem."""

    def __init__(self, path: str | Path | None, problem: str, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.problem = problem
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}, line {line}"
        super().__init__(f"{where}: {problem}")


class ConfigError(AvvpError):
    """A configuration value that is missing, misspelt or out of range."""


class MissingWeightsError(AvvpError):
    """A configured weight file does not exist."""

    def __init__(self, path: str | Path, what: str = "weights"):
        self.path = str(path)
        super().__init__(f"{what} file not found: {self.path}")


class StorageError(AvvpError):
    """An output could not be written because its file system is full (or the quota is spent)."""

    def __init__(self, path: str | Path, detail: str = ""):
        self.path = str(path)
        more = f" ({detail})" if detail else ""
        super().__init__(f"{self.path}: no space left on device while writing it{more}. The "
                         "unfinished file was removed and completed outputs are kept; free some "
                         "space (or quota) and rerun the same command: it goes on from its last "
                         "saved state")
