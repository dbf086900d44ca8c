"""The pooled frame store: frame features averaged to one row per segment, computed once.

The official frame features have 8 rows per segment (80 per 10-s video, 2048-d): 6.5 GB for LLP.
HAN's first operation on them is linear, so averaging each segment's 8 rows first is exact
(docs/architecture.md), and training, refinement and prediction only ever need the averages.
``avvp pool-frames`` writes them once, beside the stores, as ``frame_pooled.h5`` (970 MB for LLP);
:func:`frame_store` makes every reader use it instead of reading and pooling the 80-row store again.

The pooled store records which ``frame.h5`` it was made from (size, modification time, number of
videos, attributes). When ``frame.h5`` has changed since, the pooled store is ignored with a
warning and the 80-row store is pooled while it is read (slower, same result).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from tqdm import tqdm

from avvp import layout
from avvp.core.feature_roles import store_file
from avvp.infra.atomic import remove_stale
from avvp.infra.errors import InputError
from avvp.core.feature_store import read_attrs, read_chunks, read_ids, store_shape, store_writer

log = logging.getLogger(__name__)

#: The pooled store's and the 80-row frame store's file names (the results layout's).
POOLED = Path(layout.POOLED_FRAMES).name
FRAME = store_file(".", "frame").name
SOURCE_ATTR = "pooled_from"


def pool_segments(x: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Average groups of k consecutive rows: (N, k·T, D) → (N, T, D)."""
    n, rows, d = x.shape
    if rows == n_segments:
        return x
    return x.reshape(n, n_segments, rows // n_segments, d).mean(dim=2)


def source_signature(path: str | Path) -> dict:
    """What identifies a frame store's content for :func:`frame_store`."""
    path = Path(path)
    stat = path.stat()
    shape = list(store_shape(path))
    return {"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "shape": shape,
            "attrs": {k: v for k, v in read_attrs(path).items() if k != SOURCE_ATTR}}


def frame_store(features_dir: str | Path) -> Path:
    """The frame store readers should use: ``frame_pooled.h5`` when it is there and was made
    from the current ``frame.h5`` (or ``frame.h5`` is gone), else ``frame.h5``."""
    folder = Path(features_dir)
    pooled, full = folder / POOLED, folder / FRAME
    if not pooled.exists():
        return full
    if not full.exists():
        return pooled
    try:
        recorded = json.loads(read_attrs(pooled).get(SOURCE_ATTR, "{}"))
    except json.JSONDecodeError:
        recorded = {}
    if recorded == source_signature(full):
        return pooled
    log.warning("%s was not made from the current %s (rerun `avvp pool-frames`); pooling %s while "
                "reading it instead (slower, same result)", pooled, full.name, full.name)
    return full


def segments_of(features_dir: str | Path) -> int:
    """Segments per video: the rows of the audio store (one per segment)."""
    path = store_file(features_dir, "audio")
    if not path.exists():
        raise InputError(path, "audio feature store not found (it gives the segments per video)")
    return int(store_shape(path)[1])


def pool_store(features_dir: str | Path, progress: bool = True) -> Path:
    """Write ``<features_dir>/frame_pooled.h5`` from ``frame.h5`` (atomically, chunk by chunk).

    Raises:
        InputError: ``frame.h5`` is missing, or its rows per video are not a multiple of the
            segments per video.
    """
    folder = Path(features_dir)
    src, out = folder / FRAME, folder / POOLED
    if not src.exists():
        raise InputError(src, "frame feature store not found (avvp merge-features or import-features makes it)")
    n_segments = segments_of(folder)
    signature = source_signature(src)
    n, rows, dim = signature["shape"]
    if rows % n_segments or not rows:
        raise InputError(src, f"{rows} frame rows per video is not a multiple of the {n_segments} "
                              "segments per video")
    ids = read_ids(src)
    attrs = {**signature["attrs"], SOURCE_ATTR: json.dumps(signature, sort_keys=True)}
    for stale in remove_stale(out):
        log.info("removed %s (left by an interrupted run)", stale)
    with store_writer(out, n, n_segments, dim, attrs) as writer:
        bar = tqdm(total=n, desc="pool frames", unit="video", disable=not progress)
        for start, array in read_chunks(src, ids):
            pooled = pool_segments(torch.from_numpy(array), n_segments).numpy()
            for i, row in enumerate(pooled):
                writer.write(start + i, ids[start + i], row)
            bar.update(len(array))
        bar.close()
    log.info("pooled %d videos: %d -> %d rows each -> %s", n, rows, n_segments, out)
    return out
