"""Draw a parsed video as a timeline picture (``timeline.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avvp.infra.atomic import save_figure
from avvp.stages.parse.events import MODALITIES
from avvp.stages.parse.one_video import ParseResult

MODALITY_COLOURS = {"audio": "#1f77b4", "visual": "#ff7f0e", "audio-visual": "#2ca02c"}


def plot_events(result: ParseResult, classes: list[str], path: str | Path, gate: str = "ma",
                threshold: float = 0.5) -> Path:
    """The parsed video as a timeline: for each class with an event, one row per modality.

    Each row shows the detected events as bars (audio blue, visual orange, audio-visual green;
    labelled with their confidence) and that modality's segment probability as a step line
    (row bottom = 0, row top = 1; dotted: the threshold).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    t = result.segments
    shown = sorted({classes.index(c) for c in result.events["class"]})
    rows = [(c, m) for c in shown for m in MODALITIES]
    width = min(max(8.0, 0.3 * t + 3.0), 40.0)
    fig = Figure(figsize=(width, 0.32 * max(len(rows), 3) + 1.6))
    ax = fig.subplots()
    probs = {"audio": result.frame_prob[:, 0], "visual": result.frame_prob[:, 1],
             "audio-visual": np.minimum(result.frame_prob[:, 0], result.frame_prob[:, 1])}
    events = result.events

    def level(r: int, p):  # probability p drawn inside row r: bottom 0, top 1
        return r + 0.4 - 0.8 * np.asarray(p)

    for r, (c, modality) in enumerate(rows):
        colour = MODALITY_COLOURS[modality]
        sel = events[(events["class"] == classes[c]) & (events["modality"] == modality)]
        for ev in sel.itertuples(index=False):
            ax.broken_barh([(ev.onset, ev.offset - ev.onset)], (r - 0.4, 0.8), facecolors=colour,
                           alpha=0.35)
            ax.text((ev.onset + ev.offset) / 2, r, f"{ev.confidence:.2f}", ha="center", va="center",
                    fontsize=7)
        p = probs[modality][:, c]
        ax.step(np.arange(t + 1), level(r, np.append(p, p[-1])), where="post", color=colour, linewidth=1.2)
        ax.hlines(level(r, threshold), 0, t, colors="grey", linestyles=":", linewidth=0.7)
    ax.set_yticks(np.arange(len(rows)), [f"{classes[c]} · {m}" for c, m in rows], fontsize=8)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xlim(0, max(t, 1))
    if t <= 40:
        ax.set_xticks(np.arange(t + 1))
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    if not rows:
        ax.text(max(t, 1) / 2, 0, "no events detected", ha="center", va="center")
        ax.set_yticks([])
    title = f"{result.video.name}: {t} segments of 1 s (gate {gate})"
    if result.tail_s > 1e-3:
        title += f", last {result.tail_s:.2f} s not parsed"
    ax.set_title(title, fontsize=9, loc="left")
    handles = [Patch(color=MODALITY_COLOURS[m], alpha=0.5, label=f"{m} event") for m in MODALITIES]
    handles.append(Line2D([0], [0], color="grey", label="segment probability (row bottom 0, top 1)"))
    handles.append(Line2D([0], [0], color="grey", linestyle=":", label=f"threshold {threshold:g}"))
    fig.legend(handles=handles, loc="upper right", fontsize=7, ncol=5)
    if result.notes:
        fig.text(0.01, 0.0, "\n".join(result.notes), fontsize=7, va="top")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    save_figure(path, fig)
    return Path(path)
