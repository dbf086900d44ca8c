"""Safe names, and the one way to build a path from a name that came from data.

Video ids, file stems and config names end up as file and folder names (clips, parse outputs,
the results folder of a data set). A hostile or broken one (``../../x``, ``/tmp/x``, a NUL byte, a
newline) must never reach the filesystem, so:

* **YouTube ids** (LLP, ``avvp download``) are exactly 11 characters of ``[A-Za-z0-9_-]``
  (:data:`YOUTUBE_ID`); a leading ``-`` is allowed, YouTube gives such ids. The synthetic demo's
  ids (``S0000000042``) have the same form. An LLP file name is ``<id>_<start>_<end>`` with
  ``start`` and ``end`` plain decimal numbers (:data:`LLP_NAME`).
* **Other names** (user video files, ``dataset``, ``parse.out``): 1 to :data:`MAX_NAME`
  characters of ASCII letters, digits, space and ``. _ - + = , @ ( ) [ ]`` (:data:`NAME_CHARS`),
  starting with a letter, a digit or ``_`` (never ``.``, ``-`` or a space) and not ending with a
  space or ``.``.

:func:`child` builds every path whose last component comes from such a name, and refuses a name
that is not safe or a result outside its folder. The errors name the file (and line) the name
came from when the caller says so.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from avvp.infra.errors import InputError

#: File extensions of the videos taken from a folder (``avvp parse``, the workflow's ``parse`` rule;
#: files named directly may have any extension).
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ts",
                    ".ogv", ".3gp", ".wmv")

#: A YouTube id: exactly 11 characters of [A-Za-z0-9_-].
YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
#: An LLP file name: ``<YouTube id>_<start>_<end>`` with plain decimal start and end.
LLP_NAME = re.compile(r"(?P<id>[A-Za-z0-9_-]{11})_(?P<start>\d+(?:\.\d+)?)_(?P<end>\d+(?:\.\d+)?)")
#: Characters of a safe name (besides the first-character rule).
NAME_CHARS = "A-Za-z0-9 ._+=,@()\\[\\]-"
NAME = re.compile(rf"[A-Za-z0-9_][{NAME_CHARS}]*")
MAX_NAME = 200
NAME_RULE = (f"1 to {MAX_NAME} characters of ASCII letters, digits, space and . _ - + = , @ ( ) [ ],"
             " starting with a letter, digit or _, not ending with a space or .")
YOUTUBE_RULE = "11 characters of A-Z a-z 0-9 _ -"


def youtube_id_problem(text: object) -> str | None:
    """Why ``text`` is not a YouTube id, or None when it is one."""
    if not isinstance(text, str):
        return f"video id {text!r} is not a string"
    if YOUTUBE_ID.fullmatch(text) is None:
        return f"video id {text!r} is not a YouTube id ({YOUTUBE_RULE})"
    return None


def check_youtube_id(text: object, path: str | Path | None = None, line: int | None = None) -> str:
    """``text`` if it is a YouTube id; else InputError naming ``path`` and ``line``."""
    problem = youtube_id_problem(text)
    if problem is not None:
        raise InputError(path, problem, line)
    return text  # type: ignore[return-value]


def name_problem(text: object, what: str = "name") -> str | None:
    """Why ``text`` is not a safe name (see the module doc), or None when it is one."""
    if not isinstance(text, str):
        return f"{what} {text!r} is not a string"
    if not text:
        return f"{what} is empty"
    if len(text) > MAX_NAME:
        return f"{what} {text[:40]!r}... has {len(text)} characters (at most {MAX_NAME})"
    if NAME.fullmatch(text) is None or text.endswith((" ", ".")):
        return f"{what} {text!r} is not a safe file name ({NAME_RULE})"
    return None


def child(folder: str | Path, name: object, suffix: str = "", *, source: str | Path | None = None,
          line: int | None = None, what: str = "name", youtube: bool = False) -> Path:
    """``folder / (name + suffix)``, refused unless it is one safe entry inside ``folder``.

    ``name`` must be a YouTube id (with ``youtube``: only that) or a safe name (see the module
    doc); ``suffix`` is a constant of the caller (``".mp4"``, ``".%(ext)s"``). The result is
    checked to stay inside ``folder``.

    Raises:
        InputError: naming ``source`` (the file the name came from; default: the folder) and
            ``line``.
    """
    where = folder if source is None else source
    problem = youtube_id_problem(name)
    if problem is not None and not youtube:
        problem = name_problem(name, what)
    if problem is not None:
        raise InputError(where, problem, line)
    target = Path(folder) / f"{name}{suffix}"
    base = os.path.normpath(os.path.abspath(folder))
    full = os.path.normpath(os.path.abspath(target))
    if os.path.dirname(full) != base:
        raise InputError(where, f"{what} {name!r} would leave the folder {folder}", line)
    return target


def check_llp_name(text: object, path: str | Path | None = None, line: int | None = None) -> re.Match:
    """The match of an LLP file name ``<YouTube id>_<start>_<end>``; else InputError."""
    if not isinstance(text, str):
        raise InputError(path, f"file name {text!r} is not a string", line)
    match = LLP_NAME.fullmatch(text)
    if match is None:
        raise InputError(path, f"file name {text!r} is not '<11-character id>_<start>_<end>' (id: "
                               f"{YOUTUBE_RULE}; start, end: seconds as plain decimal numbers)", line)
    return match
