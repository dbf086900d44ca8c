"""The feature store: one HDF5 file per extractor role (and per shard before merging).

Layout (docs/architecture.md): dataset ``video_ids`` (UTF-8 strings, the full LLP file names) and
dataset ``features`` float32 of shape (N, T, D), one chunk per video; file attributes ``role``,
``extractor``, ``settings`` (JSON), ``weights`` (identity: sha256 of the file or ``random:<seed>``)
and ``avvp_version``. A store with no videos has shape (0, 0, D) (or (0, 0, 0)). Extracted audio
stores also hold ``padded_s`` (N,) float32: the seconds of each video's window that its audio
stream did not cover and that were filled with silence (0 for most videos; see
``features.audio_tolerance``). A store may also hold extra per-video arrays beside ``features``,
float32 of shape (N, ...) (VALOR's teachers store their class ``scores`` (N, T, C) so;
:func:`read_extra`). A shard store records ``inputs`` (what it was made from, see
:mod:`avvp.extract`); merged stores drop it.

Every file is written atomically (a temporary file beside the target, renamed on success), and
large stores are written and merged one video at a time, so memory stays small.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import h5py
import numpy as np

from . import __version__
from .atomic import atomic_path
from .errors import InputError
from .feature_roles import FEATURE_ROLES, TEACHER_ROLES

#: The three stores of a data set, and the columns of a failure table (``features/failures/``).
ROLES = FEATURE_ROLES
#: Every role ``avvp extract`` can extract.
EXTRACT_ROLES = ROLES + TEACHER_ROLES
FAILURE_COLUMNS = ("video_id", "stage", "reason")
REQUIRED_ATTRS = ("role", "extractor", "settings", "weights")
#: Attributes that must agree between the shards of one store.
IDENTITY_ATTRS = ("role", "extractor", "settings", "weights")
#: Attributes of one shard only (not carried into a merged store).
SHARD_ATTRS = ("shard", "inputs")
#: Optional per-video float datasets a store may hold beside ``features``.
FLAG_DATASETS = ("padded_s",)
_STR = h5py.string_dtype("utf-8")


def _attr_text(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _check_attrs(attrs: Mapping, where) -> dict[str, str]:
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        raise InputError(where, f"feature store attributes lack {', '.join(missing)}")
    out = {k: _attr_text(v) for k, v in attrs.items()}
    out["avvp_version"] = out.get("avvp_version", __version__)
    return out


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


def merge_stores(paths: Sequence[str | Path], out: str | Path) -> int:
    """Merge shard stores (in the order given) into one store, atomically, video by video.

    The shards must agree on role, extractor, settings and weights, and on (T, D) where they hold
    videos; a video id must not appear twice. Returns the number of videos merged.
    """
    if not paths:
        raise InputError(out, "no shard stores to merge")
    attrs0 = read_attrs(paths[0])
    total, shape = 0, None
    seen: dict[str, Path] = {}
    for p in paths:
        attrs = read_attrs(p)
        for key in IDENTITY_ATTRS:
            if attrs.get(key) != attrs0.get(key):
                raise InputError(p, f"attribute '{key}' differs from {paths[0]}: "
                                 f"{attrs.get(key)!r} vs {attrs0.get(key)!r}")
        with _open(p) as h5:
            n, t, d = h5["features"].shape
            for vid in h5["video_ids"].asstr()[...]:
                if vid in seen:
                    raise InputError(p, f"video {vid} is also in {seen[vid]}")
                seen[vid] = Path(p)
        if n:
            if shape is not None and (t, d) != shape:
                raise InputError(p, f"features have shape (T, D) = {(t, d)}, other shards {shape}")
            shape = (t, d)
        elif shape is None and d:
            shape = (0, d)
        total += n
    t, d = shape if shape is not None else (0, 0)
    if total == 0:
        t = 0
    merged_attrs = {k: v for k, v in attrs0.items() if k != "avvp_version" and k not in SHARD_ATTRS}
    flags = [name for name in FLAG_DATASETS if any(name in read_flags(p) for p in paths)]
    extras = _merged_extras(paths)
    with store_writer(out, total, t, d, merged_attrs, flags=flags, extras=extras) as writer:
        row = 0
        for p in paths:
            with _open(p) as h5:
                ids = h5["video_ids"].asstr()[...]
                feats = h5["features"]
                values = {name: h5[name][...] if name in h5 else np.zeros(len(ids), np.float32)
                          for name in flags}
                for i, vid in enumerate(ids):
                    writer.write(row, vid, feats[i], extra={name: h5[name][i] for name in extras},
                                 **{name: v[i] for name, v in values.items()})
                    row += 1
    return total


def _merged_extras(paths: Sequence[str | Path]) -> dict[str, tuple]:
    """The extra datasets every shard holds, with their per-video shape (shards that hold videos
    must agree; empty shards may lack them)."""
    shapes: dict[str, tuple] = {}
    names: set[str] | None = None
    for p in paths:
        with _open(p) as h5:
            here = {name: h5[name].shape[1:] for name in extra_names(h5)}
            if not len(h5["video_ids"]):
                continue
        if names is not None and set(here) != names:
            raise InputError(p, f"extra datasets {sorted(here)}, other shards {sorted(names)}")
        names = set(here)
        for name, shape in here.items():
            if shapes.setdefault(name, shape) != shape:
                raise InputError(p, f"{name} has per-video shape {shape}, other shards {shapes[name]}")
    return shapes


#: Datasets of a store that are not extras.
_RESERVED = ("video_ids", "features", *FLAG_DATASETS)


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


class PartialFile:
    """Per-video results of an unfinished shard, appended every few videos (resume support).

    The file lives beside the shard output (``<shard>.partial.h5``); its attributes record what
    produced it, so a restart with other settings or weights starts afresh. Each video is one
    dataset under ``videos/``, marked complete only after its data are written.
    """

    def __init__(self, path: str | Path, attrs: Mapping):
        self.path = Path(path)
        self.attrs = {k: _attr_text(v) for k, v in attrs.items()}

    def done(self) -> list[str]:
        """Ids already stored by an earlier run with the same attributes (others: file removed)."""
        if not self.path.exists():
            return []
        try:
            with h5py.File(self.path, "r") as h5:
                stored = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in h5.attrs.items()}
                if any(stored.get(k) != v for k, v in self.attrs.items()):
                    reason = "it was made with other settings or weights"
                    ids = None
                else:
                    group = h5.get("videos")
                    ids = [] if group is None else [k for k, d in group.items() if d.attrs.get("complete")]
        except OSError as exc:
            reason, ids = f"it cannot be read ({exc})", None
        if ids is None:
            import logging

            logging.getLogger(__name__).warning("discarding %s: %s", self.path, reason)
            self.remove()
            return []
        return ids

    def append(self, items: Sequence[tuple]) -> None:
        """Add finished videos ``(video_id, (T, D) array[, {flag: value}[, {extra: array}]])`` and
        flush them to disk (extras go to ``extras/<name>/<video_id>``)."""
        if not items:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(self.path, "a") as h5:
            if not h5.attrs:
                h5.attrs.update(self.attrs)
            group = h5.require_group("videos")
            for vid, feature, *more in items:
                if vid in group:
                    del group[vid]
                dset = group.create_dataset(vid, data=np.asarray(feature, dtype=np.float32))
                for name, value in (more[0] if more else {}).items():
                    dset.attrs[name] = float(value)
                for name, value in (more[1] if len(more) > 1 else {}).items():
                    extra = h5.require_group(f"extras/{name}")
                    if vid in extra:
                        del extra[vid]
                    extra.create_dataset(vid, data=np.asarray(value, dtype=np.float32))
                h5.flush()
                dset.attrs["complete"] = 1
            h5.flush()

    @contextmanager
    def reader(self) -> Iterator[h5py.Group]:
        """The open ``videos`` group (dataset per video id; a video's extras are under
        ``videos.file["extras"][name][video_id]``)."""
        with h5py.File(self.path, "r") as h5:
            yield h5["videos"]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
