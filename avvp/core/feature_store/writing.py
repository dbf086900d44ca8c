"""Writing a feature store video by video, atomically (:func:`store_writer`, :func:`write_store`)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import h5py
import numpy as np

from avvp.infra.atomic import atomic_path
from avvp.infra.errors import InputError
from avvp.core.feature_store.attributes import _RESERVED, _STR, _check_attrs


class StoreWriter:
    """Writes one store video by video into an open HDF5 file (use :func:`store_writer`)."""

    def __init__(self, h5: h5py.File, n: int, t: int, d: int, where, resizable: bool = False,
                 flags: Sequence[str] = (), extras: Mapping[str, tuple] | None = None):
        self._where = where
        self.shape = (n, t, d)
        chunks = (1, t, d) if n and t and d else None
        grow = {"maxshape": (None, t, d)} if resizable and chunks else {}
        # Fletcher-32 checksums on every chunk: damaged bytes are a read error, not wrong numbers.
        check = {"fletcher32": True} if chunks else {}
        self._ids = h5.create_dataset("video_ids", shape=(n,), dtype=_STR,  # (strings: no filters)
                                      maxshape=(None,) if grow else (n,))
        self._features = h5.create_dataset("features", shape=(n, t, d), dtype=np.float32,
                                           chunks=chunks, **grow, **check)
        self._flags = {name: h5.create_dataset(name, shape=(n,), dtype=np.float32,
                                               chunks=(n,) if chunks else None,
                                               maxshape=(None,) if grow else (n,), **check)
                       for name in flags}
        self._extras = {}
        for name, shape in (extras or {}).items():
            if name in _RESERVED:
                raise ValueError(f"extra dataset name {name!r} is reserved")
            shape = tuple(int(x) for x in shape)
            big = n and all(shape)
            self._extras[name] = h5.create_dataset(
                name, shape=(n, *shape), dtype=np.float32, chunks=(1, *shape) if big else None,
                **({"maxshape": (None, *shape)} if resizable and big else {}), **(check if big else {}))
        self._filled = np.zeros(n, dtype=bool)
        self._seen: set[str] = set()

    def write(self, index: int, video_id: str, feature: np.ndarray, extra: Mapping | None = None,
              **flags: float) -> None:
        """Store ``feature`` (T, D) of ``video_id`` at row ``index`` (and its flag values and
        extra arrays, one per extra dataset)."""
        feature = np.asarray(feature)
        if feature.shape != self.shape[1:]:
            raise InputError(self._where, f"video {video_id}: feature shape {feature.shape}, "
                             f"expected {self.shape[1:]}")
        extra = dict(extra or {})
        if set(extra) != set(self._extras):
            raise InputError(self._where, f"video {video_id}: extra arrays {sorted(extra)}, "
                             f"expected {sorted(self._extras)}")
        for name, value in extra.items():
            value = np.asarray(value)
            if value.shape != self._extras[name].shape[1:]:
                raise InputError(self._where, f"video {video_id}: {name} of shape {value.shape}, "
                                 f"expected {self._extras[name].shape[1:]}")
        if video_id in self._seen:
            raise InputError(self._where, f"video {video_id} appears twice")
        self._seen.add(video_id)
        self._ids[index] = video_id
        self._features[index] = feature.astype(np.float32, copy=False)
        for name, value in flags.items():
            self._flags[name][index] = value
        for name, value in extra.items():
            self._extras[name][index] = np.asarray(value, dtype=np.float32)
        self._filled[index] = True

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` rows (a store opened with ``resizable=True``)."""
        if n > self.shape[0]:
            raise ValueError(f"cannot truncate {self.shape[0]} rows to {n}")
        if n < self.shape[0]:
            self._ids.resize((n,))
            self._features.resize((n,) + self.shape[1:])
            for flag in self._flags.values():
                flag.resize((n,))
            for data in self._extras.values():
                data.resize((n, *data.shape[1:]))
        self.shape = (n,) + self.shape[1:]
        self._filled = self._filled[:n]

    def check_complete(self) -> None:
        if not self._filled.all():
            raise InputError(self._where, f"{int((~self._filled).sum())} rows were never written")


@contextmanager
def store_writer(path: str | Path, n: int, t: int, d: int, attrs: Mapping,
                 resizable: bool = False, flags: Sequence[str] = (),
                 extras: Mapping[str, tuple] | None = None) -> Iterator[StoreWriter]:
    """Open a store for writing ``n`` videos of shape (t, d) (and the per-video ``flags``
    datasets, e.g. ``padded_s``, and ``extras``: name → per-video shape of extra float32
    datasets, e.g. ``{"scores": (10, 25)}``); it appears under ``path`` only when the ``with`` block finishes
    without error and every row was written. With ``resizable``, :meth:`StoreWriter.truncate` may
    drop rows at the end (``n`` is then the most videos the store can hold)."""
    attrs = _check_attrs(attrs, path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.attrs.update(attrs)
            writer = StoreWriter(h5, n, t, d, path, resizable, flags, extras)
            yield writer
            writer.check_complete()


def write_store(path: str | Path, video_ids: Sequence[str], features, attrs: Mapping) -> None:
    """Write a whole store atomically.

    Args:
        path: the .h5 file.
        video_ids: N full LLP file names (unique).
        features: (N, T, D) array (cast to float32), or a sequence of N (T, D) arrays; an empty
            store keeps the (0, T, D) shape of an empty array.
        attrs: at least ``role``, ``extractor``, ``settings`` (JSON text or a mapping),
            ``weights``; ``avvp_version`` is added.
    """
    video_ids = [str(v) for v in video_ids]
    if len(video_ids) != len(features):
        raise InputError(path, f"{len(video_ids)} video ids but {len(features)} feature arrays")
    if isinstance(features, np.ndarray):
        if features.ndim != 3:
            raise InputError(path, f"features must be (N, T, D), got shape {features.shape}")
        t, d = features.shape[1:]
    elif len(features):
        first = np.asarray(features[0])
        if first.ndim != 2:
            raise InputError(path, f"each video's features must be (T, D), got {first.shape}")
        t, d = first.shape
    else:
        t, d = 0, 0
    with store_writer(path, len(video_ids), t, d, attrs) as writer:
        for i, (vid, feat) in enumerate(zip(video_ids, features)):
            writer.write(i, vid, feat)
