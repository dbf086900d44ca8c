"""The paper's Table-1 layout: rows audio, visual, audio-visual, Type@AV, Event@AV; columns the
segment-level and event-level F1 (×100), as a DataFrame, Markdown or CSV.
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

from avvp.core.metrics import LEVELS, STREAM_LABELS

#: Row keys of Table 1, in order (the stream part of a metric key).
ROWS = ("audio", "visual", "av", "type", "event")
COLUMN_LABELS = {"segment": "Segment-level", "event": "Event-level"}


def table1(overall: Mapping[str, float], scale: float = 100.0) -> pd.DataFrame:
    """Table 1 of one result: index = row labels, columns = Segment-level, Event-level.

    Args:
        overall: scores keyed ``<level>_<stream>`` (e.g. :attr:`avvp.core.metrics.Result.overall`).
        scale: multiply the fractions by this (100: percent, as the papers print them).
    """
    data = {COLUMN_LABELS[level]: [overall[f"{level}_{row}"] * scale for row in ROWS] for level in LEVELS}
    frame = pd.DataFrame(data, index=[STREAM_LABELS[r] for r in ROWS])
    frame.index.name = "metric"
    return frame


def to_markdown(frame: pd.DataFrame, decimals: int = 1, title: str | None = None) -> str:
    """A pipe table of a DataFrame (index as the first column); numbers with ``decimals`` places."""
    def cell(v) -> str:
        if isinstance(v, float):
            return "–" if v != v else f"{v:.{decimals}f}"
        return str(v)

    head = [frame.index.name or ""] + [str(c) for c in frame.columns]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join([":---"] + ["---:"] * len(frame.columns)) + "|")
    for idx, row in frame.iterrows():
        lines.append("| " + " | ".join([str(idx)] + [cell(v) for v in row.tolist()]) + " |")
    return "\n".join(lines) + "\n"


def to_text(frame: pd.DataFrame, decimals: int = 1) -> str:
    """A plain aligned text table for the terminal."""
    return frame.to_string(float_format=lambda v: f"{v:.{decimals}f}")
