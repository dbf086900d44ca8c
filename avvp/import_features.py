"""Import the official pre-extracted LLP features into the feature store (official.md §b).

The official "feats" folder holds ``vggish/``, ``res152/`` and ``r2plus1d_18/``, one
``<11-character YouTube id>.npy`` per video of shape (10, 128), (80, 2048) and (10, 512), float32.
Each folder becomes one store (``audio.h5``, ``frame.h5``, ``clip.h5``) keyed by the full LLP file
names of the manifest. Videos without a file are listed (and written to
``failures/<role>_import.parquet``); a file of the wrong shape or dtype is an error naming it.
VGGish files whose values are all integers in 0..255 look PCA-quantised and are reported.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import __version__
from .annotations import youtube_id
from .atomic import write_parquet
from .errors import InputError
from .feature_store import FAILURE_COLUMNS, ROLES, store_writer

log = logging.getLogger(__name__)

#: role -> (official folder, array shape per video)
OFFICIAL = {"audio": ("vggish", (10, 128)), "frame": ("res152", (80, 2048)),
            "clip": ("r2plus1d_18", (10, 512))}


@dataclass
class ImportReport:
    """What one role's import did."""

    role: str
    out: Path
    videos: int = 0
    missing: list[str] = field(default_factory=list)
    quantised: list[str] = field(default_factory=list)


def feats_folder(folder: str | Path, roles: Iterable[str] = ROLES) -> Path:
    """The folder that holds the official sub-folders: ``folder`` itself or ``folder/feats``."""
    folder = Path(folder)
    names = [OFFICIAL[r][0] for r in roles]
    for candidate in (folder, folder / "feats"):
        if all((candidate / n).is_dir() for n in names):
            return candidate
    absent = [n for n in names if not (folder / n).is_dir()]
    raise InputError(folder, f"official feature folder(s) not found: {', '.join(absent)}")


def looks_quantised(array: np.ndarray) -> bool:
    """True when every value is an integer in 0..255 (VGGish PCA + 8-bit post-processing)."""
    return bool(array.size) and bool(np.all((array >= 0) & (array <= 255) & (array == np.round(array))))


def read_official(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """One official .npy file, checked for shape and dtype."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read as a .npy array ({exc})") from exc
    if array.dtype != np.float32:
        raise InputError(path, f"dtype {array.dtype}, expected float32")
    if array.shape != shape:
        raise InputError(path, f"shape {array.shape}, expected {shape}")
    return array


def import_role(manifest: pd.DataFrame, folder: Path, role: str, out: str | Path,
                failures_out: str | Path | None = None, progress: bool = True) -> ImportReport:
    """Import one official folder into the store ``out`` (ids from the manifest, in its order)."""
    name, shape = OFFICIAL[role]
    source = Path(folder) / name
    report = ImportReport(role=role, out=Path(out))
    present = []
    for vid in manifest["video_id"]:
        path = source / f"{youtube_id(vid)}.npy"
        (present.append((vid, path)) if path.is_file() else report.missing.append(vid))
    attrs = {"role": role, "extractor": f"official:{name}",
             "settings": json.dumps({"source": str(source)}), "weights": "official",
             "avvp_version": __version__}
    with store_writer(out, len(present), *shape, attrs) as writer:
        for i, (vid, path) in enumerate(tqdm(present, desc=f"import {name}", unit="video",
                                             disable=not progress)):
            array = read_official(path, shape)
            if role == "audio" and looks_quantised(array):
                report.quantised.append(vid)
            writer.write(i, vid, array)
    report.videos = len(present)
    if failures_out is not None:
        rows = [(v, "import", f"no {name}/{youtube_id(v)}.npy") for v in report.missing]
        write_parquet(failures_out, pd.DataFrame(rows, columns=list(FAILURE_COLUMNS)).astype(str))
    return report


def import_features(manifest: pd.DataFrame, folder: str | Path, out_dir: str | Path,
                    roles: Iterable[str] = ROLES, progress: bool = True) -> dict[str, ImportReport]:
    """Import the official features of ``roles`` into ``<out_dir>/<role>.h5``.

    Missing videos go to ``<out_dir>/failures/<role>_import.parquet`` (and are logged).
    """
    roles = list(roles)
    folder = feats_folder(folder, roles)
    out_dir = Path(out_dir)
    reports = {}
    for role in roles:
        rep = import_role(manifest, folder, role, out_dir / f"{role}.h5",
                          out_dir / "failures" / f"{role}_import.parquet", progress)
        if rep.missing:
            log.warning("%s: %d of %d videos have no official features, e.g. %s", role,
                        len(rep.missing), len(manifest), ", ".join(rep.missing[:5]))
        if rep.quantised:
            log.warning("%s: %d VGGish files look PCA-quantised (integers in 0..255), e.g. %s",
                        role, len(rep.quantised), ", ".join(rep.quantised[:3]))
        reports[role] = rep
    return reports
