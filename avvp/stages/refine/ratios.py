"""Noise ratios: per class and modality, the share of the weak labels that are absent there.

JoMoLD's dynamic denoising (:mod:`avvp.stages.refine.jomold`) drops, in each batch and class, a share ρ
of the positive labels per modality; ρ comes from a noise-ratio table. Its sources:

* ``estimator``: JoMoLD's stage 2, from a noise-estimator model
  (:func:`avvp.stages.refine.jomold.estimate_ratios`);
* ``exchange``: the share of labels MA's exchange estimation dropped (a refined-labels table,
  :func:`ratios_from_table`), an option beyond JoMoLD;
* ``truth``: the true share, where the true per-modality training labels are known (the demo;
  :func:`true_ratios`), used to score the others and as an oracle;
* ``npz``: an official ``noise_ratios.npz`` (:mod:`avvp.stages.refine.official`).

The table (Parquet, one row per class) has the columns :data:`RATIO_COLUMNS`: ``labels`` = n_c,
the training videos that carry class c; ``noisy_audio`` / ``noisy_visual`` = the labels counted
as absent (−1 where unknown, as for an npz file); ``audio`` / ``visual`` = the ratios
(count / n_c; 0 for a class without labels, where the official code would divide by zero).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from avvp.infra import parquet_reader as parquet
from avvp.infra.errors import InputError
from avvp.stages.refine.official import check_ratio_array, read_noise_ratios_npz, write_noise_ratios_npz
from avvp.core.refined_labels import drop_matrices

RATIO_COLUMNS = ("class", "class_index", "labels", "noisy_audio", "noisy_visual", "audio", "visual")
SOURCES = ("estimator", "exchange", "truth", "npz")


@dataclass
class NoiseRatios:
    """Per-class noise ratios of both modalities.

    Attributes:
        classes: class names, in order.
        audio, visual: (C,) float64 ratios in [0, 1].
        labels: (C,) int64 n_c (−1: unknown).
        noisy_audio, noisy_visual: (C,) int64 counts behind the ratios (−1: unknown).
        source: one of :data:`SOURCES`.
        attrs: more metadata (settings, class means, ...), JSON-like.
    """

    classes: list[str]
    audio: np.ndarray
    visual: np.ndarray
    labels: np.ndarray
    noisy_audio: np.ndarray
    noisy_visual: np.ndarray
    source: str
    attrs: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """The Parquet table (:data:`RATIO_COLUMNS`)."""
        return pd.DataFrame({
            "class": list(self.classes), "class_index": np.arange(len(self.classes), dtype=np.int64),
            "labels": self.labels.astype(np.int64), "noisy_audio": self.noisy_audio.astype(np.int64),
            "noisy_visual": self.noisy_visual.astype(np.int64),
            "audio": self.audio.astype(np.float64), "visual": self.visual.astype(np.float64)})

    def fingerprint(self) -> bytes:
        """Identity of the ratios (class names and values), e.g. for a training run's resume check."""
        return "\n".join(self.classes).encode() + self.audio.tobytes() + self.visual.tobytes()


def ratios_from_masks(noisy_a: np.ndarray, noisy_v: np.ndarray, labels: np.ndarray,
                      classes: Sequence[str], source: str, attrs: dict | None = None) -> NoiseRatios:
    """Ratios from (N, C) masks of the labels counted absent: ``count_c / n_c`` (n_c: positives).

    Only positives of ``labels`` count; a class without positives gets ratio 0.
    """
    pos = np.asarray(labels) > 0
    n = pos.sum(axis=0).astype(np.int64)
    count_a = (np.asarray(noisy_a, dtype=bool) & pos).sum(axis=0).astype(np.int64)
    count_v = (np.asarray(noisy_v, dtype=bool) & pos).sum(axis=0).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r_a = np.where(n > 0, count_a / np.maximum(n, 1), 0.0)
        r_v = np.where(n > 0, count_v / np.maximum(n, 1), 0.0)
    return NoiseRatios(list(classes), r_a.astype(np.float64), r_v.astype(np.float64), n, count_a, count_v,
                       source, dict(attrs or {}))


def ratios_from_table(table: pd.DataFrame, video_ids: Sequence[str], classes: Sequence[str],
                      labels: np.ndarray, source: str | Path | None = None) -> NoiseRatios:
    """The share of labels a refined-labels table (MA's exchange estimation) drops, per class."""
    drop_a, drop_v = drop_matrices(table, video_ids, classes, source)
    return ratios_from_masks(drop_a, drop_v, labels, classes, "exchange",
                             {"labels_table": None if source is None else str(source)})


def true_ratios(labels: np.ndarray, video_ids: Sequence[str], classes: Sequence[str],
                truth_audio: pd.DataFrame, truth_visual: pd.DataFrame) -> NoiseRatios:
    """The true share of weak labels absent from each modality (the demo's training truth)."""
    from avvp.stages.refine.quality import absent_masks

    absent_a, absent_v = absent_masks(labels, video_ids, classes, truth_audio, truth_visual)
    return ratios_from_masks(absent_a, absent_v, labels, classes, "truth")


def write_ratios(path: str | Path, ratios: NoiseRatios, meta: dict | None = None) -> None:
    """Write the noise-ratio table as Parquet, atomically (source and attrs in its metadata)."""
    from avvp.infra.atomic import write_parquet

    frame = ratios.frame()
    frame.attrs = {"source": ratios.source, **ratios.attrs, **dict(meta or {})}
    write_parquet(path, frame)


def write_npz(path: str | Path, ratios: NoiseRatios) -> None:
    """Export the ratios as the official ``noise_ratios.npz``."""
    write_noise_ratios_npz(path, ratios.audio, ratios.visual)


def read_ratios(path: str | Path, classes: Sequence[str]) -> NoiseRatios:
    """Read a noise-ratio table (``.parquet``) or an official ``noise_ratios.npz`` (``.npz``).

    Args:
        path: the file.
        classes: the data set's classes; the file must hold exactly these, in this order.

    Raises:
        InputError: wrong keys or columns, shapes, class count or names, or ratios outside
            [0, 1]; the message names which.
    """
    path = Path(path)
    classes = list(classes)
    if path.suffix == ".npz":
        audio, visual = read_noise_ratios_npz(path, len(classes))
        unknown = np.full(len(classes), -1, dtype=np.int64)
        return NoiseRatios(classes, audio, visual, unknown, unknown.copy(), unknown.copy(), "npz",
                           {"npz": str(path)})
    frame = parquet.read_table(path, RATIO_COLUMNS, "noise-ratio table")
    frame = frame.sort_values("class_index")
    names = frame["class"].astype(str).tolist()
    if len(names) != len(classes):
        raise InputError(path, f"ratios are given for {len(names)} classes, the data set has {len(classes)}")
    if names != classes:
        k = next(i for i, (a, b) in enumerate(zip(names, classes)) if a != b)
        raise InputError(path, f"class {k} is {names[k]!r}, the data set's is {classes[k]!r}")
    audio = check_ratio_array(frame["audio"].to_numpy(), len(classes), path, "audio")
    visual = check_ratio_array(frame["visual"].to_numpy(), len(classes), path, "visual")
    attrs = dict(frame.attrs)
    source = str(attrs.pop("source", "estimator"))
    return NoiseRatios(classes, audio, visual, frame["labels"].to_numpy(np.int64),
                       frame["noisy_audio"].to_numpy(np.int64), frame["noisy_visual"].to_numpy(np.int64),
                       source, attrs)
