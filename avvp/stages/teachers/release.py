"""Import what VALOR released: its ``CLIP/`` and ``CLAP/`` folders (the unpacked CLIP.zip, CLAP.zip).

Each folder holds ``features/<youtube_id>.npy`` and ``segment_pseudo_labels/<youtube_id>.npy``:

====== ============ ============================= ======================= ===========
folder modality     features (role, array)        labels                  store
====== ============ ============================= ======================= ===========
CLIP   visual       ``clip_image``, (10, 768) f32 (10, 25) int64 {0, 1}   clip_image.h5
CLAP   audio        ``clap_audio``, (64, 768) f32 (10, 25) int64 {0, 1}   clap_audio.h5
====== ============ ============================= ======================= ===========

The features go into feature stores (one per role, in manifest order), the labels into the
pseudo-label store (one Parquet per modality). Like the LLP feature import, the run goes on past
broken files: each becomes a row of one failure table (``modality``, ``kind`` = features or labels,
then ``video_id``, ``stage``, ``path``, ``reason``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from avvp import __version__
from avvp.core.annotations import youtube_id
from avvp.core import feature_roles
from avvp.infra.atomic import remove_stale, write_parquet
from avvp.infra.errors import InputError
from avvp.core.feature_store import store_writer
from avvp.stages.import_features import FileProblem, read_official
from avvp.core.pseudo_labels import PseudoLabels, write_pseudo_labels
from avvp.stages.teachers.npy import FAILURE_COLUMNS, import_npy

log = logging.getLogger(__name__)

#: modality -> (release folder, feature role, feature shape per video)
RELEASE = {"visual": ("CLIP", "clip_image", (10, 768)), "audio": ("CLAP", "clap_audio", (64, 768))}
RELEASE_FAILURE_COLUMNS = ("modality", "kind") + FAILURE_COLUMNS


@dataclass
class ReleaseReport:
    """What a release import did: videos per store and the failure table."""

    features: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(RELEASE_FAILURE_COLUMNS)))


def release_folder(folder: str | Path, name: str) -> Path:
    """``folder/<name>`` (or ``folder/data/<name>``, VALOR's own layout)."""
    folder = Path(folder)
    for candidate in (folder / name, folder / "data" / name):
        if candidate.is_dir():
            return candidate
    raise InputError(folder, f"no {name}/ folder here (the unpacked {name}.zip of VALOR's release)")


def import_features_folder(folder: Path, role: str, shape: tuple[int, int], video_ids: Sequence[str],
                           target: Path) -> tuple[int, list[tuple[str, str, str, str]]]:
    """The release's feature files of ``video_ids`` into the store ``target``; (videos, failures)."""
    features = folder / "features"
    failures = []
    for stale in remove_stale(target):
        log.info("removed %s (left by an interrupted run)", stale)
    attrs = {"role": role, "extractor": f"valor-release:{folder.name}",
             "settings": json.dumps({"source": str(features)}), "weights": "valor-release",
             "avvp_version": __version__}
    with store_writer(target, len(video_ids), *shape, attrs, resizable=True) as writer:
        row = 0
        for vid in video_ids:
            path = features / f"{youtube_id(vid)}.npy"
            try:
                if not path.is_file():
                    raise FileProblem("missing", f"{path} not found")
                array = read_official(path, shape)
            except FileProblem as exc:
                failures.append((vid, exc.stage, str(path), exc.reason))
                continue
            writer.write(row, vid, array)
            row += 1
        writer.truncate(row)
    return row, failures


def import_release(folder: str | Path, video_ids: Sequence[str], classes: Sequence[str], weak: np.ndarray,
                   features_dir: str | Path, pseudo_dir: str | Path, failures_path: str | Path,
                   modalities: Sequence[str] = ("audio", "visual")) -> ReleaseReport:
    """Import VALOR's released features and pseudo labels of ``video_ids``.

    Args:
        folder: the folder holding ``CLIP/`` and ``CLAP/`` (or ``data/CLIP``, ``data/CLAP``).
        video_ids, classes: the data set's videos (full LLP names) and classes.
        weak: (N, C) the videos' weak labels, to count released positives outside them (a warning).
        features_dir: writes ``<role>.h5`` per modality.
        pseudo_dir: writes ``<modality>.parquet``.
        failures_path: the failure table (Parquet), written even when nothing failed.

    Raises:
        InputError: a folder is missing, or every file of a kind failed.
    """
    report = ReleaseReport()
    rows = []
    weak_of = {v: np.asarray(weak[i]) > 0 for i, v in enumerate(video_ids)}
    for modality in modalities:
        name, role, shape = RELEASE[modality]
        where = release_folder(folder, name)
        n, failed = import_features_folder(where, role, shape, video_ids, feature_roles.store_file(features_dir, role))
        rows += [(modality, "features", *f) for f in failed]
        if not n and len(video_ids):
            write_parquet(failures_path, pd.DataFrame(rows, columns=list(RELEASE_FAILURE_COLUMNS)))
            raise InputError(where / "features", f"no feature file could be imported, e.g. {failed[0][3]}")
        report.features[role] = n
        labels, table = import_npy(where, modality, video_ids, classes,
                                   source={"teacher": f"valor-release:{name}"})
        rows += [(modality, "labels", *r) for r in table.itertuples(index=False)]
        _check_weak(labels, weak_of)
        write_pseudo_labels(Path(pseudo_dir) / f"{modality}.parquet", labels)
        report.labels[modality] = len(labels.video_ids)
        if failed:
            log.warning("%d of %d %s feature files were not imported, e.g. %s", len(failed), len(video_ids),
                        name, failed[0][3])
    report.failures = pd.DataFrame(rows, columns=list(RELEASE_FAILURE_COLUMNS)).astype(str)
    write_parquet(failures_path, report.failures)
    return report


def _check_weak(labels: PseudoLabels, weak_of: dict[str, np.ndarray]) -> None:
    """Warn when released labels are positive outside a video's weak labels (VALOR never is)."""
    outside = [v for v, lab in zip(labels.video_ids, labels.labels) if (lab.any(0) & ~weak_of[v]).any()]
    if outside:
        log.warning("%d videos have released %s pseudo labels outside their weak labels, e.g. %s",
                    len(outside), labels.modality, outside[0])
