"""Reading the project's JSON files with errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from avvp.infra.errors import InputError


def read_json(path: str | Path, what: str = "JSON file", hint: str = "") -> Any:
    """The parsed content of ``path``.

    Args:
        path: the file.
        what: what the file is, for the "not found" error (e.g. "metrics file").
        hint: appended to the "not found" error, e.g. how to make the file.

    Raises:
        InputError: the file is missing, not text or not valid JSON (with the line).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{what} not found{hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(path, "not a text file") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc.msg}", exc.lineno) from None
