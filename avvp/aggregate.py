"""The paper's tables: each cell the mean ± std over seeds of one variant's test scores.

:func:`collect` reads ``eval/<variant>/seed<k>/<split>/metrics.json`` (its ``overall`` dict,
fractions keyed as :data:`avvp.metrics.METRICS`) for every row of a table
(:func:`avvp.experiments.table_rows`) and seed; :func:`summarise` gives the mean and the sample
standard deviation (ddof = 1; 0 with a single seed) per row and metric, ×100; :func:`write_table`
writes the Markdown (``mean ± std``), the CSV (mean and std columns per metric) and a picture
(grouped bars with error bars, one panel per level).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .errors import InputError
from .experiments import TABLE_TITLES, metrics_path, table_rows, table_seeds
from .jsonfile import read_json
from .metrics import LEVELS, METRICS, STREAM_LABELS

SCALE = 100.0


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


def collect(table: str, results: str | Path, settings: Mapping[str, Any]) -> pd.DataFrame:
    """Long table of one row per table row and seed: ``row``, ``label``, ``variant``, ``seed`` and
    one column per metric (fractions)."""
    results = Path(results)
    split = settings.get("split", "test")
    records = []
    for i, row in enumerate(table_rows(table, settings)):
        for seed in table_seeds(settings):
            scores = read_overall(results / metrics_path(row.variant, seed, split))
            records.append({"row": i, "label": row.label, "variant": row.variant, "seed": seed, **scores})
    return pd.DataFrame.from_records(records)


def summarise(long: pd.DataFrame, scale: float = SCALE) -> pd.DataFrame:
    """Mean and std over seeds per row: index = row label; columns ``<metric>_mean``/``_std``
    (×``scale``), plus ``variant`` and ``n_seeds``."""
    out = []
    for (_, label), part in long.groupby(["row", "label"], sort=True):
        rec: dict[str, Any] = {"label": label, "variant": part["variant"].iloc[0], "n_seeds": len(part)}
        for m in METRICS:
            values = part[m].to_numpy(dtype=np.float64) * scale
            rec[f"{m}_mean"] = float(np.mean(values))
            rec[f"{m}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        out.append(rec)
    return pd.DataFrame.from_records(out).set_index("label")


def _cell(mean: float, std: float, decimals: int) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def to_markdown(summary: pd.DataFrame, title: str, decimals: int = 1) -> str:
    """A pipe table: one row per variant, a column per level and stream, cells ``mean ± std``."""
    seeds = sorted(set(summary["n_seeds"]))
    head = ["variant"] + [f"{level[:3].capitalize()}. {STREAM_LABELS[m.split('_', 1)[1]]}"
                          for level in LEVELS for m in METRICS if m.startswith(level)]
    lines = [f"**{title}**", "",
             f"F1 (%), mean ± std over {'/'.join(map(str, seeds))} seed(s); Seg. = segment level, "
             "Eve. = event level.", "",
             "| " + " | ".join(head) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
    for label, row in summary.iterrows():
        cells = [_cell(row[f"{m}_mean"], row[f"{m}_std"], decimals) for m in METRICS]
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
    from .atomic import save_figure, write_csv, write_text

    _, summary = build(table, results, settings)
    title = f"{table}: {TABLE_TITLES.get(table, table)}"
    write_text(md, to_markdown(summary, title, decimals))
    write_csv(csv, summary.reset_index().round(4))
    save_figure(png, plot(summary, title))
    return summary
