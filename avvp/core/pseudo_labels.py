"""The segment-level pseudo-label store: one Parquet file per modality.

A file holds one row per (video, segment): ``video_id`` (the full LLP file name), ``segment``
(0..T-1) and one uint8 column (0 or 1) per class, in the data set's class order. Every video of the
file has exactly T rows, so a video without any positive label is still present. The file's
metadata (``avvp.pseudo_labels``, JSON) records the modality, the classes, T and free-form
``source`` details (teacher, thresholds, release folder, ...).

This is the interface between the producers (the CLIP/CLAP teachers, VALOR's released
``segment_pseudo_labels`` folders, the demo's stand-in teachers) and the consumers (training
with pseudo labels, scoring the labels as predictions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from avvp.infra.errors import InputError

MODALITIES = ("audio", "visual")
META_KEY = b"avvp.pseudo_labels"


@dataclass
class PseudoLabels:
    """Pseudo labels of one modality: ``labels[i, t, c]`` for ``video_ids[i]``, uint8 in {0, 1}."""

    modality: str
    video_ids: list[str]
    classes: list[str]
    labels: np.ndarray  # (N, T, C) uint8
    source: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        labels = np.asarray(self.labels)
        if labels.ndim != 3 or labels.shape[0] != len(self.video_ids) or labels.shape[2] != len(self.classes):
            raise ValueError(f"labels of shape {labels.shape} do not match {len(self.video_ids)} videos "
                             f"and {len(self.classes)} classes (expected (N, T, C))")
        bad = ~np.isin(labels, (0, 1))
        if bad.any():
            raise ValueError(f"labels hold values outside {{0, 1}}: {np.unique(labels[bad])[:5].tolist()}")
        self.labels = labels.astype(np.uint8)

    def select(self, video_ids: Sequence[str], path: str | Path | None = None) -> np.ndarray:
        """The (len(video_ids), T, C) labels of these videos, in this order."""
        index = {v: i for i, v in enumerate(self.video_ids)}
        missing = [v for v in video_ids if v not in index]
        if missing:
            raise InputError(path, f"no {self.modality} pseudo labels for {len(missing)} video(s), "
                                   f"e.g. {', '.join(missing[:3])}")
        return self.labels[[index[v] for v in video_ids]]


def write_pseudo_labels(target: str | Path, labels: PseudoLabels) -> None:
    """Write one modality's pseudo labels to ``target`` (Parquet, atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from avvp.infra.atomic import atomic_path

    n, t, c = labels.labels.shape
    columns = {"video_id": pa.array(np.repeat(np.asarray(labels.video_ids, dtype=object), t), pa.string()),
               "segment": pa.array(np.tile(np.arange(t, dtype=np.int16), n))}
    flat = labels.labels.reshape(n * t, c)
    for j, name in enumerate(labels.classes):
        columns[name] = pa.array(flat[:, j], pa.uint8())
    meta = {"modality": labels.modality, "classes": list(labels.classes), "n_segments": t,
            "source": labels.source}
    table = pa.table(columns).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp)


def read_pseudo_labels(path: str | Path, modality: str | None = None,
                       classes: Iterable[str] | None = None) -> PseudoLabels:
    """Read a pseudo-label file; errors name the file and the problem.

    Args:
        modality: when given, the file must hold this modality.
        classes: when given, the file's classes must be these, in this order.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise InputError(path, "pseudo-label file not found")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(path, f"not a Parquet file: {exc}") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(path, "not a pseudo-label file (no avvp.pseudo_labels metadata)")
    meta = json.loads(raw)
    if modality is not None and meta["modality"] != modality:
        raise InputError(path, f"holds {meta['modality']} pseudo labels, not {modality}")
    names = list(meta["classes"])
    if classes is not None and list(classes) != names:
        raise InputError(path, f"classes {names[:3]}... differ from the data set's {list(classes)[:3]}...")
    missing = [c for c in ("video_id", "segment", *names) if c not in table.column_names]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing[:5])}")
    t = int(meta["n_segments"])
    ids = table.column("video_id").to_pylist()
    if len(ids) % t:
        raise InputError(path, f"{len(ids)} rows is not a multiple of {t} segments")
    n = len(ids) // t
    video_ids = ids[::t]
    segments = np.asarray(table.column("segment").to_numpy()).reshape(n, t)
    if any(ids[i * t:(i + 1) * t] != [v] * t for i, v in enumerate(video_ids)) or \
            (segments != np.arange(t)).any():
        raise InputError(path, f"rows are not {t} consecutive segments per video")
    flat = np.stack([np.asarray(table.column(c).to_numpy()) for c in names], axis=1) if names else \
        np.zeros((n * t, 0), np.uint8)
    try:
        return PseudoLabels(meta["modality"], video_ids, names, flat.reshape(n, t, len(names)),
                            meta.get("source", {}))
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
