"""The predictions file: a model's outputs on a set of videos (``.npz``), the input of evaluation.

Arrays: ``video_ids`` (N,) str, ``classes`` (C,) str, ``global_prob`` (N, C), ``a_prob`` (N, C),
``v_prob`` (N, C) and ``frame_prob`` (N, T, 2, C) float32 (axis 2: 0 = audio, 1 = visual).
"""

from __future__ import annotations

import zipfile

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avvp.infra.atomic import atomic_path
from avvp.infra.errors import InputError

ARRAYS = ("global_prob", "a_prob", "v_prob", "frame_prob")


@dataclass
class Predictions:
    video_ids: list[str]
    classes: list[str]
    global_prob: np.ndarray
    a_prob: np.ndarray
    v_prob: np.ndarray
    frame_prob: np.ndarray

    def __post_init__(self) -> None:
        n, c = len(self.video_ids), len(self.classes)
        for name in ("global_prob", "a_prob", "v_prob"):
            arr = getattr(self, name)
            if arr.shape != (n, c):
                raise InputError(None, f"{name} has shape {arr.shape}, expected ({n}, {c})")
        fp = self.frame_prob
        if fp.ndim != 4 or fp.shape[0] != n or fp.shape[2] != 2 or fp.shape[3] != c:
            raise InputError(None, f"frame_prob has shape {fp.shape}, expected ({n}, T, 2, {c})")

    def save(self, path: str | Path) -> None:
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh, video_ids=np.asarray(self.video_ids, dtype=str),
                    classes=np.asarray(self.classes, dtype=str),
                    **{k: np.asarray(getattr(self, k), dtype=np.float32) for k in ARRAYS})

    @classmethod
    def load(cls, path: str | Path) -> "Predictions":
        path = Path(path)
        if not path.exists():
            raise InputError(path, "predictions file not found")
        try:
            with zipfile.ZipFile(path) as archive:  # np.load checks no CRC of the arrays it skips
                bad = archive.testzip()
            if bad is not None:
                raise InputError(path, f"the file is damaged: its array {bad} fails its CRC-32 check")
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("video_ids", "classes", *ARRAYS) if k not in data]
                if missing:
                    raise InputError(path, f"missing array(s): {', '.join(missing)}")
                fields = {k: data[k].astype(np.float32) for k in ARRAYS}
                ids, classes = [str(v) for v in data["video_ids"]], [str(c) for c in data["classes"]]
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise InputError(path, f"not a predictions file (truncated or damaged?): {exc}") from None
        try:
            return cls(ids, classes, **fields)
        except InputError as exc:
            raise InputError(path, exc.problem) from None
