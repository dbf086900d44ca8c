"""The official file formats of the label-denoising methods, to and from avvp's tables.

* MA's ``need_to_change.pkl`` (written by MA's step 2): a pickle of ``[need_to_change_v,
  need_to_change_a]``, each a list of C lists of 0-based training-CSV row indices (0-dim torch
  int64 tensors in the official file) whose visual / audio label is dropped. It maps to the
  refined-labels table (:mod:`avvp.core.refined_labels`). It is read by a restricted unpickler that
  admits only lists, ints and tensors, so a crafted file cannot run code.
* JoMoLD's ``noise_ratios.npz`` (JoMoLD's stage 2): ``np.savez(path, audio=r^a, visual=r^v)``, two
  float64 arrays of shape (C,) in class order. It maps to the noise-ratio table
  (:mod:`avvp.stages.refine.ratios`). It is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from avvp.infra.errors import InputError
from avvp.stages.refine.exchange import ExchangeProbs, build_table

#: Keys of the official noise_ratios.npz.
NPZ_KEYS = ("audio", "visual")


# -------------------------------------------------------------------- need_to_change.pkl (MA)

def write_need_to_change(path: str | Path, table: pd.DataFrame, train_ids: Sequence[str],
                         classes: Sequence[str]) -> None:
    """Export the drops of a refined-labels table in the official ``need_to_change.pkl`` layout.

    A pickle of ``[need_to_change_v, need_to_change_a]``; each is a list of C lists of 0-based row
    indices into the training CSV (``train_ids``), stored as 0-dim torch int64 tensors as the
    official file does, in increasing row order.
    """
    import torch

    from avvp.infra.atomic import atomic_path

    row = {v: i for i, v in enumerate(train_ids)}
    col = {c: i for i, c in enumerate(classes)}
    missing = sorted(set(table["video_id"]) - set(row))
    if missing:
        raise InputError(None, f"{len(missing)} refined video(s) are not in the training list, e.g. {missing[0]!r}")
    lists = []
    for modality in ("visual", "audio"):
        per_class: list[list[Any]] = [[] for _ in classes]
        dropped = table[table[modality] == 0]
        pairs = sorted((row[v], col[c]) for v, c in zip(dropped["video_id"], dropped["class"]))
        for r, c in pairs:
            per_class[c].append(torch.tensor(r, dtype=torch.int64))
        lists.append(per_class)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(lists, fh)


def read_need_to_change(path: str | Path, train_ids: Sequence[str], classes: Sequence[str],
                        labels: np.ndarray, alias_global: bool = False) -> pd.DataFrame:
    """Read an official (or our) ``need_to_change.pkl`` into a refined-labels table.

    Args:
        path: the pickle; row indices may be ints or 0-dim tensors.
        train_ids: the training CSV's file names, in file order.
        classes: the class names (the pickle's C lists follow this order).
        labels: (N, C) weak labels of ``train_ids``.
        alias_global: fill the ``global`` column with the official aliasing.

    Returns:
        The table with MA's columns (the probability and threshold columns are NaN: the pickle
        does not hold them).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        with open(path, "rb") as fh:
            data = _PklReader(fh).load()
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"cannot unpickle: {exc}") from None
    if not (isinstance(data, (list, tuple)) and len(data) == 2):
        raise InputError(path, "expected a pickle of [need_to_change_v, need_to_change_a]")
    n, c = len(train_ids), len(classes)
    labels = np.asarray(labels) > 0
    drops = []
    for name, lists in zip(("need_to_change_v", "need_to_change_a"), data):
        if not (isinstance(lists, (list, tuple)) and len(lists) == c):
            raise InputError(path, f"{name} must be a list of {c} lists (one per class)")
        mask = np.zeros((n, c), dtype=bool)
        for k, rows in enumerate(lists):
            for value in rows:
                r = _as_int(value, path, name)
                if not 0 <= r < n:
                    raise InputError(path, f"{name}[{k}] holds row {r}, outside 0..{n - 1}")
                mask[r, k] = True
        drops.append(mask & labels)
    drop_v, drop_a = drops
    nan = np.full((n, c), np.nan)
    probs = ExchangeProbs(nan, nan, nan, nan, nan, nan)
    thr = {"audio": np.full(c, np.nan), "visual": np.full(c, np.nan)}
    partners = np.full((n, 1), -1, dtype=np.int64)
    return build_table(train_ids, classes, labels, probs, thr, drop_a, drop_v, partners, alias_global)


class _PklReader(pickle.Unpickler):
    """Unpickles only what a ``need_to_change.pkl`` holds: lists, ints and 0-dim torch tensors.

    A plain ``pickle.load`` would run any callable a crafted file names. Here the only globals
    admitted are the two that rebuild a pickled tensor, and its storage bytes are read with
    ``torch.load(weights_only=True)`` (torch's own ``_load_from_bytes`` uses ``weights_only=False``).
    """

    _ALLOWED = {("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict")}

    def find_class(self, module: str, name: str):
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a need_to_change.pkl "
                                     "never holds (only lists of row indices); refused")


def _storage_from_bytes(data: bytes):
    import io

    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


def _as_int(value: Any, path: Path, name: str) -> int:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)):
        raise InputError(path, f"{name} holds {value!r}, expected a row index")
    return int(value)


# ---------------------------------------------------------------- noise_ratios.npz (JoMoLD)

def write_noise_ratios_npz(path: str | Path, audio: np.ndarray, visual: np.ndarray) -> None:
    """Write the official ``noise_ratios.npz``: keys ``audio`` and ``visual``, float64 (C,)."""
    from avvp.infra.atomic import atomic_path

    with atomic_path(path, provenance="sidecar") as tmp:  # the official layout: exactly two keys
        with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a name
            np.savez(fh, audio=np.asarray(audio, dtype=np.float64), visual=np.asarray(visual, dtype=np.float64))


def read_noise_ratios_npz(path: str | Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read an official ``noise_ratios.npz``: (audio, visual) float64 arrays of shape (C,).

    Raises:
        InputError: the file is missing or no npz, its keys are not exactly ``audio`` and
            ``visual``, an array is not 1-D numeric of ``n_classes`` values, or a ratio is not a
            finite number in [0, 1]; the message names which.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "noise-ratio file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # noqa: BLE001 - numpy raises several types for a bad file
        raise InputError(path, f"not a noise_ratios.npz (np.savez) file: {exc}") from None
    missing = [k for k in NPZ_KEYS if k not in arrays]
    extra = sorted(set(arrays) - set(NPZ_KEYS))
    if missing or extra:
        parts = ([f"missing key(s) {', '.join(missing)}"] if missing else []) + \
                ([f"unexpected key(s) {', '.join(extra)}"] if extra else [])
        raise InputError(path, f"{'; '.join(parts)} (the official file holds exactly 'audio' and 'visual')")
    out = []
    for key in NPZ_KEYS:
        out.append(check_ratio_array(arrays[key], n_classes, path, key))
    return out[0], out[1]


def check_ratio_array(values: Any, n_classes: int, path: str | Path | None, what: str) -> np.ndarray:
    """``values`` as float64 (C,) ratios; InputError naming ``what`` if the shape, the class count,
    the type or a value (not finite, outside [0, 1]) is wrong."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise InputError(path, f"{what} ratios have shape {array.shape}, expected ({n_classes},)")
    if array.shape[0] != n_classes:
        raise InputError(path, f"{what} ratios are given for {array.shape[0]} classes, "
                               f"the data set has {n_classes}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)) \
            or array.dtype == np.bool_:
        raise InputError(path, f"{what} ratios have dtype {array.dtype}, expected numbers")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array) | (array < 0) | (array > 1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"{what} ratio of class {k} is {float(array[k])!r}, outside [0, 1]")
    return array
