"""Download many videos into a clips folder, resuming earlier runs; a video that fails is
recorded in the failure table and does not stop the others."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from avvp.infra.atomic import write_parquet
from avvp.stages.download.clips_folder import (
    FAILURE_COLUMNS, FAILURES, PROGRESS, SOURCE_WINDOW, TABLE, TABLE_COLUMNS, _frame, _read_table,
    present_files,
)
from avvp.stages.download.defaults import download_settings
from avvp.stages.download.targets import check_targets
from avvp.stages.download.ytdlp import DownloadFailed, check_download, download_one

log = logging.getLogger(__package__)  # "avvp.stages.download", as before the split into modules

_SAVE_EVERY = 25


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
        settings: download settings (:func:`~avvp.stages.download.defaults.download_settings`).
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


def _row(video, path: Path) -> dict:
    return {"video_id": video.video_id, "youtube_id": video.youtube_id, "file": Path(path).name,
            "start": float(video.start), "end": float(video.end), "window": SOURCE_WINDOW}
