"""Reading a feature store: attributes, ids, rows (all at once, in chunks, into a buffer), extra
and flag datasets; an unreadable store is an InputError naming the file."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np

from avvp.infra.errors import InputError
from avvp.core.feature_store.attributes import _RESERVED, FLAG_DATASETS


@contextmanager
def _open(path: str | Path) -> Iterator[h5py.File]:
    """The open store; an unreadable file (missing, not HDF5, truncated, damaged data) is an
    InputError that names it, also when the damage shows only while reading inside the block."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "feature store not found")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 feature store ({_short(exc)}); it may be "
                               "truncated or damaged: make it again") from None
    with h5:
        try:
            found = "video_ids" in h5 and "features" in h5 and h5["features"].shape is not None
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            raise InputError(path, f"cannot read the feature store ({_short(exc)}); it may be "
                                   "truncated or damaged: make it again") from None
        if not found:
            raise InputError(path, "not a feature store (no 'video_ids' / 'features' datasets)")
        try:
            yield h5
        except (OSError, RuntimeError, KeyError, UnicodeError) as exc:
            if "write" in str(exc).lower() or getattr(exc, "errno", None) is not None:
                raise  # an output's failure (a full disk), not this store's
            raise InputError(path, f"cannot read the feature store ({_short(exc)}); it may be "
                                   "truncated or damaged: make it again") from None


def _short(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def read_attrs(path: str | Path) -> dict[str, str]:
    """The attributes of a store (``settings`` as JSON text)."""
    with _open(path) as h5:
        return _attrs(h5, path)


def _attrs(h5: h5py.File, path) -> dict[str, str]:
    out = {}
    for key, value in h5.attrs.items():
        text = value.decode() if isinstance(value, bytes) else str(value)
        try:
            text.encode("utf-8")
        except UnicodeError:
            raise InputError(path, f"attribute {key!r} is not valid text: the store is damaged; "
                                   "make it again") from None
        out[key] = text
    return out


def store_shape(path: str | Path) -> tuple[int, int, int]:
    """The (N, T, D) shape of a store's features (InputError naming an unreadable file)."""
    with _open(path) as h5:
        return tuple(int(x) for x in h5["features"].shape)


def read_ids(path: str | Path) -> list[str]:
    """The video ids of a store, in file order."""
    with _open(path) as h5:
        return list(h5["video_ids"].asstr()[...])


def read_store(path: str | Path, video_ids: Iterable[str] | None = None
               ) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Read a store, or the rows of ``video_ids`` in the order given.

    Returns:
        (ids, features (N, T, D) float32, attrs).

    Raises:
        InputError: the file is missing or unreadable, or lacks some of ``video_ids`` (the
            message names the file, how many are missing and the first of them).
    """
    with _open(path) as h5:
        attrs = _attrs(h5, path)
        ids = list(h5["video_ids"].asstr()[...])
        data = h5["features"]
        if video_ids is None:
            return ids, data[...].astype(np.float32, copy=False), attrs
        wanted = [str(v) for v in video_ids]
        row = {v: i for i, v in enumerate(ids)}
        missing = [v for v in wanted if v not in row]
        if missing:
            shown = ", ".join(missing[:10]) + (f" (+{len(missing) - 10} more)" if len(missing) > 10 else "")
            raise InputError(path, f"{len(missing)} of {len(wanted)} requested videos have no "
                             f"features: {shown}")
        rows = np.array([row[v] for v in wanted], dtype=np.int64)
        return wanted, _read_rows(data, rows), attrs


def _rows_of(h5: h5py.File, path, video_ids: Sequence[str]) -> np.ndarray:
    """The store rows of ``video_ids``; InputError naming the first that the store lacks."""
    wanted = [str(v) for v in video_ids]
    row = {v: i for i, v in enumerate(h5["video_ids"].asstr()[...])}
    missing = [v for v in wanted if v not in row]
    if missing:
        raise InputError(path, f"{len(missing)} of {len(wanted)} requested videos have no "
                               f"features: {', '.join(missing[:10])}")
    return np.array([row[v] for v in wanted], dtype=np.int64)


#: Most videos per read: HDF5 holds a map of every chunk (one per video) a read touches, and a
#: read of all 10,000 training videos' audio would keep ~50 MB of it on the heap afterwards.
MAX_VIDEOS_PER_READ = 256


def _steps(data: h5py.Dataset, max_bytes: int) -> int:
    """Videos per read of about ``max_bytes`` (at most :data:`MAX_VIDEOS_PER_READ`)."""
    return max(1, min(MAX_VIDEOS_PER_READ, max_bytes // max(1, int(np.prod(data.shape[1:])) * 4)))


def read_chunks(path: str | Path, video_ids: Sequence[str], max_bytes: int = 32 << 20
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Read the rows of ``video_ids`` (all in the store) in order, in chunks of at most about
    ``max_bytes``: yields ``(index of the chunk's first video, (n, T, D) float32)``.

    Memory stays at a chunk or two whatever the store's size (a whole 80-frame LLP store is
    6.5 GB).

    Raises:
        InputError: the file is missing or unreadable, or lacks some of ``video_ids``.
    """
    with _open(path) as h5:
        data = h5["features"]
        rows = _rows_of(h5, path, video_ids)
        step = _steps(data, max_bytes)
        for start in range(0, len(rows), step):
            yield start, _read_rows(data, rows[start:start + step])


def read_into(path: str | Path, video_ids: Sequence[str], out: np.ndarray, max_bytes: int = 32 << 20
              ) -> Iterator[int]:
    """Read the rows of ``video_ids`` straight into ``out`` (N, T, D) float32, in order, with no
    copy in between (runs of consecutive store rows are read directly); yields the number of
    videos read after each read of at most about ``max_bytes``.

    Raises:
        InputError: the file is missing or unreadable, lacks some of ``video_ids``, or its rows
            do not have the shape of ``out``'s.
    """
    with _open(path) as h5:
        data = h5["features"]
        if data.dtype != np.float32 or data.shape[1:] != out.shape[1:] or len(out) != len(video_ids):
            raise InputError(path, f"features {data.dtype} {data.shape[1:]} per video cannot be read into "
                                   f"{len(out)} rows of float32 {out.shape[1:]}")
        rows = _rows_of(h5, path, video_ids)
        step = _steps(data, max_bytes)
        start = 0
        while start < len(rows):
            end = min(start + step, len(rows))
            stop = start + 1
            while stop < end and rows[stop] == rows[stop - 1] + 1:
                stop += 1
            first = int(rows[start])
            data.read_direct(out, np.s_[first:first + stop - start], np.s_[start:stop])
            yield stop - start
            start = stop


def _read_rows(data: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``data[rows]`` as float32: one slice read when the rows are close together, else per row."""
    out = np.empty((len(rows),) + data.shape[1:], dtype=np.float32)
    if not len(rows):
        return out
    lo, hi = int(rows.min()), int(rows.max()) + 1
    if hi - lo <= 2 * len(rows):
        out[...] = data[lo:hi][rows - lo]
    else:
        for i, r in enumerate(rows):
            out[i] = data[int(r)]
    return out


def extra_names(h5: h5py.File) -> list[str]:
    """The extra datasets of an open store (beside ids, features and flags)."""
    return sorted(k for k in h5 if k not in _RESERVED and isinstance(h5[k], h5py.Dataset))


def read_extra(path: str | Path, name: str, video_ids: Sequence[str] | None = None) -> np.ndarray:
    """An extra per-video dataset of a store (e.g. a teacher's ``scores``, (N, T, C) float32), for
    all videos in file order or for ``video_ids`` in the order given.

    Raises:
        InputError: the file is missing or unreadable, lacks the dataset, or lacks some of
            ``video_ids``.
    """
    with _open(path) as h5:
        if name not in extra_names(h5):
            raise InputError(path, f"no '{name}' dataset (extra datasets: {', '.join(extra_names(h5)) or 'none'})")
        data = h5[name]
        if video_ids is None:
            return data[...].astype(np.float32, copy=False)
        return _read_rows(data, _rows_of(h5, path, video_ids))


def read_flags(path: str | Path) -> dict[str, np.ndarray]:
    """The per-video flag datasets of a store (:data:`FLAG_DATASETS` it holds), in file order."""
    with _open(path) as h5:
        return {name: h5[name][...] for name in FLAG_DATASETS if name in h5}
