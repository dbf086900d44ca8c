"""Extract one role's features for one shard of the manifest, resumably.

The shard's clips are decoded in background threads or processes (``loader``, ``workers``,
``prefetch`` clips ahead; :mod:`avvp.prefetch`) while the model runs. Model input units (VGGish
examples, frames, 8-frame clips) are batched across videos (``batch_size`` units per forward pass)
in inference mode, on CUDA when present (``device: auto``). Finished videos are appended to
``<shard>.partial.h5`` every ``checkpoint_every`` videos (and when the run stops on an error), so an
interrupted shard resumes where it stopped. The shard store and the failure table (``video_id``,
``stage``, ``reason``) are written atomically at the end; a clip that cannot be decoded becomes a
failure row and the shard goes on with the others. A clip already cut to its window (the demo's,
the official download's) is decoded over ``[0, end - start)``; a full source video listed in its
folder's ``downloads.parquet`` (``avvp download``) over ``[start, end)``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import parquet
from .atomic import write_parquet
from .device import resolve_device
from .download import clip_window
from .errors import ConfigError, InputError
from .extractors import create_extractor
from .feature_store import FAILURE_COLUMNS, ROLES, PartialFile, store_writer
from .prefetch import MODES, prefetch
from .settings import merge_settings, parse_settings, require_range

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("video_id", "start", "end", "path")

#: The ``features`` config section; role sections are checked by their extractor.
DEFAULTS = {
    "shards": 4,
    "device": "auto",
    "batch_size": 64,
    "missing_audio": "error",
    "threads": 2,
    "workers": 1,
    "loader": "thread",
    "prefetch": 4,
    "checkpoint_every": 16,
    "official": None,
    "audio": {},
    "frame": {},
    "clip": {},
}


def feature_settings(given: str | Mapping | None) -> dict:
    """The ``features`` settings (``--settings`` value) merged over :data:`DEFAULTS`, checked."""
    settings = merge_settings(DEFAULTS, parse_settings(given), "features")
    for key in ("shards", "batch_size", "threads", "workers", "prefetch", "checkpoint_every"):
        require_range(f"features.{key}", settings[key], 1)
    if settings["loader"] not in MODES:
        raise ConfigError(f"features.loader must be one of {', '.join(MODES)}, "
                          f"got {settings['loader']!r}")
    if settings["missing_audio"] not in ("error", "silence"):
        raise ConfigError(f"features.missing_audio must be error or silence, "
                          f"got {settings['missing_audio']!r}")
    return settings


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest (``avvp manifest``) with the columns extraction needs."""
    table = parquet.read_table(path, MANIFEST_COLUMNS, "manifest")
    check_unique(table, path)
    return table.reset_index(drop=True)


def check_unique(manifest: pd.DataFrame, where=None) -> None:
    """Raise InputError if a video id appears more than once."""
    dup = manifest["video_id"][manifest["video_id"].duplicated()]
    if len(dup):
        raise InputError(where, f"video id {dup.iloc[0]} appears more than once in the manifest")


def shard_rows(manifest: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """Shard ``shard`` of ``shards``: a contiguous block of manifest rows (order kept)."""
    if not 0 <= shard < shards:
        raise ConfigError(f"shard {shard} is outside 0..{shards - 1}")
    bounds = np.linspace(0, len(manifest), shards + 1).round().astype(int)
    return manifest.iloc[bounds[shard]:bounds[shard + 1]].reset_index(drop=True)


def partial_path(out: str | Path) -> Path:
    """Where the partial results of shard output ``out`` are kept (``<shard>.partial.h5``)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.partial{out.suffix or '.h5'}")


@dataclass
class ShardReport:
    """What one shard run did."""

    out: Path
    failures: pd.DataFrame
    videos: int = 0
    resumed: int = 0
    wall_s: float = 0.0
    forward_s: float = 0.0
    shape: tuple[int, ...] = ()
    ids: list[str] = field(default_factory=list)

    @property
    def outside_share(self) -> float:
        """Share of wall time spent outside the model's forward passes."""
        return 1.0 - self.forward_s / self.wall_s if self.wall_s > 0 else 0.0


class Batcher:
    """Batches model units across videos; returns each video's (n_units, D) rows once complete."""

    def __init__(self, forward: Callable[[torch.Tensor], np.ndarray], batch_size: int):
        self._forward = forward
        self._batch = batch_size
        self._queue: deque[list] = deque()  # [video_id, units, next unit to send]
        self._out: dict[str, list[np.ndarray]] = {}
        self._buffered = 0
        self.forward_s = 0.0

    def add(self, video_id: str, units: torch.Tensor) -> list[tuple[str, np.ndarray]]:
        self._queue.append([video_id, units, 0])
        self._out[video_id] = []
        self._buffered += len(units)
        return self._run(self._batch)

    def flush(self) -> list[tuple[str, np.ndarray]]:
        return self._run(1)

    def _run(self, minimum: int) -> list[tuple[str, np.ndarray]]:
        done: list[tuple[str, np.ndarray]] = []
        while self._buffered >= minimum and self._buffered > 0:
            parts, owners, room = [], [], self._batch
            for entry in self._queue:
                if room == 0:
                    break
                vid, units, pos = entry
                take = min(room, len(units) - pos)
                parts.append(units[pos:pos + take])
                owners.append((vid, take))
                entry[2] += take
                room -= take
            start = time.perf_counter()
            rows = self._forward(torch.cat(parts) if len(parts) > 1 else parts[0])
            self.forward_s += time.perf_counter() - start
            offset = 0
            for vid, take in owners:
                self._out[vid].append(rows[offset:offset + take])
                offset += take
            self._buffered -= offset
            while self._queue and self._queue[0][2] == len(self._queue[0][1]):
                vid = self._queue.popleft()[0]
                done.append((vid, np.concatenate(self._out.pop(vid))))
        return done


def extract_shard(manifest: pd.DataFrame, role: str, settings: Mapping, shard: int, shards: int,
                  out: str | Path, failures_out: str | Path | None = None, *,
                  on_video: Callable[[int, str], None] | None = None, progress: bool = True,
                  extractor=None) -> ShardReport:
    """Extract ``role`` features of one manifest shard into ``out`` (and its failure table).

    Args:
        manifest: the manifest table (see :func:`read_manifest`).
        role: ``audio``, ``frame`` or ``clip``.
        settings: the ``features`` settings (see :func:`feature_settings`).
        shard, shards: which contiguous block of the manifest.
        out: the shard store (.h5); ``<out stem>.partial.h5`` beside it holds partial results.
        failures_out: Parquet failure table (video_id, stage, reason); None: not written.
        on_video: called as ``on_video(n_done, video_id)`` after each finished video (a hook for
            tests and progress reporting; an exception there stops the run after saving).
        progress: show a progress bar.
        extractor: an already built extractor (else one is built from ``settings``).

    Returns:
        A :class:`ShardReport` (videos stored, failures, timings).
    """
    if role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    settings = feature_settings(settings)
    out = Path(out)
    if extractor is None:
        extractor = create_extractor(settings[role], role, device=resolve_device(settings["device"]),
                                     missing_audio=settings["missing_audio"])
    wall0 = time.perf_counter()  # throughput: model construction not included
    check_unique(manifest)
    rows = shard_rows(manifest, shard, shards)
    attrs = extractor.describe()
    partial = PartialFile(partial_path(out), {**attrs, "shard": f"{shard}/{shards}"})
    done = set(partial.done()) & set(rows["video_id"])
    failures: list[tuple[str, str, str]] = []
    todo = []
    for row in rows.itertuples(index=False):
        if row.video_id in done:
            continue
        if row.path is None or pd.isna(row.path) or str(row.path) == "":
            failures.append((row.video_id, "clip", "no clip"))
        else:
            start, end = clip_window(row.path, row.start, row.end)
            todo.append((row.video_id, str(row.path), start, end - start))
    if done:
        log.info("%s shard %d: resuming, %d of %d videos already done", role, shard, len(done), len(rows))

    def load(item: tuple[str, str, float, float]) -> torch.Tensor:
        _, path, start, duration = item
        need = extractor.units(duration)
        if need <= 0:
            raise InputError(path, f"window of {duration:g} s holds no whole second")
        units = extractor.load(path, duration, start)
        if len(units) != need:
            raise InputError(path, f"decoded {len(units)} model inputs, expected {need}")
        return units

    batcher = Batcher(extractor.forward, settings["batch_size"])
    finished: list[tuple[str, np.ndarray]] = []
    count = len(done)
    bar = tqdm(total=len(rows), initial=len(done) + len(failures), unit="clip",
               desc=f"{role} shard {shard} of {shards}", disable=not progress,
               mininterval=0.1 if sys.stderr.isatty() else 15.0)

    def record(items: list[tuple[str, np.ndarray]]) -> None:
        nonlocal count
        for vid, feat in items:
            finished.append((vid, feat))
            count += 1
            bar.update(1)
            if len(finished) >= settings["checkpoint_every"]:
                partial.append(finished)
                finished.clear()
            if on_video is not None:
                on_video(count, vid)

    loaded = prefetch(load, todo, settings["workers"], settings["prefetch"], settings["loader"],
                      pin_memory=extractor.device.type == "cuda")
    try:
        for (video_id, *_), units, reason in loaded:
            if units is None:
                log.warning("%s: %s: %s", role, video_id, reason)
                failures.append((video_id, "decode", reason))
                bar.update(1)
                continue
            record(batcher.add(video_id, units))
        record(batcher.flush())
    finally:
        loaded.close()  # stops the decoding threads or processes
        partial.append(finished)
        finished.clear()
        bar.close()

    order = {v: i for i, v in enumerate(rows["video_id"])}
    failures.sort(key=lambda f: order[f[0]])
    failure_table = pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)).astype(str)
    if failures_out is not None:
        write_parquet(failures_out, failure_table)
    failed = set(failure_table["video_id"])
    ids = [v for v in rows["video_id"] if v not in failed]
    shape = _write_final(out, ids, partial, attrs, extractor.dim)
    partial.remove()
    report = ShardReport(out=out, failures=failure_table, videos=len(ids), resumed=len(done),
                         wall_s=time.perf_counter() - wall0, forward_s=batcher.forward_s,
                         shape=shape, ids=ids)
    log.info("%s shard %d of %d: %d videos, %d failures -> %s", role, shard, shards, len(ids),
             len(failure_table), out)
    return report


def _write_final(out: Path, ids: list[str], partial: PartialFile, attrs: Mapping, dim: int) -> tuple:
    """Stream the shard's videos (in manifest order) from the partial file into ``out``."""
    if not ids:
        with store_writer(out, 0, 0, dim, attrs):
            pass
        return (0, 0, dim)
    with partial.reader() as videos:
        shapes = {vid: videos[vid].shape for vid in ids}
        distinct = sorted(set(shapes.values()))
        if len(distinct) > 1:
            example = {s: next(v for v in ids if shapes[v] == s) for s in distinct}
            raise InputError(out, "videos have different feature shapes (clip windows of "
                             f"different lengths?): {example}")
        t, d = distinct[0]
        with store_writer(out, len(ids), t, d, attrs) as writer:
            for i, vid in enumerate(ids):
                writer.write(i, vid, videos[vid][...])
    return (len(ids), t, d)
