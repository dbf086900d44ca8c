"""Download the LLP source videos with yt-dlp, keep them as they are, and record their windows.

Each LLP video is a 10-second window ``[start, end)`` of a YouTube video (``<id>_<start>_<end>``).
The official script cut and re-encoded that window with ffmpeg; here the downloaded file is stored
unchanged as ``<out>/<youtube id>.<ext>`` and the window is cut at decode time
(``avvp.decoding.decode_*(path, start, end)``), so nothing is re-encoded.

Two tables in the output folder describe the result (both Parquet, written atomically):

* ``downloads.parquet`` (:data:`TABLE`): one row per downloaded video: ``video_id`` (the LLP file
  name), ``youtube_id``, ``file`` (file name inside the folder), ``start``, ``end`` (the window in
  seconds of the file) and ``window`` = ``"source"`` (the file is the full source video; decode
  ``[start, end)``). A clip that is *not* listed there (the demo's rendered clips, clips cut by the
  official script) is pre-cut: its window is ``[0, end - start)``. :func:`clip_window` answers this
  for the feature extraction.
* ``download_failures.parquet`` (:data:`FAILURES`): ``video_id``, ``stage`` (``download`` or
  ``check``), ``reason`` for every video that could not be fetched or is unusable.

While a run goes on, its table is kept as ``downloads.partial.parquet`` (saved every few videos
and on an interruption); ``downloads.parquet`` is written only when the run ends, so a killed run
never leaves a finished-looking table behind. A rerun resumes: videos whose file is present are
skipped, failed ones are skipped too unless ``retry_failed`` is set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pandas as pd

from . import parquet
from .atomic import write_parquet
from .errors import ConfigError, InputError
from .paths import check_llp_name, child
from .settings import merge_settings

log = logging.getLogger(__name__)

DEFAULTS: dict = {
    "url_template": "https://www.youtube.com/watch?v={id}",  # {id} is the 11-character YouTube id
    "format": "best[ext=mp4]/best",  # a yt-dlp format selector (the official script used "best")
    "retries": 3,
    "socket_timeout": 30,
    "sleep_interval": 0.0,  # seconds to wait before each download (be polite to the server)
    "cookies": None,  # a cookies.txt file for yt-dlp (some videos need a signed-in session)
    "max_filesize": None,  # bytes; larger videos are not downloaded and count as failed
    "splits": ["train", "val", "test"],
    "retry_failed": False,  # try the videos of the failure table again (also the CLI's --retry-failed)
}

TABLE = "downloads.parquet"
#: The table of a run in progress (renamed to TABLE when the run ends; read back by a rerun).
PROGRESS = "downloads.partial.parquet"
FAILURES = "download_failures.parquet"
TABLE_COLUMNS = ["video_id", "youtube_id", "file", "start", "end", "window"]
FAILURE_COLUMNS = ["video_id", "stage", "reason"]
SOURCE_WINDOW = "source"
#: Suffixes of yt-dlp's (and our) temporary and table files, never taken for a finished video.
_NOT_VIDEO = {".part", ".ytdl", ".tmp", ".parquet", ".json", ".temp", ".log"}
_SAVE_EVERY = 25


class DownloadFailed(Exception):
    """One video could not be downloaded or is unusable; ``stage`` and ``reason`` say why."""

    def __init__(self, stage: str, reason: str):
        self.stage = stage
        self.reason = reason
        super().__init__(f"{stage}: {reason}")


@dataclass
class DownloadReport:
    """What one :func:`download_videos` run did.

    Attributes:
        downloaded: videos fetched in this run.
        present: videos skipped because their file was already there.
        failed: videos that failed in this run.
        skipped_failed: earlier failures not retried (``retry_failed`` false).
        table: the complete ``downloads.parquet`` table after the run.
        failures: the complete failure table after the run.
    """

    downloaded: int
    present: int
    failed: int
    skipped_failed: int
    table: pd.DataFrame
    failures: pd.DataFrame

    def summary(self) -> str:
        return (f"{self.downloaded} downloaded, {self.present} already present, {self.failed} failed"
                f" now, {self.skipped_failed} earlier failures not retried; {len(self.table)} videos"
                f" available, {len(self.failures)} in the failure table")


def download_settings(given: dict | None = None) -> dict:
    """The download settings: ``given`` merged over :data:`DEFAULTS`, checked."""
    settings = merge_settings(DEFAULTS, given or {}, "download")
    template = settings["url_template"]
    if "{id}" not in template:
        raise ConfigError(f"download.url_template must contain '{{id}}': {template!r}")
    try:
        template.format(id="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"download.url_template {template!r} is not a valid template: {exc}") from None
    if int(settings["retries"]) < 0:
        raise ConfigError("download.retries must be >= 0")
    return settings


def load_targets(source: str | Path, splits: Iterable[str] | None = None,
                 ids: Iterable[str] | None = None, limit: int | None = None) -> pd.DataFrame:
    """The videos to download: ``video_id``, ``youtube_id``, ``start``, ``end``, ``split``.

    Args:
        source: a manifest (``.parquet``) or an LLP-format annotation folder.
        splits: keep these splits only (None: all).
        ids: keep these videos only, given as LLP file names or YouTube ids.
        limit: keep the first ``limit`` videos (for a trial run).
    """
    source = Path(source)
    if source.is_dir():
        from .annotations import read_llp

        videos = read_llp(source).videos
    elif source.suffix == ".parquet":
        videos = parquet.read_table(source, ("video_id", "youtube_id", "start", "end"), "manifest")
    else:
        raise InputError(source, "expected an LLP annotation folder or a manifest .parquet")
    if source.suffix == ".parquet":
        check_targets(videos, source)
    if splits is not None and "split" in videos.columns:
        videos = videos[videos["split"].isin(list(splits))]
    if ids is not None:
        wanted = set(ids)
        videos = videos[videos["video_id"].isin(wanted) | videos["youtube_id"].isin(wanted)]
    if limit is not None:
        videos = videos.head(int(limit))
    cols = [c for c in ("video_id", "youtube_id", "start", "end", "split") if c in videos.columns]
    return videos[cols].reset_index(drop=True)


def check_targets(targets: pd.DataFrame, source: str | Path | None = None) -> None:
    """Raise InputError naming ``source`` and the row for a ``video_id`` that is not an LLP file
    name (``<YouTube id>_<start>_<end>``) or a ``youtube_id`` that is not that name's id."""
    for row, (vid, yid) in enumerate(targets[["video_id", "youtube_id"]].itertuples(index=False), 1):
        try:
            match = check_llp_name(vid, source)
        except InputError as exc:
            raise InputError(source, f"row {row}: {exc.problem}") from None
        if yid != match["id"]:
            raise InputError(source, f"row {row}: youtube_id {yid!r} is not the id of video {vid!r}")


def download_videos(targets: pd.DataFrame, out_dir: str | Path, settings: dict | None = None,
                    retry_failed: bool = False, progress: bool = True) -> DownloadReport:
    """Download every target video into ``out_dir`` as ``<youtube id>.<ext>``, resuming earlier runs.

    A video that cannot be fetched (unavailable, private, removed, network error) or whose file is
    unusable (no video stream, shorter than its window's start) is recorded in the failure table
    and the run goes on with the others. The failure table and the table in progress
    (:data:`PROGRESS`) are saved every few videos and on an interruption, so nothing already
    downloaded is forgotten; :data:`TABLE` is written when the run ends. Every id is checked first
    (:func:`check_targets`): a hostile one stops the run before anything is fetched.

    Args:
        targets: rows with ``video_id``, ``youtube_id``, ``start``, ``end`` (see :func:`load_targets`).
        out_dir: the clips folder.
        settings: download settings (see :data:`DEFAULTS`).
        retry_failed: try again the videos listed in the failure table.
        progress: show a tqdm progress bar.
    """
    from tqdm import tqdm

    settings = download_settings(settings)
    check_targets(targets)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = pd.concat([_read_table(out_dir / TABLE, TABLE_COLUMNS),
                       _read_table(out_dir / PROGRESS, TABLE_COLUMNS)], ignore_index=True)
    failures = _read_table(out_dir / FAILURES, FAILURE_COLUMNS)
    present = present_files(out_dir)  # listed once: the folder may hold ~12,000 videos
    rows = {r.video_id: r._asdict() for r in table.itertuples(index=False) if r.youtube_id in present}
    failed = {r.video_id: r._asdict() for r in failures.itertuples(index=False)}
    counts = {"downloaded": 0, "present": 0, "failed": 0, "skipped_failed": 0}

    def save(final: bool = False) -> None:
        write_parquet(out_dir / FAILURES, _frame(failed.values(), FAILURE_COLUMNS))
        if final:  # the finished table appears only when the run ends (a workflow output)
            write_parquet(out_dir / TABLE, _frame(rows.values(), TABLE_COLUMNS))
            (out_dir / PROGRESS).unlink(missing_ok=True)
        else:
            write_parquet(out_dir / PROGRESS, _frame(rows.values(), TABLE_COLUMNS))

    try:
        bar = tqdm(list(targets.itertuples(index=False)), desc="download", unit="video",
                   disable=not progress)
        for i, video in enumerate(bar):
            vid, yid = video.video_id, video.youtube_id
            existing = present.get(yid)
            if existing is not None and vid not in failed:
                rows[vid] = _row(video, existing)
                counts["present"] += 1
                continue
            if vid in failed and not retry_failed:
                counts["skipped_failed"] += 1
                continue
            try:
                path = download_one(yid, out_dir, settings)
                check_download(path, float(video.start))
            except DownloadFailed as exc:
                log.warning("%s: %s failed: %s", vid, exc.stage, exc.reason)
                failed[vid] = {"video_id": vid, "stage": exc.stage, "reason": exc.reason}
                rows.pop(vid, None)
                counts["failed"] += 1
            else:
                failed.pop(vid, None)
                present[yid] = path
                rows[vid] = _row(video, path)
                counts["downloaded"] += 1
            if (i + 1) % _SAVE_EVERY == 0:
                save()
    except BaseException:
        save()
        raise
    save(final=True)
    return DownloadReport(counts["downloaded"], counts["present"], counts["failed"],
                          counts["skipped_failed"], _frame(rows.values(), TABLE_COLUMNS),
                          _frame(failed.values(), FAILURE_COLUMNS))


def download_one(youtube_id: str, out_dir: str | Path, settings: dict) -> Path:
    """Fetch one video with ``yt_dlp.YoutubeDL`` into ``out_dir/<youtube_id>.<ext>``, unchanged.

    Raises:
        DownloadFailed: stage ``download`` with yt-dlp's reason (e.g. "Video unavailable",
            "HTTP Error 404: Not Found").
    """
    import yt_dlp

    out_dir = Path(out_dir)
    url = settings["url_template"].format(id=youtube_id)
    opts = {
        "format": settings["format"],
        "outtmpl": {"default": str(child(out_dir, youtube_id, ".%(ext)s", youtube=True))},
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "retries": int(settings["retries"]),
        "fragment_retries": int(settings["retries"]),
        "socket_timeout": float(settings["socket_timeout"]),
        "logger": _YtdlpLogger(),
    }
    if settings.get("sleep_interval"):
        opts["sleep_interval"] = float(settings["sleep_interval"])
    if settings.get("cookies"):
        cookies = Path(settings["cookies"])
        if not cookies.exists():
            raise InputError(cookies, "cookies file not found (download.cookies)")
        opts["cookiefile"] = str(cookies)
    if settings.get("max_filesize"):
        opts["max_filesize"] = int(settings["max_filesize"])
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.YoutubeDLError as exc:  # DownloadError and the other yt-dlp errors
        raise DownloadFailed("download", _clean_reason(str(exc))) from None
    except OSError as exc:
        raise DownloadFailed("download", f"{type(exc).__name__}: {exc}") from None
    paths = [d.get("filepath") for d in (info or {}).get("requested_downloads") or []]
    paths = [Path(p) for p in paths if p and Path(p).exists()]
    found = paths[0] if paths else find_download(out_dir, youtube_id)
    if found is None:
        why = "no file was written"
        if settings.get("max_filesize"):
            why += f" (larger than max_filesize {settings['max_filesize']} bytes?)"
        raise DownloadFailed("download", why)
    return found


def check_download(path: str | Path, start: float) -> None:
    """Check that a downloaded file is a readable video that reaches the window's start.

    An unusable file is deleted (so ``retry_failed`` fetches it again).

    Raises:
        DownloadFailed: stage ``check`` with the problem.
    """
    from .decoding import DecodeError, probe

    path = Path(path)
    problem = None
    try:
        info = probe(path)
    except DecodeError as exc:
        problem = exc.problem
    else:
        duration = info["video_duration"] or info["duration"]
        if not info["has_video"]:
            problem = "the file has no video stream"
        elif duration is not None and duration <= start:
            problem = f"the video is {duration:.1f} s long; its window starts at {start:g} s"
    if problem is not None:
        path.unlink(missing_ok=True)
        raise DownloadFailed("check", problem)


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


def _row(video, path: Path) -> dict:
    return {"video_id": video.video_id, "youtube_id": video.youtube_id, "file": Path(path).name,
            "start": float(video.start), "end": float(video.end), "window": SOURCE_WINDOW}


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        return _frame([], columns)
    return parquet.read_table(path, columns)[columns]


def _frame(records, columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(list(records), columns=columns)
    frame = frame.astype({c: "float64" if c in ("start", "end") else "str" for c in columns})
    return frame.sort_values("video_id").reset_index(drop=True)


def _clean_reason(message: str) -> str:
    message = message.strip()
    if message.startswith("ERROR: "):
        message = message[len("ERROR: "):]
    return message.splitlines()[0] if message else "unknown yt-dlp error"


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in text)


class _YtdlpLogger:
    """Routes yt-dlp's messages to the ``avvp.download`` logger (errors surface as DownloadFailed)."""

    def debug(self, msg: str) -> None:
        log.debug(msg)

    def info(self, msg: str) -> None:
        log.debug(msg)

    def warning(self, msg: str) -> None:
        log.debug(msg)

    def error(self, msg: str) -> None:
        log.debug(msg)

