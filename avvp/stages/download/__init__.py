"""Download the LLP source videos with yt-dlp, keep them as they are, and record their windows.

Each LLP video is a 10-second window ``[start, end)`` of a YouTube video (``<id>_<start>_<end>``).
The official script cut and re-encoded that window with ffmpeg; here the downloaded file is stored
unchanged as ``<out>/<youtube id>.<ext>`` and the window is cut at decode time
(``avvp.stages.decoding.decode_*(path, start, end)``), so nothing is re-encoded.

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

The modules: :mod:`~avvp.stages.download.defaults` (the settings), :mod:`~avvp.stages.download.targets` (which
videos), :mod:`~avvp.stages.download.ytdlp` (one video), :mod:`~avvp.stages.download.clips_folder` (files, tables
and windows) and :mod:`~avvp.stages.download.many_videos` (the resumable run).
"""

from avvp.stages.download.clips_folder import (
    FAILURE_COLUMNS, FAILURES, PROGRESS, SOURCE_WINDOW, TABLE, TABLE_COLUMNS, clip_table, clip_window,
    find_download, present_files, read_download_table, read_failures,
)
from avvp.stages.download.defaults import download_settings
from avvp.stages.download.many_videos import DownloadReport, download_videos
from avvp.stages.download.targets import check_targets, load_targets
from avvp.stages.download.ytdlp import DownloadFailed, check_download, download_one

__all__ = [
    "FAILURES", "FAILURE_COLUMNS", "PROGRESS", "SOURCE_WINDOW", "TABLE", "TABLE_COLUMNS",
    "DownloadFailed", "DownloadReport", "check_download", "check_targets", "clip_table", "clip_window",
    "download_one", "download_settings", "download_videos", "find_download", "load_targets",
    "present_files", "read_download_table", "read_failures",
]
