"""The refined-labels table, shared by every label-denoising method.

One row per positive weak (video, class) pair of the training set, with the modality labels a
method leaves standing: ``audio`` / ``visual`` (int8, 0 = dropped) and ``global`` (int8, the
global target; 0 only where a method, such as MA with the official aliasing, also drops it). A
method may add its own columns after these (MA: its pass probabilities and thresholds).

* static methods (MA's exchange estimation) write one such table; training reads it
  (:func:`modality_targets`, through :func:`avvp.core.data.build_targets`);
* dynamic methods (JoMoLD) drop labels per batch; their drops of one epoch form one such table
  (:func:`avvp.stages.refine.drops.epoch_tables`), so the same quality report applies
  (:mod:`avvp.stages.refine.quality`).

This module imports neither the data loading nor a model, so :mod:`avvp.core.data` can import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from avvp.infra import parquet_reader as parquet
from avvp.infra.errors import InputError

#: Columns of the refined-labels table that training needs.
LABEL_COLUMNS = ("video_id", "class", "audio", "visual")
#: Columns every method writes, in this order (its own columns follow).
BASE_COLUMNS = ("video_id", "row", "class", "class_index", "audio", "visual", "global")
MODALITIES = ("audio", "visual")


def label_table(video_ids: Sequence[str], classes: Sequence[str], labels: np.ndarray,
                drop_a: np.ndarray, drop_v: np.ndarray, drop_global: np.ndarray | None = None,
                extra: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """The table of :data:`BASE_COLUMNS` for the positive pairs of ``labels``.

    Args:
        video_ids: the training videos, in row order.
        classes: the class names, in column order.
        labels: (N, C) weak labels.
        drop_a, drop_v: (N, C) bool, the dropped audio / visual labels.
        drop_global: (N, C) bool, global targets set to 0 (None: none).
        extra: more columns, each an (N, C) array (taken at the positive pairs) or a per-row
            array of the table's length, appended in the given order.
    """
    rows, cols = np.nonzero(np.asarray(labels) > 0)
    ids = np.asarray(list(video_ids), dtype=object)
    glob = np.zeros_like(drop_a) if drop_global is None else drop_global
    table = pd.DataFrame({
        "video_id": ids[rows].astype(str),
        "row": rows.astype(np.int64),
        "class": np.asarray(list(classes), dtype=object)[cols].astype(str),
        "class_index": cols.astype(np.int64),
        "audio": (~drop_a[rows, cols]).astype(np.int8),
        "visual": (~drop_v[rows, cols]).astype(np.int8),
        "global": (~glob[rows, cols]).astype(np.int8),
    })
    for name, values in (extra or {}).items():
        values = np.asarray(values)
        table[name] = values[rows, cols] if values.ndim == 2 else values
    return table


@dataclass
class LabelResult:
    """A refined-labels table with what made it.

    Attributes:
        table: the table (:func:`label_table` columns first).
        classes: the class names.
        settings: the method's settings.
        attrs: more metadata written with the table (JSON-like).
    """

    table: pd.DataFrame
    classes: list[str]
    settings: dict
    attrs: dict = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts: labels, dropped audio / visual labels, labels dropped in both."""
        t = self.table
        return {
            "labels": int(len(t)),
            "dropped_audio": int((t["audio"] == 0).sum()),
            "dropped_visual": int((t["visual"] == 0).sum()),
            "dropped_both": int(((t["audio"] == 0) & (t["visual"] == 0)).sum()),
        }

    def metadata(self) -> dict[str, Any]:
        """What :func:`write_table` stores in the Parquet metadata."""
        return {"settings": dict(self.settings), "classes": list(self.classes), **self.attrs,
                "summary": self.summary()}


def write_table(path: str | Path, result: LabelResult, meta: Mapping[str, Any] | None = None) -> None:
    """Write the refined-labels Parquet table atomically (settings and summary in its metadata)."""
    from avvp.infra.atomic import write_parquet

    table = result.table.copy()
    table.attrs = {**result.metadata(), **dict(meta or {})}
    write_parquet(path, table)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a refined-labels table; checks the columns training needs and their values."""
    path = Path(path)
    table = parquet.read_table(path, LABEL_COLUMNS, "refined-labels file")
    for col in MODALITIES + (("global",) if "global" in table.columns else ()):
        bad = ~table[col].isin([0, 1])
        if bad.any():
            raise InputError(path, f"column {col!r} must hold 0/1, found {table.loc[bad, col].iloc[0]!r}")
    if table.duplicated(["video_id", "class"]).any():
        row = table[table.duplicated(["video_id", "class"])].iloc[0]
        raise InputError(path, f"({row['video_id']}, {row['class']}) is listed twice")
    return table


def modality_targets(table: pd.DataFrame, video_ids: Sequence[str], classes: Sequence[str],
                     source: str | Path | None = None) -> dict[str, np.ndarray]:
    """Per-modality label matrices of a refined table, for training.

    Args:
        table: a refined-labels table (:func:`read_table`).
        video_ids: the training videos, in row order.
        classes: the class names, in column order.
        source: the table's file, for error messages.

    Returns:
        ``weak`` (N, C) float32 (1 where the table lists the pair), ``audio`` and ``visual`` (N, C)
        float32 modality labels (0 where dropped) and ``global`` (N, C) float32 global targets
        (``weak`` unless the table carries an aliased ``global`` column).
    """
    row = {v: i for i, v in enumerate(video_ids)}
    col = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(table["video_id"]) - set(row))
    if unknown:
        raise InputError(source, f"{len(unknown)} video(s) not in the training set, e.g. {unknown[0]!r}")
    bad = sorted(set(table["class"]) - set(col))
    if bad:
        raise InputError(source, f"unknown class name {bad[0]!r}")
    r = table["video_id"].map(row).to_numpy(np.int64)
    c = table["class"].map(col).to_numpy(np.int64)
    shape = (len(row), len(col))
    out = {name: np.zeros(shape, dtype=np.float32) for name in ("weak", "audio", "visual", "global")}
    out["weak"][r, c] = 1.0
    out["audio"][r, c] = table["audio"].to_numpy(np.float32)
    out["visual"][r, c] = table["visual"].to_numpy(np.float32)
    glob = table["global"] if "global" in table.columns else pd.Series(np.ones(len(table)))
    out["global"][r, c] = glob.to_numpy(np.float32)
    return out


def drop_matrices(table: pd.DataFrame, video_ids: Sequence[str], classes: Sequence[str],
                  source: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(drop_audio, drop_visual), (N, C) bool: the pairs a table lists with a modality label of 0."""
    m = modality_targets(table, video_ids, classes, source)
    listed = m["weak"] > 0
    return listed & (m["audio"] == 0), listed & (m["visual"] == 0)
