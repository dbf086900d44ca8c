"""The videos to download (from a manifest or an LLP annotation folder), their ids checked before
anything is fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from avvp.infra import parquet_reader as parquet
from avvp.infra.errors import InputError
from avvp.infra.paths import check_llp_name


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
        from avvp.core.annotations import read_llp

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
