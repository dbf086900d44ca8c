"""How good a label-denoising method is, where the true per-modality training labels are known
(the demo).

A weak label (video, class) is *truly absent* from a modality when the data set's training truth
(``Annotations.train_audio`` / ``train_visual``: dense events, ``dense_train_*.parquet``) has no
event of that class in that modality of the video. A method *drops* a modality label; per
modality and class:

* precision = dropped and truly absent / dropped (NaN when nothing was dropped);
* recall = dropped and truly absent / truly absent (NaN when nothing is truly absent).

The ``all`` row pools the counts over classes. The same report serves every member of the family:
a static method's refined-labels table (:func:`quality`), and a dynamic method's drops, one
refined-labels table per epoch (:func:`epoch_quality`, pooled over the epochs in which it
denoised). :func:`ratio_comparison` compares estimated noise ratios with the true ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from avvp.infra import parquet_reader as parquet
from avvp.core.annotations import EVENT_COLUMNS
from avvp.infra.errors import InputError

MODALITIES = ("audio", "visual")
COUNT_COLUMNS = ("labels", "absent", "dropped", "correct")


def train_truth(manifest: str | Path) -> dict[str, pd.DataFrame]:
    """The true per-modality training events beside a manifest (``dense_train_{audio,visual}.parquet``).

    Raises:
        InputError: a table is missing, or both are empty (only the demo knows this truth).
    """
    folder = Path(manifest).parent
    out = {}
    for modality in MODALITIES:
        out[modality] = parquet.read_table(
            folder / f"dense_train_{modality}.parquet", EVENT_COLUMNS,
            "true per-modality training labels (needed for the quality report)")
    if out["audio"].empty and out["visual"].empty:
        raise InputError(folder / "dense_train_audio.parquet",
                         "the data set has no true per-modality training labels (only the demo has them)")
    return out


def absent_masks(labels: np.ndarray, video_ids: Sequence[str], classes: Sequence[str],
                 truth_audio: pd.DataFrame, truth_visual: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(absent_audio, absent_visual), (N, C) bool: weak labels with no true event in that modality."""
    pos = np.asarray(labels) > 0
    row = {v: i for i, v in enumerate(video_ids)}
    col = {c: i for i, c in enumerate(classes)}
    out = []
    for truth in (truth_audio, truth_visual):
        present = np.zeros(pos.shape, dtype=bool)
        for v, c in zip(truth["video_id"].astype(str), truth["class"].astype(str)):
            if v in row and c in col:
                present[row[v], col[c]] = True
        out.append(pos & ~present)
    return out[0], out[1]


def truth_presence(table: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """1 where the dense ``truth`` events have the (video, class) of each ``table`` row, else 0."""
    present = set(zip(truth["video_id"].astype(str), truth["class"].astype(str)))
    return np.fromiter(((v, c) in present for v, c in zip(table["video_id"], table["class"])),
                       dtype=bool, count=len(table))


def count_truth(counts: pd.DataFrame, truth: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``counts`` (``video_id``, ``class``, ``modality``, ...) with ``absent``: whether the label
    is truly absent from that modality (``truth``: the training events per modality)."""
    out = counts.copy()
    absent = np.zeros(len(out), dtype=bool)
    for modality in MODALITIES:
        rows = (out["modality"] == modality).to_numpy()
        absent[rows] = ~truth_presence(out[rows], truth[modality])
    out["absent"] = absent
    return out


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


def epoch_quality(tables: Mapping[int, pd.DataFrame], active: Sequence[int], truth_audio: pd.DataFrame,
                  truth_visual: pd.DataFrame, classes: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The quality of a dynamic method's drops: per epoch, and pooled over its active epochs.

    Args:
        tables: epoch → the refined-labels table of that epoch's drops (each label is seen once per
            epoch, so it is dropped at most once per epoch and modality).
        active: the epochs in which the method could drop (JoMoLD's coded warm-up drops nothing
            in epoch 1); the pooled report sums their counts.
        truth_audio, truth_visual, classes: see :func:`quality`.

    Returns:
        (per-epoch quality with an ``epoch`` column, pooled quality): the pooled precision is the
        share of all drops (every epoch's) that were truly absent, the pooled recall the mean over
        active epochs of the share of truly absent labels dropped.
    """
    per_epoch = []
    for epoch, table in sorted(tables.items()):
        q = quality(table, truth_audio, truth_visual, classes)
        q.insert(0, "epoch", int(epoch))
        per_epoch.append(q)
    frame = pd.concat(per_epoch, ignore_index=True)
    used = frame[frame["epoch"].isin(list(active))]
    if used.empty:
        used = frame.iloc[:0]
    sums = used.groupby(["modality", "class"], sort=False)[list(COUNT_COLUMNS)].sum().reset_index()
    order = frame[frame["epoch"] == frame["epoch"].min()][["modality", "class"]]
    pooled = order.merge(sums, on=["modality", "class"], how="left").fillna(0)
    pooled[list(COUNT_COLUMNS)] = pooled[list(COUNT_COLUMNS)].astype(np.int64)
    pooled["precision"] = [_ratio(c, d) for c, d in zip(pooled["correct"], pooled["dropped"])]
    pooled["recall"] = [_ratio(c, a) for c, a in zip(pooled["correct"], pooled["absent"])]
    return frame, pooled


def ratio_comparison(estimated, true) -> pd.DataFrame:
    """Estimated against true noise ratios (two :class:`avvp.stages.refine.ratios.NoiseRatios`).

    Returns:
        One row per modality and class plus an ``all`` row per modality: ``estimated``, ``true``,
        ``error`` (estimated − true) and, in the ``all`` rows, the mean absolute error over classes
        (``error``) and the label-weighted means of the ratios.
    """
    if list(estimated.classes) != list(true.classes):
        raise ValueError("the two ratio tables have different classes")
    records = []
    n = np.asarray(true.labels, dtype=np.float64)
    for modality in MODALITIES:
        est, tru = getattr(estimated, modality), getattr(true, modality)
        for k, cls in enumerate(true.classes):
            records.append({"modality": modality, "class": cls, "labels": int(n[k]),
                            "estimated": float(est[k]), "true": float(tru[k]), "error": float(est[k] - tru[k])})
        w = n / n.sum() if n.sum() > 0 else np.full(len(n), 1.0 / max(len(n), 1))
        records.append({"modality": modality, "class": "all", "labels": int(n.sum()),
                        "estimated": float((w * est).sum()), "true": float((w * tru).sum()),
                        "error": float(np.abs(est - tru).mean())})
    return pd.DataFrame.from_records(records)


def ratio_markdown(comparison: pd.DataFrame, title: str = "Noise ratios against the truth") -> str:
    """Markdown of :func:`ratio_comparison` (%), pooled rows first."""
    from avvp.core.table_layout import to_markdown as pipe_table

    shown = comparison.copy()
    for col in ("estimated", "true", "error"):
        shown[col] = shown[col] * 100.0
    shown["labels"] = shown["labels"].astype(str)
    pooled = shown[shown["class"] == "all"].drop(columns="class").set_index("modality")
    pooled = pooled.rename(columns={"error": "mean abs. error", "estimated": "estimated (weighted mean)",
                                    "true": "true (weighted mean)"})
    text = [f"# {title}", "",
            "Per class: the share of the weak labels absent in each modality, as estimated and as "
            "true (the data set's true per-modality training labels), %. Pooled rows: the means "
            "weighted by the labels per class, and the mean absolute error over classes.", "",
            pipe_table(pooled, title="All classes"), "",
            pipe_table(shown[shown["class"] != "all"].set_index("modality"), title="Per class")]
    return "\n".join(text)


def ratio_plot(comparison: pd.DataFrame, title: str = "Noise ratios against the truth"):
    """Bars of estimated and true ratios per class, one panel per modality."""
    return class_bars(comparison, (("estimated", "tab:blue"), ("true", "tab:green")),
                      lambda m, pooled: f"{m}: mean absolute error {pooled['error'] * 100:.1f} points", title)


def class_bars(frame: pd.DataFrame, series, subtitle, title: str):
    """One panel per modality with two bars per class (``series``: (column, colour) pairs, values
    in %); the ``all`` rows feed the legend and ``subtitle(modality, pooled row)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_class = frame[frame["class"] != "all"]
    classes = list(dict.fromkeys(per_class["class"]))
    fig, axes = plt.subplots(len(MODALITIES), 1, figsize=(max(6.0, 0.55 * len(classes) + 2), 6.5),
                             sharex=True, squeeze=False)
    x = np.arange(len(classes))
    for ax, modality in zip(axes[:, 0], MODALITIES):
        part = per_class[per_class["modality"] == modality].set_index("class").reindex(classes)
        pooled = frame[(frame["modality"] == modality) & (frame["class"] == "all")].iloc[0]
        for offset, (col, color) in zip((-0.2, 0.2), series):
            ax.bar(x + offset, np.nan_to_num(part[col].to_numpy(dtype=np.float64) * 100.0), 0.4,
                   label=f"{col} (all: {_pct(pooled[col])})", color=color)
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        ax.set_title(subtitle(modality, pooled))
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(x, classes, rotation=45, ha="right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_ratio_report(comparison: pd.DataFrame, parquet_path: str | Path, markdown: str | Path,
                       picture: str | Path, title: str = "Noise ratios against the truth") -> None:
    """Write :func:`ratio_comparison` as Parquet, Markdown and a picture, atomically."""
    from avvp.infra.atomic import save_figure, write_parquet, write_text

    write_parquet(parquet_path, comparison)
    write_text(markdown, ratio_markdown(comparison, title))
    save_figure(picture, ratio_plot(comparison, title))


def to_markdown(q: pd.DataFrame, title: str = "Refinement quality") -> str:
    """A Markdown summary (pooled rows first) and the per-class table."""
    from avvp.core.table_layout import to_markdown as pipe_table

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
    return class_bars(q, (("precision", "tab:blue"), ("recall", "tab:orange")),
                      lambda m, pooled: f"{m}: {int(pooled['dropped'])} dropped, {int(pooled['absent'])} truly absent",
                      title)


def _pct(value: float) -> str:
    return "–" if value != value else f"{value * 100:.1f}%"


def write_report(q: pd.DataFrame, parquet: str | Path, markdown: str | Path, picture: str | Path,
                 title: str = "Refinement quality") -> None:
    """Write the quality table (Parquet), its Markdown and its picture, atomically."""
    from avvp.infra.atomic import save_figure, write_parquet, write_text

    write_parquet(parquet, q)
    write_text(markdown, to_markdown(q, title))
    save_figure(picture, plot(q, title))
