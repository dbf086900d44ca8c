"""Parse many videos (files and folders of them) into one output folder each, with a summary
table; a video that fails does not stop the others."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import pandas as pd

from avvp.infra.atomic import write_csv
from avvp.infra.errors import InputError
from avvp.infra.paths import VIDEO_EXTENSIONS, child
from avvp.stages.parse.model_loading import VideoParser, load_parser
from avvp.stages.parse.one_video import parse_video
from avvp.stages.parse.output import output_names, write_result

log = logging.getLogger(__package__)  # "avvp.stages.parse", as before the split into modules

SUMMARY_COLUMNS = ["video", "status", "segments", "events", "output", "message"]


@dataclass
class ParseSummary:
    """What :func:`parse_videos` did: one row per video (:data:`SUMMARY_COLUMNS`)."""

    table: pd.DataFrame

    @property
    def failed(self) -> int:
        return int((self.table["status"] != "ok").sum())

    def text(self) -> str:
        lines = []
        for row in self.table.itertuples(index=False):
            if row.status == "ok":
                msg = f"  ok      {row.video}: {row.events} events in {row.segments} segments -> {row.output}"
                if row.message:
                    msg += f" (note: {row.message})"
            else:
                msg = f"  FAILED  {row.video}: {row.message}"
            lines.append(msg)
        ok = len(self.table) - self.failed
        lines.append(f"{ok} of {len(self.table)} videos parsed, {self.failed} failed")
        return "\n".join(lines)


def expand_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus the video files (by extension) of any folder named."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS))
        else:
            out.append(p)
    return out


def parse_videos(videos: Iterable[str | Path], model: str | Path, out: str | Path,
                 settings: Mapping | None = None, features: Mapping | None = None,
                 config: str | Path | None = "config.yaml", progress: bool = True,
                 parser: VideoParser | None = None) -> ParseSummary:
    """Parse every video into ``<out>/<name>/``; a video that fails does not stop the others.

    ``<name>`` is the file stem (``<stem>_<ext>`` when two files share a stem, see
    :func:`output_names`).

    The summary (also written to ``<out>/summary.csv``) has one row per video with its status
    (``ok`` or ``failed``) and the error or notes.

    Raises:
        InputError: two videos in different folders share a file name (outputs would collide).
        AvvpError: the model or the extractors cannot be loaded (nothing can be parsed).
    """
    from tqdm import tqdm

    videos = list(dict.fromkeys(expand_videos(videos)))
    names = output_names(videos)
    if parser is None:
        parser = load_parser(model, settings, features, config)
    rows = []
    for video in tqdm(videos, desc="parse", unit="video", disable=not progress):
        try:
            folder = child(out, names[video], source=video, what="output folder name")
            result = parse_video(parser, video)
            write_result(parser, result, folder)
        except InputError as exc:
            log.error("%s", exc)
            same = exc.path is not None and Path(exc.path) == video and exc.line is None
            rows.append({"video": str(video), "status": "failed", "segments": 0, "events": 0,
                         "output": "", "message": exc.problem if same else str(exc)})
            continue
        rows.append({"video": str(video), "status": "ok", "segments": result.segments,
                     "events": len(result.events), "output": str(folder),
                     "message": "; ".join(result.notes + [f"warning: {w}" for w in result.warnings])})
    table = pd.DataFrame.from_records(rows, columns=SUMMARY_COLUMNS)
    write_csv(Path(out) / "summary.csv", table)
    return ParseSummary(table)
