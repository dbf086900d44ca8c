"""Pseudo labels in VALOR's ``.npy`` folder layout: export, and a tolerant import.

VALOR keeps one teacher's labels as ``<folder>/segment_pseudo_labels/<youtube_id>.npy``, one
(T, C) = (10, 25) int64 array of 0 and 1 per video (row = segment, column = class), named by the
11-character YouTube id. :func:`export_npy` writes that layout (each file atomically);
:func:`import_npy` reads it, going on past broken files: each becomes a row of the failure table
(:data:`FAILURE_COLUMNS`) with its path and reason.

=========== =================================================================
stage       what
=========== =================================================================
missing     no ``<id>.npy`` for a video of the annotations
unreadable  not a readable ``.npy`` array (truncated, not NumPy, a pickle, ...)
dtype       not int64
shape       not (T, C)
values      values other than 0 and 1
=========== =================================================================
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from avvp.core.annotations import youtube_id
from avvp.infra.atomic import atomic_path
from avvp.infra.errors import InputError
from avvp.stages.import_features import FileProblem, load_npy
from avvp.infra.paths import child
from avvp.core.pseudo_labels import PseudoLabels

log = logging.getLogger(__name__)

LABELS_DIR = "segment_pseudo_labels"
FAILURE_COLUMNS = ("video_id", "stage", "path", "reason")


def labels_folder(folder: str | Path) -> Path:
    """``folder/segment_pseudo_labels`` when it exists, else ``folder`` itself when it holds .npy files."""
    folder = Path(folder)
    if (folder / LABELS_DIR).is_dir():
        return folder / LABELS_DIR
    if folder.is_dir() and (folder.name == LABELS_DIR or any(p.suffix == ".npy" for p in folder.iterdir())):
        return folder
    raise InputError(folder, f"no {LABELS_DIR}/ folder of pseudo labels here")


def export_npy(labels: PseudoLabels, folder: str | Path) -> Path:
    """Write ``labels`` as ``<folder>/segment_pseudo_labels/<youtube_id>.npy`` (T, C) int64.

    Returns:
        The ``segment_pseudo_labels`` folder.
    """
    out = Path(folder) / LABELS_DIR
    out.mkdir(parents=True, exist_ok=True)
    for vid, array in zip(labels.video_ids, labels.labels):
        with atomic_path(child(out, youtube_id(vid), ".npy", youtube=True)) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, array.astype(np.int64))
    return out


def read_label_file(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """One VALOR pseudo-label file, checked.

    Raises:
        FileProblem: unreadable, not int64, not of ``shape``, or values outside {0, 1}; the reason
            names the file.
    """
    expected = f"expected int64 {shape} of 0 and 1"
    array = load_npy(path, expected)
    if array.dtype != np.int64:
        raise FileProblem("dtype", f"{path}: dtype {array.dtype}, {expected}")
    if array.shape != shape:
        raise FileProblem("shape", f"{path}: shape {array.shape}, {expected}")
    bad = ~np.isin(array, (0, 1))
    if bad.any():
        raise FileProblem("values", f"{path}: values outside {{0, 1}} ({np.unique(array[bad])[:5].tolist()})")
    return array


def import_npy(folder: str | Path, modality: str, video_ids: Sequence[str], classes: Sequence[str],
               n_segments: int = 10, source: dict | None = None) -> tuple[PseudoLabels, pd.DataFrame]:
    """Read the pseudo labels of ``video_ids`` from VALOR's layout.

    Args:
        folder: the teacher folder (holding ``segment_pseudo_labels/``) or that folder itself.
        modality: "audio" or "visual".
        video_ids: the videos wanted (full LLP names; files are named by their YouTube id).
        classes: the data set's classes (the files' column order).
        n_segments: T.
        source: extra details recorded in the labels' metadata.

    Returns:
        (the labels of the videos whose file is good, the failure table). Missing videos are
        counted in a warning.

    Raises:
        InputError: no labels folder, or no file could be read (the commonest reason is given).
    """
    where = labels_folder(folder)
    with os.scandir(where) as entries:
        listed = {e.name for e in entries if not e.is_dir()}
    shape = (n_segments, len(classes))
    good, arrays, failures = [], [], []
    for vid in video_ids:
        path = where / f"{youtube_id(vid)}.npy"
        if path.name not in listed:
            failures.append((vid, "missing", str(path), f"{path} not found"))
            continue
        try:
            arrays.append(read_label_file(path, shape))
            good.append(vid)
        except FileProblem as exc:
            failures.append((vid, exc.stage, str(path), exc.reason))
    table = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)).astype(str)
    if not good and len(video_ids):
        stage, count = Counter(table["stage"]).most_common(1)[0]
        example = table.loc[table["stage"] == stage, "reason"].iloc[0]
        raise InputError(where, f"no {modality} pseudo-label file could be read; {count} failed with "
                                f"'{stage}', e.g. {example}")
    _warn(table, len(video_ids), modality, where)
    labels = np.stack(arrays) if arrays else np.zeros((0,) + shape, np.uint8)
    info = {"release": str(where), **(source or {})}
    return PseudoLabels(modality, good, list(classes), labels.astype(np.uint8), info), table


def _warn(table: pd.DataFrame, total: int, modality: str, where: Path) -> None:
    if not len(table):
        return
    counts = Counter(table["stage"])
    missing = counts.pop("missing", 0)
    if missing:
        log.warning("%d of %d videos have no %s pseudo-label file in %s", missing, total, modality, where)
    if counts:
        log.warning("%d %s pseudo-label files are broken (%s), e.g. %s", sum(counts.values()), modality,
                    ", ".join(f"{n} {s}" for s, n in counts.most_common()),
                    table.loc[table["stage"] != "missing", "reason"].iloc[0])
