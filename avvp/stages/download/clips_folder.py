"""What a clips folder holds: the finished video files, the downloads table (each source video's
window, read back by the feature extraction through :func:`clip_window`) and the failure table."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from avvp import layout
from avvp.infra import parquet_reader as parquet
from avvp.infra.paths import child

TABLE = Path(layout.DOWNLOADS).name
#: The table of a run in progress (renamed to TABLE when the run ends; read back by a rerun).
PROGRESS = "downloads.partial.parquet"
FAILURES = "download_failures.parquet"
TABLE_COLUMNS = ["video_id", "youtube_id", "file", "start", "end", "window"]
FAILURE_COLUMNS = ["video_id", "stage", "reason"]
SOURCE_WINDOW = "source"
#: Suffixes of yt-dlp's (and our) temporary and table files, never taken for a finished video.
_NOT_VIDEO = {".part", ".ytdl", ".tmp", ".parquet", ".json", ".temp", ".log"}


def present_files(folder: str | Path) -> dict[str, Path]:
    """Name stem -> finished file of every video file in ``folder`` (temporary files ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() not in _NOT_VIDEO and not path.name.startswith("."):
            found.setdefault(path.stem, path)
    return found


def find_download(folder: str | Path, youtube_id: str) -> Path | None:
    """The finished file ``<folder>/<youtube_id>.<ext>``, if any (temporary files are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob(f"{_glob_escape(child(folder, youtube_id, youtube=True).name)}.*")):
        if path.is_file() and path.stem == youtube_id and path.suffix.lower() not in _NOT_VIDEO:
            return path
    return None


def read_download_table(folder: str | Path) -> pd.DataFrame:
    """The ``downloads.parquet`` table of a clips folder (empty when there is none)."""
    return _read_table(Path(folder) / TABLE, TABLE_COLUMNS)


def read_failures(folder: str | Path) -> pd.DataFrame:
    """The download failure table of a clips folder (empty when there is none)."""
    return _read_table(Path(folder) / FAILURES, FAILURE_COLUMNS)


def clip_window(path: str | Path, start: float, end: float) -> tuple[float, float]:
    """The part of ``path`` to decode for an LLP video with window ``[start, end)``.

    A full source video recorded in its folder's ``downloads.parquet`` gives ``(start, end)``; a
    pre-cut clip (the demo's, or one cut by the official script) gives ``(0, end - start)``.
    """
    windows = clip_table(str(Path(path).resolve().parent))
    if Path(path).name in windows:
        return windows[Path(path).name]
    return 0.0, float(end) - float(start)


def clip_table(folder: str | Path) -> dict[str, tuple[float, float]]:
    """File name -> (start, end) of the full source videos listed in ``folder/downloads.parquet``.

    Cached per folder while the table file is unchanged (its inode, modification time and size),
    so a table that another process rewrites (atomically: a new inode) is read again.
    """
    try:
        stat = (Path(folder) / TABLE).stat()
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    except FileNotFoundError:
        version = None
    return _clip_table(str(folder), version)


@lru_cache(maxsize=64)
def _clip_table(folder: str, version: tuple[int, int, int] | None) -> dict[str, tuple[float, float]]:
    table = read_download_table(folder)
    table = table[table["window"] == SOURCE_WINDOW]
    return {f: (float(s), float(e)) for f, s, e in table[["file", "start", "end"]].itertuples(index=False)}


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        return _frame([], columns)
    return parquet.read_table(path, columns)[columns]


def _frame(records, columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(records), columns=columns)
    frame = frame.astype({c: "float64" if c in ("start", "end") else "str" for c in columns})
    return frame.sort_values("video_id").reset_index(drop=True)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)
