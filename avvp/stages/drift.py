"""Feature drift: features avvp extracted against a release's features of the same videos.

Re-downloaded videos are not byte-identical to the ones a release was computed from (YouTube
re-encodes, trims, replaces streams), so features drift. For every role both sides hold and every
video both stores hold, with a = ours and b = the release's (T, D) arrays, flattened:

* relative error ``||a - b|| / ||b||`` (0: identical; NaN when b is all zero);
* cosine similarity ``<a, b> / (||a|| ||b||)`` (1: same direction).

:func:`write_report` writes the per-video table (Parquet), a per-role summary (Markdown) and a
picture (a box plot per role of each measure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from avvp.infra.atomic import save_figure, write_parquet, write_text
from avvp.infra.errors import InputError
from avvp.core.feature_store import read_ids, read_store
from avvp.core.table_layout import to_markdown

COLUMNS = ("role", "video_id", "relative_error", "cosine")


def compare_arrays(ours: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per video (axis 0), the relative error and the cosine similarity of (N, T, D) arrays."""
    a = np.asarray(ours, np.float64).reshape(len(ours), -1)
    b = np.asarray(theirs, np.float64).reshape(len(theirs), -1)
    if a.shape != b.shape:
        raise ValueError(f"arrays of shapes {np.shape(ours)} and {np.shape(theirs)} cannot be compared")
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(nb > 0, np.linalg.norm(a - b, axis=1) / nb, np.nan)
        cos = np.where((na > 0) & (nb > 0), (a * b).sum(1) / (na * nb), np.nan)
    return rel, cos


def compare_stores(ours: str | Path, theirs: str | Path, role: str) -> pd.DataFrame:
    """The drift of every video both stores hold (in our store's order)."""
    their_ids = set(read_ids(theirs))
    common = [v for v in read_ids(ours) if v in their_ids]
    if not common:
        raise InputError(theirs, f"shares no video with {ours}")
    _, a, _ = read_store(ours, common)
    _, b, _ = read_store(theirs, common)
    if a.shape[1:] != b.shape[1:]:
        raise InputError(theirs, f"{role} features of shape {b.shape[1:]} per video, ours {a.shape[1:]} "
                                 f"({ours})")
    rel, cos = compare_arrays(a, b)
    return pd.DataFrame({"role": role, "video_id": common, "relative_error": rel, "cosine": cos})


def drift(ours_dir: str | Path, theirs_dir: str | Path, roles: Sequence[str]) -> pd.DataFrame:
    """Per role (``<dir>/<role>.h5`` on both sides) and video: the :data:`COLUMNS` table."""
    frames = [compare_stores(Path(ours_dir) / f"{r}.h5", Path(theirs_dir) / f"{r}.h5", r) for r in roles]
    return pd.concat(frames, ignore_index=True)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per role: videos compared, median and 95th percentile of the relative error, mean and minimum cosine."""
    grouped = table.groupby("role", sort=False)
    out = pd.DataFrame({
        "videos": grouped.size(),
        "relative error, median": grouped["relative_error"].median(),
        "relative error, 95th pct": grouped["relative_error"].quantile(0.95),
        "cosine, mean": grouped["cosine"].mean(),
        "cosine, min": grouped["cosine"].min(),
    })
    out.index.name = "role"
    return out


def write_report(table: pd.DataFrame, out_dir: str | Path, title: str = "Feature drift against the release"
                 ) -> dict[str, Path]:
    """``drift.parquet`` (per video), ``drift.md`` (per role) and ``drift.png`` (box plots) in ``out_dir``."""
    out = Path(out_dir)
    paths = {"table": out / "drift.parquet", "markdown": out / "drift.md", "picture": out / "drift.png"}
    write_parquet(paths["table"], table)
    write_text(paths["markdown"], to_markdown(summary(table), decimals=4, title=title))
    from matplotlib.figure import Figure

    roles = list(dict.fromkeys(table["role"]))
    fig = Figure(figsize=(4 + 1.2 * len(roles), 3.6))
    for ax, (col, label) in zip(fig.subplots(1, 2), (("relative_error", "relative error ||a-b|| / ||b||"),
                                                     ("cosine", "cosine similarity"))):
        data = [table.loc[table["role"] == r, col].dropna().to_numpy() for r in roles]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(roles) + 1), roles, rotation=20)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(paths["picture"], fig)
    return paths
