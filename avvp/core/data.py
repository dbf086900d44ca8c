"""In-memory training and evaluation data: features from the feature store, labels and truth.

All features of a split are held as three float32 tensors (N, T, D). Frame features are pooled
from k·T rows (8 frames per segment, official) to T rows while they are read: the model's first
operation on them is linear, so pooling first is exact, and all LLP features fit in ~1.3 GB.

Labels come from the manifest (``avvp manifest``): weak labels from its ``labels`` column, the
dense val/test truth from the ``dense_audio.parquet`` / ``dense_visual.parquet`` tables beside it,
and the class order from the annotation folder's ``classes.txt`` (the 25 LLP classes without one).
Refined modality-aware labels (``avvp refine``) override the per-modality training targets.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from avvp.infra import parquet_reader as parquet
from avvp.core.annotations import EVENT_COLUMNS, Annotations
from avvp.core.classes import CLASSES_FILE, LLP_CLASSES, load_classes
from avvp.infra.errors import InputError
from avvp.core.feature_roles import FEATURE_ROLES as ROLES
from avvp.core import feature_roles
from avvp.core.losses import modality_targets
from avvp.core.refined_labels import modality_targets as table_targets
from avvp.core.refined_labels import read_table as read_label_table
from avvp.infra.malloc import release_free_memory
from avvp.core.pooled_store import SOURCE_ATTR, frame_store, pool_segments
from avvp.infra.provenance import H5_ATTR

log = logging.getLogger(__name__)

#: Roles whose rows are a token map, not segments (CLAP's 2 x 32 grid): kept as stored, and the
#: segment count comes from the clip store.
TOKEN_MAP_ROLES = ("clap_audio",)
MANIFEST_COLUMNS = ("video_id", "split", "labels")
DENSE_TABLES = {"audio": "dense_audio.parquet", "visual": "dense_visual.parquet"}


# ------------------------------------------------------------------------------- features

@dataclass
class Features:
    """Features of N videos, one row per segment.

    Attributes:
        video_ids: the videos, in row order.
        audio: (N, T, Da) float32.
        frame: (N, T, Df) float32 (pooled to one row per segment).
        clip: (N, T, Dc) float32.
        attrs: the stores' attributes per role (extractor, weights, ...).
    """

    video_ids: list[str]
    audio: torch.Tensor
    frame: torch.Tensor
    clip: torch.Tensor
    attrs: dict

    @property
    def n_segments(self) -> int:
        return int(self.clip.shape[1])

    def dims(self) -> dict[str, int]:
        """Feature sizes as :class:`avvp.core.model.HANConfig` keyword arguments."""
        return {"audio_dim": int(self.audio.shape[2]), "frame_dim": int(self.frame.shape[2]),
                "clip_dim": int(self.clip.shape[2])}

    def __len__(self) -> int:
        return len(self.video_ids)


def store_path(features_dir: str | Path, role: str) -> Path:
    """The store of ``role`` in a features folder: ``<dir>/<role>.h5``; for frames the pooled
    store ``frame_pooled.h5`` when it is current (:func:`avvp.core.pooled_store.frame_store`)."""
    if role == "frame":
        return frame_store(features_dir)
    return feature_roles.store_file(features_dir, role)


MISSING = ("error", "skip")


def available(features_dir: str | Path, video_ids: Sequence[str], missing: str = "error",
              what: str = "videos", roles: Mapping[str, str] | None = None) -> list[str]:
    """The videos of ``video_ids`` that every store of ``features_dir`` holds, in order.

    Args:
        roles: input slot (audio, frame, clip) -> the feature role whose store it reads
            (default: the slot's own role; VALOR++ reads ``clap_audio`` and ``clip_image``).
        missing: ``error`` (an InputError naming the store and the first videos it lacks) or
            ``skip`` (leave them out with a warning that gives their number).
        what: how the videos are named in messages (e.g. "training videos").
    """
    from avvp.core.feature_store import read_ids

    if missing not in MISSING:
        raise ValueError(f"missing = {missing!r} (known: {', '.join(MISSING)})")
    keep = [str(v) for v in video_ids]
    for slot in ROLES:
        role = (roles or {}).get(slot, slot)
        path = store_path(features_dir, role)
        if not path.exists():
            raise InputError(path, f"{role} feature store not found")
        held = set(read_ids(path))
        lacking = [v for v in keep if v not in held]
        if not lacking:
            continue
        if missing == "error":
            shown = ", ".join(lacking[:10]) + (f" (+{len(lacking) - 10} more)" if len(lacking) > 10 else "")
            raise InputError(path, f"{len(lacking)} of {len(video_ids)} requested {what} have no "
                                   f"features: {shown}")
        keep = [v for v in keep if v in held]
    if len(keep) < len(video_ids):
        log.warning("%d of %d %s have no features (see features/failures/) and are left out",
                    len(video_ids) - len(keep), len(video_ids), what)
    return keep


def load_features(features_dir: str | Path, video_ids: Sequence[str], progress: bool = False,
                  missing: str = "error", what: str = "videos",
                  roles: Mapping[str, str] | None = None) -> Features:
    """Read the three stores of ``features_dir`` for ``video_ids`` (in that order).

    Each role's tensor is allocated once and filled chunk by chunk, so memory holds the result and
    one chunk. Frames with k·T rows per video are pooled to T rows chunk by chunk (or read from
    the pooled store, :mod:`avvp.core.pooled_store`), so the full (N, 80, 2048) array is never in memory.

    Args:
        missing, what: videos that a store lacks: see :func:`available`. The returned
            ``video_ids`` are those loaded.
        roles: input slot -> feature role (see :func:`available`). A token-map role
            (:data:`TOKEN_MAP_ROLES`) keeps its stored rows.

    Raises:
        InputError: a store is missing, lacks some of the videos (with ``missing="error"``), or
            has shapes that do not fit together (segments per video, dimensions), naming the file.
    """
    import h5py

    from avvp.core.feature_store import read_attrs, read_chunks, read_into

    if not video_ids:
        raise InputError(features_dir, "no videos to load")
    roles = {slot: (roles or {}).get(slot, slot) for slot in ROLES}
    video_ids = available(features_dir, video_ids, missing, what, roles)
    if not video_ids:
        raise InputError(features_dir, f"none of the {what} has features")
    out: dict[str, torch.Tensor] = {}
    attrs: dict[str, dict] = {}
    shapes = {}
    for slot, role in roles.items():
        path = store_path(features_dir, role)
        with h5py.File(path, "r") as h5:
            shapes[slot] = shape = h5["features"].shape
        if len(shape) != 3:
            raise InputError(path, f"features have shape {tuple(shape)}, expected (N, T, D)")
    n_segments = int(shapes["clip" if roles["audio"] in TOKEN_MAP_ROLES else "audio"][1])
    for slot, role in roles.items():
        path, shape = store_path(features_dir, role), shapes[slot]
        rows = int(shape[1]) if role in TOKEN_MAP_ROLES else n_segments
        if role not in TOKEN_MAP_ROLES:
            _fit_segments(int(shape[1]), n_segments, role, path)
        attrs[slot] = {k: v for k, v in read_attrs(path).items() if k not in (SOURCE_ATTR, H5_ATTR)}
        out[slot] = x = torch.empty((len(video_ids), rows, int(shape[2])), dtype=torch.float32)
        bar = tqdm(total=len(video_ids), desc=f"read {role}", unit="video", disable=not progress, leave=False)
        if int(shape[1]) == rows:               # straight into the tensor: no copy in between
            for n in read_into(path, video_ids, x.numpy()):
                bar.update(n)
        else:                                   # k rows per segment: pooled chunk by chunk
            for start, array in read_chunks(path, video_ids):
                x[start:start + len(array)] = pool_segments(torch.from_numpy(array), n_segments)
                bar.update(len(array))
        bar.close()
        _check_finite(x, video_ids, role, path)
    release_free_memory()
    return Features(video_ids, out["audio"], out["frame"], out["clip"], attrs)


def _check_finite(x: torch.Tensor, video_ids: Sequence[str], role: str, path: Path, rows: int = 256) -> None:
    """InputError naming the first video with a NaN or infinite value (checked in blocks, so the
    mask never costs more than a block)."""
    for start in range(0, len(x), rows):
        bad = ~torch.isfinite(x[start:start + rows]).reshape(min(rows, len(x) - start), -1).all(dim=1)
        if bad.any():
            vid = video_ids[start + int(torch.nonzero(bad)[0, 0])]
            raise InputError(path, f"video {vid!r} has non-finite {role} features")


def _fit_segments(rows: int, n_segments: int, role: str, path: Path) -> None:
    """Refuse a store whose rows per video do not give ``n_segments`` segments."""
    if role == "frame" and rows % n_segments == 0 and rows > 0:
        return
    if rows != n_segments:
        need = f"a multiple of {n_segments}" if role == "frame" else str(n_segments)
        raise InputError(path, f"{role} features have {rows} rows per video, expected {need} "
                               f"(the audio store has {n_segments} segments)")


def check_dims(features: Features, expected: dict[str, int], features_dir: str | Path,
               roles: Mapping[str, str] | None = None) -> None:
    """Raise InputError naming the store whose feature size differs from a model's."""
    for slot in ROLES:
        role = (roles or {}).get(slot, slot)
        have, want = features.dims()[f"{slot}_dim"], expected[f"{slot}_dim"]
        if have != want:
            raise InputError(store_path(features_dir, role),
                             f"{role} features are {have}-d but the model expects {want}-d")


# ---------------------------------------------------------------------------- annotations

def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read ``manifest.parquet`` and check the columns training needs."""
    table = parquet.read_table(path, MANIFEST_COLUMNS, "manifest")
    table["labels"] = [list(v) if v is not None else [] for v in table["labels"]]
    return table


def find_classes(manifest: str | Path, annotations: str | Path | None = None) -> list[str]:
    """The class order: ``<annotations>/classes.txt``, else ``<manifest dir>/annotations/classes.txt``,
    else the 25 LLP classes."""
    if annotations is not None:
        return load_classes(annotations)
    beside = Path(manifest).parent / "annotations"
    if (beside / CLASSES_FILE).exists():
        return load_classes(beside)
    return list(LLP_CLASSES)


def load_annotations(manifest: str | Path, annotations: str | Path | None = None,
                     dense: bool = True) -> Annotations:
    """An :class:`~avvp.core.annotations.Annotations` built from the manifest and its dense tables.

    Args:
        manifest: ``manifest.parquet`` (written by ``avvp manifest``).
        annotations: the annotation folder, read only for its ``classes.txt`` (see
            :func:`find_classes`).
        dense: read ``dense_audio.parquet`` / ``dense_visual.parquet`` beside the manifest.
    """
    manifest = Path(manifest)
    videos = read_manifest(manifest)
    classes = find_classes(manifest, annotations)
    known = set(classes)
    for vid, labels in zip(videos["video_id"], videos["labels"]):
        bad = [c for c in labels if c not in known]
        if bad:
            raise InputError(manifest, f"video {vid!r} has class {bad[0]!r}, which is not in the "
                                       f"class list ({len(classes)} classes)")
    tables = {}
    for modality, name in DENSE_TABLES.items():
        path = manifest.parent / name
        if not dense:
            tables[modality] = pd.DataFrame(columns=list(EVENT_COLUMNS))
            continue
        tables[modality] = parquet.read_table(
            path, EVENT_COLUMNS, "dense truth table (written by 'avvp manifest' beside the manifest)")
    return Annotations(manifest.parent, classes, videos, tables["audio"], tables["visual"])


def split_ids(ann: Annotations, split: str, source: str | Path | None = None) -> list[str]:
    """The video ids of ``split`` in manifest order; InputError when there are none."""
    ids = ann.split(split)["video_id"].astype(str).tolist()
    if not ids:
        raise InputError(source or ann.folder, f"the manifest has no {split!r} videos")
    return ids


# ------------------------------------------------------------------------------- targets

@dataclass
class Targets:
    """Training targets (N, C) float32 tensors: weak labels and the three loss targets; for
    training with segment-level pseudo labels (VALOR) also ``seg_audio``/``seg_visual`` (N, T, C)."""

    weak: torch.Tensor
    global_: torch.Tensor
    audio: torch.Tensor
    visual: torch.Tensor
    seg_audio: torch.Tensor | None = None
    seg_visual: torch.Tensor | None = None


def build_targets(weak: np.ndarray, video_ids: Sequence[str], classes: Sequence[str],
                  labels: str | Path | None = None, alias_global: bool = False) -> Targets:
    """The loss targets of the training videos.

    Without ``labels``: global = audio = y and visual = 0.9·y + 0.05. With a refined-labels
    table (columns video_id, class, audio, visual, optionally global; one row per positive weak
    pair; unlisted pairs keep their weak labels): audio = y·audio, visual smoothed then a hard 0
    where dropped, global = y (times the table's ``global`` column if present; with
    ``alias_global`` also zero where the audio label was dropped).
    """
    weak = np.asarray(weak, dtype=np.float32)
    audio = visual = glob = None
    if labels is not None:
        table = read_label_table(labels)
        m = table_targets(table, list(video_ids), list(classes), source=labels)
        listed = m["weak"] > 0
        extra = listed & (weak <= 0)
        if extra.any():
            r, c = np.argwhere(extra)[0]
            raise InputError(labels, f"({video_ids[r]}, {classes[c]}) is listed but is not a weak label")
        audio = np.where(listed, m["audio"], 1.0)
        visual = np.where(listed, m["visual"], 1.0)
        glob = np.where(listed, m["global"], 1.0)
        log.info("%s: %d audio and %d visual labels dropped of %d", labels,
                 int((listed & (audio == 0)).sum()), int((listed & (visual == 0)).sum()), int(listed.sum()))
    g, a, v = modality_targets(weak, audio, visual, alias_global)
    if glob is not None:
        g = g * glob
    return Targets(_tensor(weak), _tensor(g), _tensor(a), _tensor(v))


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


@dataclass
class SplitData:
    """One split in memory: features, weak labels, and (val/test) dense truth.

    Attributes:
        features: the videos' features.
        weak: (N, C) weak labels.
        gt_audio, gt_visual: (N, C, T) uint8 dense truth, or None.
    """

    features: Features
    weak: np.ndarray
    gt_audio: np.ndarray | None = None
    gt_visual: np.ndarray | None = None


def load_split(features_dir: str | Path, ann: Annotations, split: str, truth: bool,
               progress: bool = False, missing: str = "error",
               roles: Mapping[str, str] | None = None) -> SplitData:
    """Features, weak labels and (if ``truth``) the dense truth of one split.

    ``missing``: what to do with videos that have no features (:func:`available`); ``roles``:
    input slot -> feature role (:func:`load_features`).
    """
    features = load_features(features_dir, split_ids(ann, split), progress=progress, missing=missing,
                             what=f"{split} videos", roles=roles)
    ids = features.video_ids
    weak = ann.weak(ids)
    gt_a = gt_v = None
    if truth:
        gt_a = ann.dense("audio", ids, features.n_segments)
        gt_v = ann.dense("visual", ids, features.n_segments)
    return SplitData(features, weak, gt_a, gt_v)
