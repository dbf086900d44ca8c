"""The ``download`` settings: their defaults (:data:`DEFAULTS`) and :func:`download_settings`,
which merges given settings over them and checks them."""

from __future__ import annotations

from ..errors import ConfigError
from ..settings import merge_settings

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
