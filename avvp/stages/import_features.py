"""Import the official pre-extracted LLP features into the feature store.

The official release is a "feats" folder holding ``vggish/``, ``res152/`` and ``r2plus1d_18/``,
one ``<11-character YouTube id>.npy`` per video of shape (10, 128), (80, 2048) and (10, 512),
float32. ``--folder`` may name that folder, its parent (``<parent>/feats``), or the folder an
archive was unpacked into when it holds a single folder with them. A zip or tar archive that
was not unpacked is an error that says so.

Each video whose three files are all good goes into the three stores (``audio.h5``, ``frame.h5``,
``clip.h5``, keyed by the full LLP file names, in manifest order); the run goes on past bad files.
Every problem becomes a row of ``failures/import.parquet`` (``video_id``, ``stage``, ``reason``)
that says what was expected:

========== ============================================================================
stage      what
========== ============================================================================
missing    no ``<id>.npy`` (the reason says when the file is named by the full LLP file
           name, ``<id>_<start>_<end>.npy``, instead of the 11-character id)
unreadable not a readable ``.npy`` array (truncated, not NumPy, a pickle, ...)
dtype      not float32 (uint8 VGGish files are the PCA-quantised 8-bit embeddings)
shape      not the release's shape
values     NaN or infinite values
extra      a ``.npy`` whose id is no video of the annotations (its ``video_id`` is the id)
========== ============================================================================

A role whose files all fail stops the import with an error that gives the commonest reason
(a wrong layout, not a few bad files). VGGish float32 files whose values are all integers in
0..255 look PCA-quantised; they are imported and reported. Videos of the val and test splits
without features are named in the log: training and evaluation stop on them unless
``evaluate.allow_missing`` is set (docs/guide/import.md).
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
import zipfile
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
from tqdm import tqdm

from avvp import __version__
from avvp.infra import faults, parquet_reader as parquet
from avvp.core.annotations import youtube_id
from avvp.infra.atomic import remove_stale, write_parquet
from avvp.infra.errors import InputError
from avvp.core.feature_store import FAILURE_COLUMNS, ROLES, store_writer

log = logging.getLogger(__name__)

#: role -> (official folder, array shape per video)
OFFICIAL = {"audio": ("vggish", (10, 128)), "frame": ("res152", (80, 2048)),
            "clip": ("r2plus1d_18", (10, 512))}
FAILURES = "import.parquet"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".7z", ".rar")


@dataclass
class ImportReport:
    """What an import did.

    Attributes:
        out_dir: the folder of the stores.
        source: the folder the official sub-folders were found in.
        videos: videos imported (in every store).
        failures: the failure table (:data:`FAILURE_COLUMNS`).
        quantised: imported videos whose VGGish values look PCA-quantised.
        missing_eval: val and test videos left out, per split.
    """

    out_dir: Path
    source: Path
    videos: int = 0
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(FAILURE_COLUMNS)))
    quantised: list[str] = field(default_factory=list)
    missing_eval: dict[str, list[str]] = field(default_factory=dict)

    @property
    def left_out(self) -> list[str]:
        """The manifest's videos that are not in the stores."""
        rows = self.failures[self.failures["stage"] != "extra"]
        return list(dict.fromkeys(rows["video_id"]))


class FileProblem(Exception):
    """One official file that cannot be imported: ``stage`` and ``reason`` of its failure row."""

    def __init__(self, stage: str, reason: str):
        super().__init__(reason)
        self.stage, self.reason = stage, reason


# --------------------------------------------------------------------------- the layout

def _is_archive(path: Path) -> bool:
    name = path.name.lower()
    if path.is_file() and any(name.endswith(s) for s in ARCHIVE_SUFFIXES):
        return True
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def _unpack_hint(archive: Path) -> str:
    return (f"{archive} is an archive that was not unpacked; unpack it first (e.g. `unzip "
            f"{archive.name}` or `tar xf {archive.name}`) and give the folder that holds vggish/, "
            "res152/ and r2plus1d_18/ (or its parent)")


def feats_folder(folder: str | Path, roles: Iterable[str] = ROLES) -> Path:
    """The folder that holds the official sub-folders of ``roles``.

    Looked for in ``folder``, ``folder/feats``, and the one sub-folder of ``folder`` when it has
    exactly one (an unpacked archive), and that sub-folder's ``feats``.

    Raises:
        InputError: ``folder`` is missing, is an archive, or holds none of these layouts (the
            message names what is absent, and an archive inside that was not unpacked).
    """
    folder = Path(folder)
    names = [OFFICIAL[r][0] for r in roles]
    if folder.is_file() and _is_archive(folder):
        raise InputError(folder, _unpack_hint(folder))
    if not folder.is_dir():
        raise InputError(folder, "official feature folder not found")
    candidates = [folder, folder / "feats"]
    subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subdirs) == 1:
        candidates += [subdirs[0], subdirs[0] / "feats"]
    for candidate in candidates:
        if all((candidate / n).is_dir() for n in names):
            return candidate
    archives = sorted(p for c in candidates if c.is_dir() for p in c.iterdir() if _is_archive(p))
    if archives:
        raise InputError(folder, _unpack_hint(archives[0]))
    absent = [n for n in names if not (folder / n).is_dir()]
    raise InputError(folder, f"official feature folder(s) not found: {', '.join(f'{n}/' for n in absent)} "
                             "(expected here, in feats/, or in the one folder an archive unpacked into)")


def looks_quantised(array: np.ndarray) -> bool:
    """True when every value is an integer in 0..255 (VGGish PCA + 8-bit post-processing)."""
    return bool(array.size) and bool(np.all((array >= 0) & (array <= 255) & (array == np.round(array))))


def load_npy(path: Path, expected: str) -> np.ndarray:
    """One ``.npy`` array, loaded without unpickling.

    Raises:
        FileProblem: ``unreadable`` (missing, truncated, not NumPy, a pickle, an ``.npz``); the
            reason names the file and ends with ``expected``.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise FileProblem("unreadable", f"{path}: not a readable .npy array ({exc}); {expected}") from None
    if not isinstance(array, np.ndarray):
        raise FileProblem("unreadable", f"{path}: not a single .npy array; {expected}")
    return array


def read_official(path: Path, shape: tuple[int, int], role: str = "") -> np.ndarray:
    """One official .npy file, checked.

    Raises:
        FileProblem: unreadable, another dtype or shape, or non-finite values; the reason names
            the file and says what was expected.
    """
    expected = f"expected float32 {shape}"
    array = load_npy(path, expected)
    if array.dtype == np.uint8 and role == "audio":
        raise FileProblem("dtype", f"{path}: uint8, the PCA-quantised 8-bit VGGish embeddings; the "
                                   f"release's VGGish files are float32 {shape}")
    if array.dtype != np.float32:
        raise FileProblem("dtype", f"{path}: dtype {array.dtype}, {expected}")
    if array.shape != shape:
        raise FileProblem("shape", f"{path}: shape {array.shape}, {expected}")
    if not np.isfinite(array).all():
        raise FileProblem("values", f"{path}: holds NaN or infinite values")
    return array


def _listing(folder: Path) -> set[str]:
    """The names of the files in ``folder``."""
    with os.scandir(folder) as entries:
        return {e.name for e in entries if not e.is_dir()}


# --------------------------------------------------------------------------- the import

def read_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest's ``video_id`` and ``split`` (without importing torch, as extraction does)."""
    table = parquet.read_table(path, ("video_id", "split"), "manifest")
    dup = table["video_id"][table["video_id"].duplicated()]
    if len(dup):
        raise InputError(path, f"video id {dup.iloc[0]} appears more than once in the manifest")
    return table.reset_index(drop=True)


def import_features(manifest: pd.DataFrame, folder: str | Path, out_dir: str | Path,
                    roles: Iterable[str] = ROLES, progress: bool = True) -> ImportReport:
    """Import the official features of ``roles`` into ``<out_dir>/<role>.h5``.

    Args:
        manifest: the videos (``video_id``, ``split``), in store order.
        folder: the official folder, its parent or the folder an archive was unpacked into.
        out_dir: writes the stores and ``failures/import.parquet``.
        roles: the roles to import.
        progress: show a progress bar.

    Raises:
        InputError: no official folder (see :func:`feats_folder`), or a role whose every file
            failed (the commonest reason is given).
    """
    roles = list(roles)
    source = feats_folder(folder, roles)
    out_dir = Path(out_dir)
    folders = {r: source / OFFICIAL[r][0] for r in roles}
    listed = {r: _listing(folders[r]) for r in roles}
    ids = [str(v) for v in manifest["video_id"]]
    report = ImportReport(out_dir, source)
    failures: list[tuple[str, str, str]] = []

    candidates = []
    for vid in ids:
        ok = True
        for role in roles:
            name = f"{youtube_id(vid)}.npy"
            if name not in listed[role]:
                failures.append((vid, "missing", _missing_reason(folders[role], vid, listed[role])))
                ok = False
        if ok:
            candidates.append(vid)
    known = {f"{youtube_id(v)}.npy" for v in ids} | {f"{v}.npy" for v in ids}
    for role in roles:
        for name in sorted(listed[role] - known):
            if name.endswith(".npy"):
                failures.append((name[:-4], "extra", f"{folders[role] / name}: no video of the "
                                                      "annotations has this id; not imported"))

    attrs = {r: {"role": r, "extractor": f"official:{OFFICIAL[r][0]}",
                 "settings": json.dumps({"source": str(folders[r])}), "weights": "official",
                 "avvp_version": __version__} for r in roles}
    stores = {r: out_dir / f"{r}.h5" for r in roles}
    for path in stores.values():
        for stale in remove_stale(path):
            log.info("removed %s (left by an interrupted run)", stale)
    with ExitStack() as stack:
        writers = {r: stack.enter_context(store_writer(stores[r], len(candidates), *OFFICIAL[r][1],
                                                       attrs[r], resizable=True)) for r in roles}
        row = 0
        for vid in tqdm(candidates, desc="import", unit="video", disable=not progress):
            arrays, problems = {}, []
            for role in roles:
                path = folders[role] / f"{youtube_id(vid)}.npy"
                try:
                    arrays[role] = read_official(path, OFFICIAL[role][1], role)
                except FileProblem as exc:
                    problems.append((vid, exc.stage, exc.reason))
            if problems:
                failures.extend(problems)
                continue
            if "audio" in arrays and looks_quantised(arrays["audio"]):
                report.quantised.append(vid)
            for role in roles:
                writers[role].write(row, vid, arrays[role])
            row += 1
            faults.passed("import")
        _check_some(row, failures, roles, folders)
        for writer in writers.values():
            writer.truncate(row)
    report.videos = row
    report.failures = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)).astype(str)
    write_parquet(out_dir / "failures" / FAILURES, report.failures)
    _log(report, manifest)
    return report


def _missing_reason(folder: Path, video_id: str, listed: set[str]) -> str:
    expected = folder / f"{youtube_id(video_id)}.npy"
    if f"{video_id}.npy" in listed:
        return (f"{expected} not found, but {video_id}.npy is: files are named by the full LLP file "
                f"name; the release names them by the 11-character YouTube id ({expected.name})")
    return f"{expected} not found"


def _check_some(imported: int, failures: list[tuple[str, str, str]], roles: list[str],
                folders: Mapping[str, Path]) -> None:
    """Raise when nothing could be imported: a wrong layout rather than a few bad files."""
    if imported:
        return
    reasons = Counter(stage for _, stage, _ in failures if stage != "extra")
    if not reasons:
        raise InputError(folders[roles[0]].parent, "the manifest lists no videos to import")
    stage, count = reasons.most_common(1)[0]
    example = next(r for _, s, r in failures if s == stage)
    raise InputError(folders[roles[0]].parent,
                     f"no video could be imported; {count} files failed with '{stage}', e.g. {example}")


def _log(report: ImportReport, manifest: pd.DataFrame) -> None:
    failed = report.failures
    real = failed[failed["stage"] != "extra"]
    if len(real):
        counts = ", ".join(f"{n} {s}" for s, n in Counter(real["stage"]).most_common())
        log.warning("%d of %d videos were not imported (%s); see %s", len(report.left_out),
                    len(manifest), counts, report.out_dir / "failures" / FAILURES)
    extra = int((failed["stage"] == "extra").sum())
    if extra:
        log.warning("%d files match no video of the annotations and were not imported", extra)
    if "split" not in manifest:
        return _log_quantised(report)
    split = manifest.set_index(manifest["video_id"].astype(str))["split"]
    left = set(report.left_out)
    for name in ("train", "val", "test"):
        lacking = [v for v in split.index[split == name] if v in left]
        if not lacking:
            continue
        if name == "train":
            log.warning("%d training videos have no features; training leaves them out", len(lacking))
        else:
            report.missing_eval[name] = lacking
            log.warning("%d %s videos have no features (%s): training and evaluation stop on them "
                        "unless evaluate.allow_missing is set", len(lacking), name,
                        ", ".join(lacking[:10]) + (" ..." if len(lacking) > 10 else ""))
    _log_quantised(report)


def _log_quantised(report: ImportReport) -> None:
    if report.quantised:
        log.warning("%d VGGish files look PCA-quantised (integers in 0..255), e.g. %s",
                    len(report.quantised), ", ".join(report.quantised[:3]))
