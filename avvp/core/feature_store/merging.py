"""Merging the shard stores of one role into one store, checking that the shards agree."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from avvp.infra.errors import InputError
from avvp.core.feature_store.attributes import FLAG_DATASETS, IDENTITY_ATTRS, SHARD_ATTRS
from avvp.core.feature_store.reading import _open, extra_names, read_attrs, read_flags
from avvp.core.feature_store.writing import store_writer


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
