"""Fetch one video with yt-dlp, unchanged, and check that the file is a usable video."""

from __future__ import annotations

import logging
from pathlib import Path

from avvp.infra.errors import InputError
from avvp.infra.paths import child
from avvp.stages.download.clips_folder import find_download

log = logging.getLogger(__package__)  # "avvp.stages.download", as before the split into modules


class DownloadFailed(Exception):
    """One video could not be downloaded or is unusable; ``stage`` and ``reason`` say why."""

    def __init__(self, stage: str, reason: str):
        self.stage = stage
        self.reason = reason
        super().__init__(f"{stage}: {reason}")


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
    from avvp.stages.decoding import DecodeError, probe

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


def _clean_reason(message: str) -> str:
    message = message.strip()
    if message.startswith("ERROR: "):
        message = message[len("ERROR: "):]
    return message.splitlines()[0] if message else "unknown yt-dlp error"


class _YtdlpLogger:
    """Routes yt-dlp's messages to the ``avvp.stages.download`` logger (errors surface as DownloadFailed)."""

    def debug(self, msg: str) -> None:
        log.debug(msg)

    def info(self, msg: str) -> None:
        log.debug(msg)

    def warning(self, msg: str) -> None:
        log.debug(msg)

    def error(self, msg: str) -> None:
        log.debug(msg)
