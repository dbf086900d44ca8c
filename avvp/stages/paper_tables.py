"""The paper's tables: each cell the mean ± std over seeds of one variant's test scores.

:func:`collect` reads ``eval/<variant>/seed<k>/<split>/metrics.json`` (its ``overall`` dict,
fractions keyed as :data:`avvp.core.metrics.METRICS`) for every row of a table
(:func:`avvp.experiments.table_rows`) and seed; :func:`summarise` gives the mean and the sample
standard deviation (ddof = 1; 0 with a single seed) per row and metric, ×100; :func:`write_table`
writes the Markdown (``mean ± std``), the CSV (mean and std columns per metric) and a picture
(grouped bars with error bars, one panel per level).

The denoising table, where the true per-modality training labels are known, also averages the
drops' pooled precision and recall (:data:`DROP_METRICS`, from each row's quality report,
:func:`avvp.experiments.quality_path`; "–" for a row that drops nothing) and, below the table,
compares each ratio target's estimated noise ratios with the true ones.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from avvp.infra import parquet_reader as parquet
from avvp.infra.errors import InputError
from avvp.experiments import (PUBLISHED, PUBLISHED_TABLES, TABLE_TITLES, metrics_path, quality_path, ratio_quality_path,
                              row_seeds, table_quality, table_ratio_targets, table_rows, table_seeds)
from avvp.infra.json_reader import read_json
from avvp.core.metrics import LEVELS, METRICS, STREAM_LABELS

SCALE = 100.0
#: The drops' pooled precision and recall per modality (the denoising table on the demo).
DROP_METRICS = ("drop_audio_precision", "drop_audio_recall", "drop_visual_precision", "drop_visual_recall")
DROP_LABELS = {"drop_audio_precision": "Drop A prec.", "drop_audio_recall": "Drop A rec.",
               "drop_visual_precision": "Drop V prec.", "drop_visual_recall": "Drop V rec."}


def read_overall(path: str | Path) -> dict[str, float]:
    """The ``overall`` scores of one ``metrics.json`` (null → NaN); errors name the file."""
    path = Path(path)
    data = read_json(path, "metrics file")
    overall = data.get("overall") if isinstance(data, dict) else None
    if not isinstance(overall, dict):
        raise InputError(path, "no 'overall' scores")
    missing = [m for m in METRICS if m not in overall]
    if missing:
        raise InputError(path, f"'overall' lacks {', '.join(missing)}")
    return {m: float("nan") if overall[m] is None else float(overall[m]) for m in METRICS}


def read_drop_scores(path: str | Path | None) -> dict[str, float]:
    """The pooled drop precision and recall of one quality report (NaN for None: nothing dropped)."""
    if path is None:
        return {m: float("nan") for m in DROP_METRICS}
    q = parquet.read_table(path, ("modality", "class", "precision", "recall"), "quality report")
    pooled = q[q["class"] == "all"].set_index("modality")
    out = {}
    for m in DROP_METRICS:
        _, modality, kind = m.split("_")
        if modality not in pooled.index:
            raise InputError(path, f"no pooled row for {modality}")
        out[m] = float(pooled.loc[modality, kind])
    return out


def collect(table: str, results: str | Path, settings: Mapping[str, Any]) -> pd.DataFrame:
    """Long table of one row per table row and seed: ``row``, ``label``, ``variant``, ``seed`` and
    one column per metric (fractions), plus :data:`DROP_METRICS` where the table scores drops."""
    results = Path(results)
    split = settings.get("split", "test")
    quality = table_quality(table, settings)
    records = []
    for i, row in enumerate(table_rows(table, settings)):
        for seed in row_seeds(row, settings):
            scores = read_overall(results / metrics_path(row.variant, seed, split))
            if quality:
                q = quality_path(row.variant, seed)
                scores.update(read_drop_scores(None if q is None else results / q))
            records.append({"row": i, "label": row.label, "variant": row.variant, "seed": seed, **scores})
    return pd.DataFrame.from_records(records)


def summarise(long: pd.DataFrame, scale: float = SCALE) -> pd.DataFrame:
    """Mean and std over seeds per row: index = row label; columns ``<metric>_mean``/``_std``
    (×``scale``), plus ``variant`` and ``n_seeds``."""
    out = []
    metrics = [m for m in (*METRICS, *DROP_METRICS) if m in long.columns]
    for (_, label), part in long.groupby(["row", "label"], sort=True):
        rec: dict[str, Any] = {"label": label, "variant": part["variant"].iloc[0], "n_seeds": len(part),
                               "seeds": "/".join(str(int(s)) for s in part["seed"])}
        for m in metrics:
            values = part[m].to_numpy(dtype=np.float64) * scale
            rec[f"{m}_mean"], rec[f"{m}_std"] = _mean_std(values, skip_nan=m in DROP_METRICS)
        out.append(rec)
    return pd.DataFrame.from_records(out).set_index("label")


def _mean_std(values: np.ndarray, skip_nan: bool = True) -> tuple[float, float]:
    """Mean and sample std (0 for one value); with ``skip_nan`` of the finite values only (NaN
    when there are none; a seed whose method dropped nothing has no drop precision)."""
    if skip_nan:
        values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def ratio_summary(results: str | Path, names: list[str], seeds: list[int], labels: Mapping[str, str],
                  scale: float = SCALE) -> pd.DataFrame:
    """Estimated against true noise ratios per ratio target, mean ± std over seeds: the
    label-weighted mean ratio (estimated, true) and the mean absolute error over classes, per
    modality (from ``ratios/<name>/seed<k>/quality.parquet``)."""
    records = []
    for name in names:
        rec: dict[str, Any] = {"label": labels.get(name, name), "ratios": name, "n_seeds": len(seeds)}
        per_seed = []
        for seed in seeds:
            path = Path(results) / ratio_quality_path(name, seed)
            q = parquet.read_table(path, ("modality", "class", "estimated", "true", "error"), "ratio comparison")
            per_seed.append(q[q["class"] == "all"].set_index("modality"))
        for modality in ("audio", "visual"):
            for col, key in (("estimated", "estimated"), ("true", "true"), ("error", "mae")):
                values = np.array([p.loc[modality, col] for p in per_seed], dtype=np.float64) * scale
                rec[f"{modality}_{key}_mean"], rec[f"{modality}_{key}_std"] = _mean_std(values)
        records.append(rec)
    return pd.DataFrame.from_records(records).set_index("label")


def ratio_markdown(summary: pd.DataFrame, decimals: int = 1) -> str:
    """The ratio comparison as a pipe table."""
    head = ["noise ratios from"] + [f"{m} {k}" for m in ("audio", "visual")
                                    for k in ("estimated", "true", "mean abs. error")]
    lines = ["**Noise ratios against the truth**", "",
             "Share (%) of the weak training labels absent in each modality: the estimate's and the "
             "true mean over classes (weighted by the labels per class), and the mean absolute "
             "error over classes (points); mean ± std over seeds.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
    for label, row in summary.iterrows():
        cells = [_cell(row[f"{m}_{k}_mean"], row[f"{m}_{k}_std"], decimals)
                 for m in ("audio", "visual") for k in ("estimated", "true", "mae")]
        lines.append("| " + " | ".join([str(label)] + cells) + " |")
    return "\n".join(lines) + "\n"


#: Where the published numbers come from (the note under a table that shows them).
PUBLISHED_NOTE = ("In brackets: the published LLP test F1 (%), one run each (HAN, JoMoLD, VALOR and "
                  "VALOR++ from Lai et al., CVPR 2025, Tables 1 and A6; MA from Wu & Yang, CVPR 2021); "
                  "compare only where the rows ran on LLP with the official features.")


def _cell(mean: float, std: float, decimals: int, alone: bool = False) -> str:
    """``mean ± std``; the mean alone with ``alone`` (a single run); – for NaN."""
    if math.isnan(mean):
        return "–"
    return f"{mean:.{decimals}f}" if alone else f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _published_cell(cell: str, variant: str, index: int, published: bool, decimals: int) -> str:
    """``cell`` with the published number of ``variant``'s metric ``index`` beside it, in brackets
    (:data:`avvp.experiments.PUBLISHED`; unchanged where there is none or ``published`` is off)."""
    if not published or variant not in PUBLISHED:
        return cell
    return f"{cell} ({PUBLISHED[variant][1][index]:.{decimals}f})"


def _shared_seeds(summary: pd.DataFrame) -> bool:
    """Whether every row averages the same seeds (config ``train.seeds``)."""
    return summary["seeds"].nunique() == 1


def _runs_caption(summary: pd.DataFrame) -> str:
    """What each cell averages: the seeds when every row shares them, else each row's own runs."""
    if _shared_seeds(summary):
        return f"mean ± std over {int(summary['n_seeds'].iloc[0])} seed(s)"
    if (summary["n_seeds"] == 1).all():
        return "one run per row, at the seed its label names"
    return "mean ± std over each row's seeds (one run: the value alone)"


def to_markdown(summary: pd.DataFrame, title: str, decimals: int = 1, published: bool = False) -> str:
    """A pipe table: one row per variant, a column per level and stream, cells ``mean ± std``
    (the mean alone for a single run; with ``published`` the published number beside it) and the
    drops' precision and recall where the summary has them."""
    drops = [m for m in DROP_METRICS if f"{m}_mean" in summary.columns]
    head = ["variant"] + [f"{level[:3].capitalize()}. {STREAM_LABELS[m.split('_', 1)[1]]}"
                          for level in LEVELS for m in METRICS if m.startswith(level)]
    head += [DROP_LABELS[m] for m in drops]
    note = (" Drop A/V prec./rec.: precision and recall (%) of the dropped audio / visual training "
            "labels against the true per-modality labels, pooled over classes (and over the epochs "
            "in which a dynamic method could drop); – where nothing is dropped.") if drops else ""
    lines = [f"**{title}**", "",
             f"F1 (%), {_runs_caption(summary)}; Seg. = segment level, Eve. = event level.{note}"
             + (f" {PUBLISHED_NOTE}" if published else ""), "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
    shared = _shared_seeds(summary)  # every row over train.seeds: always ± std
    for label, row in summary.iterrows():
        alone = not shared and int(row["n_seeds"]) == 1
        cells = [_published_cell(_cell(row[f"{m}_mean"], row[f"{m}_std"], decimals, alone), row["variant"], i,
                                 published, decimals) for i, m in enumerate(METRICS)]
        cells += [_cell(row[f"{m}_mean"], row[f"{m}_std"], decimals, alone) for m in drops]
        lines.append("| " + " | ".join([str(label)] + cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: pd.DataFrame, title: str):
    """Grouped bars (one group per stream, one bar per variant) with std error bars, per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = ("audio", "visual", "av", "type", "event")
    labels = list(summary.index)
    width = 0.8 / max(len(labels), 1)
    fig, axes = plt.subplots(1, len(LEVELS), figsize=(6 + 1.2 * len(labels), 4.2), sharey=True)
    x = np.arange(len(streams))
    for ax, level in zip(np.atleast_1d(axes), LEVELS):
        for i, label in enumerate(labels):
            row = summary.loc[label]
            means = [row[f"{level}_{s}_mean"] for s in streams]
            stds = [row[f"{level}_{s}_std"] for s in streams]
            ax.bar(x - 0.4 + width * (i + 0.5), means, width, yerr=stds, capsize=3, label=str(label))
        ax.set_xticks(x, [STREAM_LABELS[s] for s in streams], rotation=20)
        ax.set_title(f"{level}-level F1")
        ax.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("F1 (%)")
    np.atleast_1d(axes)[-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def build(table: str, results: str | Path, settings: Mapping[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long per-seed scores, summary) of one table."""
    long = collect(table, results, settings)
    return long, summarise(long)


def write_table(table: str, results: str | Path, settings: Mapping[str, Any],
                md: str | Path, csv: str | Path, png: str | Path, decimals: int = 1) -> pd.DataFrame:
    """Build one table and write its Markdown, CSV and picture atomically; returns the summary."""
    from avvp.infra.atomic import save_figure, write_csv, write_text

    _, summary = build(table, results, settings)
    title = f"{table}: {TABLE_TITLES.get(table, table)}"
    text = to_markdown(summary, title, decimals,
                       published=table in PUBLISHED_TABLES and bool(settings.get("published")))
    names = table_ratio_targets(table, settings)
    if names:
        from avvp.experiments import RATIO_TARGETS

        labels = {n: RATIO_TARGETS[n].label for n in names}
        text += "\n" + ratio_markdown(ratio_summary(results, names, table_seeds(settings), labels), decimals)
    write_text(md, text)
    write_csv(csv, summary.reset_index().round(4))
    save_figure(png, plot(summary, title))
    return summary
