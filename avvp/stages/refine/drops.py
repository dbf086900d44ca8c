"""The record of a dynamic method's drops: which video, class and modality, in which epoch.

A dynamic method (JoMoLD) drops labels batch by batch during training. :class:`DropRecorder`
keeps every drop as (epoch, training row, class, modality); training writes them to
``drops.parquet`` beside the model (one row per drop: ``epoch``, ``video_id``, ``row``,
``class``, ``class_index``, ``modality``) with the per-epoch schedule in its metadata
(``epochs``: epoch, mean ratios, whether the method could drop). Each training video is seen once
per epoch, so a label is dropped at most once per epoch and modality; :func:`epoch_tables` turns
each epoch's drops into a refined-labels table, so the quality report of the static methods
applies (:func:`avvp.stages.refine.quality.epoch_quality`), and :func:`drop_counts` says how often each
label was dropped over the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from avvp.infra import parquet_reader as parquet
from avvp.infra.errors import InputError
from avvp.core.refined_labels import MODALITIES, label_table

DROP_COLUMNS = ("epoch", "video_id", "row", "class", "class_index", "modality")


class DropRecorder:
    """Collects drops as an (K, 4) int64 array: epoch, row, class index, modality (0 audio, 1 visual)."""

    def __init__(self) -> None:
        self._parts: list[np.ndarray] = []
        self.epochs: list[dict[str, Any]] = []

    def add(self, epoch: int, rows: torch.Tensor | np.ndarray, drop_a: torch.Tensor | np.ndarray,
            drop_v: torch.Tensor | np.ndarray) -> None:
        """Record the drops of one batch: ``rows`` (B,) training rows, ``drop_*`` (B, C) bool."""
        rows = np.asarray(rows.cpu() if isinstance(rows, torch.Tensor) else rows, dtype=np.int64)
        for modality, mask in enumerate((drop_a, drop_v)):
            mask = np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask, dtype=bool)
            b, c = np.nonzero(mask)
            if b.size:
                self._parts.append(np.stack([np.full(b.size, epoch), rows[b], c,
                                             np.full(b.size, modality)], axis=1).astype(np.int64))

    def end_epoch(self, record: dict[str, Any]) -> None:
        """Note what the method did in an epoch (``epoch``, ``active``, mean ratios, ...)."""
        self.epochs.append(dict(record))

    def array(self) -> np.ndarray:
        """All drops so far, (K, 4) int64."""
        return np.concatenate(self._parts) if self._parts else np.zeros((0, 4), dtype=np.int64)

    def state(self) -> dict[str, Any]:
        """For the training checkpoint (``torch.load(weights_only=True)`` accepts it)."""
        return {"drops": torch.from_numpy(self.array()), "epochs": [dict(e) for e in self.epochs]}

    def load_state(self, state: dict[str, Any]) -> None:
        array = state["drops"].numpy().astype(np.int64)
        self._parts = [array] if len(array) else []
        self.epochs = [dict(e) for e in state["epochs"]]

    def frame(self, video_ids: Sequence[str], classes: Sequence[str]) -> pd.DataFrame:
        """The drops as a table (:data:`DROP_COLUMNS`), with the epoch records in ``attrs``."""
        a = self.array()
        frame = pd.DataFrame({
            "epoch": a[:, 0], "video_id": np.asarray(list(video_ids), dtype=object)[a[:, 1]].astype(str),
            "row": a[:, 1], "class": np.asarray(list(classes), dtype=object)[a[:, 2]].astype(str),
            "class_index": a[:, 2], "modality": np.asarray(MODALITIES, dtype=object)[a[:, 3]].astype(str)})
        frame.attrs = {"epochs": [dict(e) for e in self.epochs], "classes": list(classes)}
        return frame

    def write(self, path: str | Path, video_ids: Sequence[str], classes: Sequence[str],
              meta: dict[str, Any] | None = None) -> None:
        """Write ``drops.parquet`` atomically."""
        from avvp.infra.atomic import write_parquet

        frame = self.frame(video_ids, classes)
        frame.attrs.update(dict(meta or {}))
        write_parquet(path, frame)


def read_drops(path: str | Path) -> pd.DataFrame:
    """Read ``drops.parquet``; errors name the file."""
    frame = parquet.read_table(path, DROP_COLUMNS, "drops table (written by avvp train with dynamic denoising)")
    if "epochs" not in frame.attrs:
        raise InputError(path, "no per-epoch records in the metadata (not written by avvp train?)")
    bad = ~frame["modality"].isin(MODALITIES)
    if bad.any():
        raise InputError(path, f"unknown modality {frame.loc[bad, 'modality'].iloc[0]!r}")
    return frame


def epoch_tables(drops: pd.DataFrame, video_ids: Sequence[str], classes: Sequence[str],
                 labels: np.ndarray, epochs: Sequence[int]) -> dict[int, pd.DataFrame]:
    """One refined-labels table per epoch: the labels dropped in that epoch set to 0."""
    row = {v: i for i, v in enumerate(video_ids)}
    col = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(drops["video_id"]) - set(row))
    if unknown:
        raise InputError(None, f"{len(unknown)} dropped video(s) are not training videos, e.g. {unknown[0]!r}")
    out = {}
    shape = np.asarray(labels).shape
    for epoch in epochs:
        part = drops[drops["epoch"] == epoch]
        masks = []
        for modality in MODALITIES:
            mask = np.zeros(shape, dtype=bool)
            sel = part[part["modality"] == modality]
            mask[sel["video_id"].map(row).to_numpy(np.int64), sel["class"].map(col).to_numpy(np.int64)] = True
            masks.append(mask)
        out[int(epoch)] = label_table(video_ids, classes, labels, masks[0], masks[1])
    return out


def drop_counts(drops: pd.DataFrame) -> pd.DataFrame:
    """How often each (video, class, modality) was dropped over the run: column ``times``."""
    return (drops.groupby(["video_id", "class", "modality"], sort=True).size()
            .rename("times").reset_index())
