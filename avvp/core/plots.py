"""Pictures of results: per-class F1 bars, truth-against-prediction timelines, training curves.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state, no display needed) and
written atomically with :func:`avvp.infra.atomic.save_figure`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from avvp.infra.atomic import save_figure
from avvp.core.metrics import STREAM_LABELS

STREAM_COLOURS = {"audio": "#1f77b4", "visual": "#ff7f0e", "av": "#2ca02c", "event": "#9467bd"}
TRUTH_COLOUR = "#2ca02c"
PRED_COLOUR = "#1f3f9f"
#: History columns that are neither losses nor validation metrics.
NOT_METRICS = frozenset({"epoch", "lr", "time", "seconds", "step", "wall_s"})


def plot_per_class(per_class: pd.DataFrame, path: str | Path, overall: Mapping[str, float] | None = None,
                   title: str = "", streams: Sequence[str] = ("audio", "visual", "av")) -> Path:
    """Grouped bars of per-class F1 (×100), one panel per level (segment, event).

    The bars are the dataset-level F1 of counts pooled over videos (``f1_pooled`` of
    :attr:`avvp.core.metrics.Result.per_class`), which is not the official score; when ``overall`` is
    given, the official per-video means are drawn as dashed lines for comparison.
    """
    levels = [lv for lv in ("segment", "event") if (per_class["level"] == lv).any()]
    classes = list(dict.fromkeys(per_class["class"]))
    fig = Figure(figsize=(max(8.0, 0.45 * len(classes) + 2), 3.2 * len(levels) + 0.8))
    axes = fig.subplots(len(levels), 1, squeeze=False)[:, 0]
    x = np.arange(len(classes))
    width = 0.8 / len(streams)
    for ax, level in zip(axes, levels):
        rows = per_class[per_class["level"] == level].set_index(["stream", "class"])["f1_pooled"]
        for k, stream in enumerate(streams):
            values = rows.loc[stream].reindex(classes).to_numpy(dtype=float) * 100
            ax.bar(x + (k - (len(streams) - 1) / 2) * width, np.nan_to_num(values), width,
                   color=STREAM_COLOURS.get(stream), label=STREAM_LABELS.get(stream, stream))
            if overall is not None and f"{level}_{stream}" in overall:
                ax.axhline(overall[f"{level}_{stream}"] * 100, color=STREAM_COLOURS.get(stream),
                           linestyle="--", linewidth=1)
        ax.set_xticks(x, classes, rotation=90, fontsize=8)
        ax.set_xlim(-0.6, len(classes) - 0.4)
        ax.set_ylim(0, 100)
        ax.set_ylabel("F1 (%)")
        ax.set_title(f"{level.capitalize()} level: per-class F1 of counts pooled over videos", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if overall is not None:
        handles.append(_dashed_handle())
        labels.append("official score (mean over videos)")
    axes[0].legend(handles, labels, fontsize=8, ncol=len(labels), loc="upper right")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(path, fig)
    return Path(path)


def _dashed_handle():
    """A dashed legend handle."""
    from matplotlib.lines import Line2D

    return Line2D([0], [0], color="grey", linestyle="--", linewidth=1)


def plot_timeline(video_ids: Sequence[str], classes: Sequence[str], gt_audio: np.ndarray,
                  gt_visual: np.ndarray, pred_audio: np.ndarray, pred_visual: np.ndarray,
                  path: str | Path, subtitles: Sequence[str] | None = None, title: str = "") -> Path:
    """Truth against prediction, second by second, audio and visual side by side, one row per video.

    Each panel shows the classes present in that video's truth or prediction (either modality); a
    class row has the truth in its upper half and the prediction in its lower half.

    Args:
        video_ids: the K videos shown.
        classes: the C class names.
        gt_audio, gt_visual, pred_audio, pred_visual: (K, C, T) binary arrays.
        path: the PNG to write.
        subtitles: optional text per video (e.g. its scores).
        title: figure title.
    """
    k = len(video_ids)
    if k == 0:
        fig = Figure(figsize=(6, 1.5))
        fig.text(0.5, 0.5, "no videos selected for the timeline", ha="center", va="center")
        save_figure(path, fig)
        return Path(path)
    t = gt_audio.shape[-1]
    shown = [np.nonzero((gt_audio[i] | gt_visual[i] | pred_audio[i] | pred_visual[i]).any(-1))[0]
             for i in range(k)]
    heights = [max(len(s), 1) * 0.35 + 0.9 for s in shown]
    fig = Figure(figsize=(12, sum(heights) + 0.8))
    axes = fig.subplots(k, 2, squeeze=False, gridspec_kw={"height_ratios": heights})
    for i, vid in enumerate(video_ids):
        rows = shown[i]
        for j, (modality, gt, pr) in enumerate((("audio", gt_audio, pred_audio),
                                                ("visual", gt_visual, pred_visual))):
            ax = axes[i, j]
            for r, c in enumerate(rows):
                # the y axis is inverted: the truth takes the upper half of the row
                for segs, y0, colour in ((gt[i, c], r - 0.4, TRUTH_COLOUR),
                                         (pr[i, c], r + 0.02, PRED_COLOUR)):
                    spans = [(s, 1) for s in np.nonzero(segs)[0]]
                    if spans:
                        ax.broken_barh(spans, (y0, 0.38), facecolors=colour)
            ax.set_yticks(np.arange(len(rows)), [classes[c] for c in rows], fontsize=8)
            ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
            ax.invert_yaxis()
            ax.set_xlim(0, t)
            ax.set_xticks(np.arange(t + 1))
            ax.grid(axis="x", alpha=0.3)
            label = f"{vid} — {modality}"
            if subtitles is not None:
                label += f" ({subtitles[i]})" if j == 0 else ""
            ax.set_title(label, fontsize=9, loc="left")
            if i == k - 1:
                ax.set_xlabel("time (s)")
    fig.legend(handles=[Patch(color=TRUTH_COLOUR, label="truth (upper half)"),
                        Patch(color=PRED_COLOUR, label="prediction (lower half)")],
               loc="upper right", fontsize=8, ncol=2)
    if title:
        fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    save_figure(path, fig)
    return Path(path)


def plot_training_curve(history: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Training curves: losses per epoch (left) and validation metrics per epoch (right).

    Args:
        history: one row per epoch with an ``epoch`` column; columns whose name contains "loss"
            are plotted as losses, every other numeric column (except ``epoch``, ``lr``, ``time``,
            ``seconds``, ``step``, ``wall_s``) as a validation metric. Metrics in [0, 1] are shown
            ×100. Missing values (epochs without validation) are skipped.
        path: the PNG to write.
        title: figure title.
    """
    if "epoch" not in history.columns:
        raise ValueError(f"history has no 'epoch' column (columns: {', '.join(map(str, history.columns))})")
    numeric = [c for c in history.columns if pd.api.types.is_numeric_dtype(history[c])]
    losses = [c for c in numeric if "loss" in str(c).lower()]
    metrics = [c for c in numeric if c not in losses and str(c).lower() not in NOT_METRICS]
    fig = Figure(figsize=(11, 4) if metrics else (6, 4))
    axes = fig.subplots(1, 2 if metrics else 1, squeeze=False)[0]
    epoch = history["epoch"].to_numpy()
    for col in losses:
        y = history[col].to_numpy(dtype=float)
        ok = ~np.isnan(y)
        axes[0].plot(epoch[ok], y[ok], marker="o", markersize=3, label=str(col))
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].set_title("training loss", fontsize=10)
    if losses:
        axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    if metrics:
        scale_all = all(history[c].dropna().between(0, 1).all() for c in metrics)
        for col in metrics:
            y = history[col].to_numpy(dtype=float) * (100 if scale_all else 1)
            ok = ~np.isnan(y)
            axes[1].plot(epoch[ok], y[ok], marker="o", markersize=3, label=str(col))
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("F1 (%)" if scale_all else "value")
        axes[1].set_title("validation", fontsize=10)
        axes[1].legend(fontsize=8)
        axes[1].grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(path, fig)
    return Path(path)
