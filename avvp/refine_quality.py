"""How good the refinement is, where the true per-modality training labels are known (the demo).

A weak label (video, class) is *truly absent* from a modality when the data set's training truth
(``Annotations.train_audio`` / ``train_visual``: dense events) has no event of that class in that
modality of the video. Refinement *drops* a modality label; per modality and class:

* precision = dropped and truly absent / dropped (NaN when nothing was dropped);
* recall = dropped and truly absent / truly absent (NaN when nothing is truly absent).

The ``all`` row pools the counts over classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

MODALITIES = ("audio", "visual")
COUNT_COLUMNS = ("labels", "absent", "dropped", "correct")


def truth_presence(table: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """1 where the dense ``truth`` events have the (video, class) of each ``table`` row, else 0."""
    present = set(zip(truth["video_id"].astype(str), truth["class"].astype(str)))
    return np.fromiter(((v, c) in present for v, c in zip(table["video_id"], table["class"])),
                       dtype=bool, count=len(table))


def quality(table: pd.DataFrame, truth_audio: pd.DataFrame, truth_visual: pd.DataFrame,
            classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Precision and recall of the dropped labels per modality and class.

    Args:
        table: a refined-labels table (``video_id``, ``class``, ``audio``, ``visual``).
        truth_audio, truth_visual: dense training truth (``video_id``, ``class``, ``onset``, ``offset``).
        classes: the class order of the rows (default: order of first appearance in ``table``).

    Returns:
        One row per modality and class plus a pooled ``all`` row per modality: ``modality``,
        ``class``, ``labels`` (weak labels), ``absent`` (truly absent), ``dropped``, ``correct``
        (dropped and truly absent), ``precision``, ``recall``.
    """
    if classes is None:
        classes = list(dict.fromkeys(table["class"]))
    records = []
    for modality, truth in zip(MODALITIES, (truth_audio, truth_visual)):
        frame = pd.DataFrame({
            "class": table["class"].to_numpy(),
            "absent": ~truth_presence(table, truth),
            "dropped": table[modality].to_numpy() == 0,
        })
        frame["correct"] = frame["absent"] & frame["dropped"]
        groups = frame.groupby("class", sort=False)
        for cls in list(classes) + ["all"]:
            part = frame if cls == "all" else (groups.get_group(cls) if cls in groups.groups else frame.iloc[:0])
            counts = {"labels": len(part), "absent": int(part["absent"].sum()),
                      "dropped": int(part["dropped"].sum()), "correct": int(part["correct"].sum())}
            records.append({"modality": modality, "class": cls, **counts,
                            "precision": _ratio(counts["correct"], counts["dropped"]),
                            "recall": _ratio(counts["correct"], counts["absent"])})
    return pd.DataFrame.from_records(records)


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def to_markdown(q: pd.DataFrame, title: str = "Refinement quality") -> str:
    """A Markdown summary (pooled rows first) and the per-class table."""
    from .tables import to_markdown as pipe_table

    def block(frame: pd.DataFrame) -> pd.DataFrame:
        shown = frame.copy()
        for col in ("precision", "recall"):
            shown[col] = shown[col] * 100.0
        shown = shown.set_index("modality")
        shown[list(COUNT_COLUMNS)] = shown[list(COUNT_COLUMNS)].astype(int).astype(str)
        return shown

    pooled = q[q["class"] == "all"].drop(columns="class")
    per_class = q[q["class"] != "all"]
    text = [f"# {title}", "",
            "Dropped modality labels against the true per-modality training labels: precision = "
            "correctly dropped / dropped, recall = correctly dropped / truly absent (%).", ""]
    text.append(pipe_table(block(pooled), title="All classes"))
    text.append("")
    text.append(pipe_table(block(per_class), title="Per class"))
    return "\n".join(text)


def plot(q: pd.DataFrame, title: str = "Refinement quality"):
    """Grouped bars of precision and recall per class, one panel per modality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_class = q[q["class"] != "all"]
    classes = list(dict.fromkeys(per_class["class"]))
    fig, axes = plt.subplots(len(MODALITIES), 1, figsize=(max(6.0, 0.55 * len(classes) + 2), 6.5),
                             sharex=True, squeeze=False)
    x = np.arange(len(classes))
    for ax, modality in zip(axes[:, 0], MODALITIES):
        part = per_class[per_class["modality"] == modality].set_index("class").reindex(classes)
        pooled = q[(q["modality"] == modality) & (q["class"] == "all")].iloc[0]
        for offset, col, color in ((-0.2, "precision", "tab:blue"), (0.2, "recall", "tab:orange")):
            ax.bar(x + offset, np.nan_to_num(part[col].to_numpy() * 100.0), 0.4,
                   label=f"{col} (all: {_pct(pooled[col])})", color=color)
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        ax.set_title(f"{modality}: {int(pooled['dropped'])} dropped, {int(pooled['absent'])} truly absent")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(x, classes, rotation=45, ha="right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _pct(value: float) -> str:
    return "–" if value != value else f"{value * 100:.1f}%"


def write_report(q: pd.DataFrame, parquet: str | Path, markdown: str | Path, picture: str | Path,
                 title: str = "Refinement quality") -> None:
    """Write the quality table (Parquet), its Markdown and its picture, atomically."""
    from .atomic import save_figure, write_parquet, write_text

    write_parquet(parquet, q)
    write_text(markdown, to_markdown(q, title))
    save_figure(picture, plot(q, title))
