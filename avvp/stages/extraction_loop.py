"""The loop of one extraction job (:func:`avvp.stages.extraction.extract_job`): per-role state, the clips to
decode, decoding, batching and embedding them, and writing each role's store and failure table."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from tqdm import tqdm

from avvp.infra import parquet_reader as parquet
from avvp.infra.atomic import write_parquet
from avvp.core.batching import Batcher
from avvp.stages.download import clip_window
from avvp.infra.errors import InputError
from avvp.stages.extraction_shards import TABLE_COLUMNS, ShardReport, partial_path
from avvp.stages.extractors.base import AUDIO_PAD_NOTE_S
from avvp.stages.extractors.joint import ClipDecoder, RoleUnits
from avvp.core.feature_store import PartialFile, read_attrs, read_ids, store_writer
from avvp.infra.prefetch import prefetch

log = logging.getLogger(__name__)


class _Role:
    """One role's state during a job: its extractor, partial file, batcher and failures."""

    def __init__(self, role: str, extractor, out: Path, failures_out: Path | None, rows: pd.DataFrame,
                 shard: str, inputs: str, batch_size: int, checkpoint_every: int):
        self.role, self.extractor, self.out, self.failures_out = role, extractor, out, failures_out
        self.attrs = {**extractor.describe(), "inputs": inputs}
        self.kept = _reusable(out, failures_out, self.attrs)
        self.partial = PartialFile(partial_path(out), {**extractor.describe(), "shard": shard})
        self.done = set() if self.kept else set(self.partial.done()) & set(rows["video_id"])
        self.batcher = Batcher(extractor.forward, batch_size)
        self.failures: list[tuple[str, str, str, str]] = []
        self.finished: list[tuple] = []
        self.padded: dict[str, float] = {}
        self.checkpoint_every = checkpoint_every

    def fail(self, video_id: str, stage: str, reason: str, severity: str = "error") -> None:
        if severity == "error":
            log.warning("%s: %s: %s", self.role, video_id, reason)
        self.failures.append((video_id, stage, reason, severity))

    def save(self) -> None:
        self.partial.append(self.finished)
        self.finished.clear()


def _reusable(out: Path, failures_out: Path | None, attrs: Mapping) -> bool:
    """Whether an existing shard store (and its failure table) is what this job would write."""
    if failures_out is None or not out.exists() or not failures_out.exists():
        return False
    try:
        stored = read_attrs(out)
        parquet.read_table(failures_out, TABLE_COLUMNS, "failure table")
    except InputError:
        return False
    return all(stored.get(k) == v for k, v in attrs.items() if k != "avvp_version")


def _plan(rows: pd.DataFrame, active: list[str], state: dict[str, _Role]) -> list[tuple]:
    """The clips to decode as (video_id, path, start, duration, roles needing it); clips without
    a path become failures of the roles needing them."""
    todo = []
    for row in rows.itertuples(index=False):
        need = [r for r in active if row.video_id not in state[r].done]
        if not need:
            continue
        if row.path is None or pd.isna(row.path) or str(row.path) == "":
            for r in need:
                state[r].fail(row.video_id, "clip", "no clip")
            continue
        start, end = clip_window(row.path, row.start, row.end)
        todo.append((row.video_id, str(row.path), start, end - start, tuple(need)))
    return todo


def _run(todo: list[tuple], active: list[str], state: dict[str, _Role], extractors: Mapping,
         settings: Mapping, shard: int, shards: int, total: int,
         on_video: Callable[[int, str], None] | None, progress: bool) -> float:
    """Decode, batch and embed every clip of ``todo``; returns the seconds spent waiting for
    decoded clips."""
    decoder = ClipDecoder({r: extractors[r] for r in active})

    def load(item: tuple) -> dict[str, RoleUnits]:
        _, path, start, duration, need = item
        return decoder(path, start, duration, need)

    pending = {vid: len(need) for vid, *_, need in todo}
    stored = {vid: 0 for vid in pending}
    count = sum(all(vid in state[r].done for r in active) for vid in state[active[0]].done)
    bar = tqdm(total=total, initial=total - len(todo), unit="clip",
               desc=f"{'+'.join(active)} shard {shard} of {shards}", disable=not progress,
               mininterval=0.1 if sys.stderr.isatty() else 15.0)

    def settle(role: _Role, vid: str, rows: np.ndarray | None, reason: str | None, stage: str) -> None:
        """One role is done with one video: keep its rows (or its failure); once every role is,
        count the clip."""
        nonlocal count
        if rows is None:
            role.fail(vid, stage, reason)
        else:
            flags = {"padded_s": role.padded.pop(vid, 0.0)} if role.extractor.stream == "audio" else {}
            features, extras = role.extractor.assemble(rows)
            role.finished.append((vid, features, flags, extras))
            stored[vid] += 1
            if len(role.finished) >= role.checkpoint_every:
                role.save()
        pending[vid] -= 1
        if pending[vid] == 0:
            bar.update(1)
            if stored[vid]:
                count += 1
                if on_video is not None:
                    on_video(count, vid)

    def record(role: _Role, finished) -> None:
        for vid, rows, reason in finished:
            settle(role, vid, rows, reason, "forward")

    cuda = any(extractors[r].device.type == "cuda" for r in active)
    loaded = prefetch(load, todo, settings["workers"], settings["prefetch"], settings["loader"], pin_memory=cuda)
    wait = 0.0
    try:
        while True:
            t0 = time.perf_counter()
            got = next(loaded, None)
            wait += time.perf_counter() - t0
            if got is None:
                break
            (vid, *_, need), results, reason = got
            for r in need:
                role = state[r]
                units = results[r] if results is not None else RoleUnits(None, reason)
                if units.units is None:
                    settle(role, vid, None, units.reason, "decode")
                    continue
                if units.padded_s > 0:
                    role.padded[vid] = units.padded_s
                record(role, role.batcher.add(vid, units.units))
        for r in active:
            record(state[r], state[r].batcher.flush())
    finally:
        loaded.close()  # stops the decoding threads or processes
        for r in active:
            state[r].save()
        bar.close()
    return wait


def _finish(role: _Role, rows: pd.DataFrame, shard: int, shards: int) -> ShardReport:
    """Write the role's shard store and failure table (unless kept) and report."""
    if role.kept:
        table = parquet.read_table(role.failures_out, TABLE_COLUMNS, "failure table")
        ids = read_ids(role.out)
        return ShardReport(out=role.out, failures=table, videos=len(ids), resumed=len(ids),
                           shape=(len(ids),), ids=ids, kept=True)
    failed = {vid for vid, *_ in role.failures}
    ids = [v for v in rows["video_id"] if v not in failed]
    ids, shape = _write_final(role, ids)
    _warn_padding(role, ids)
    order = {v: i for i, v in enumerate(rows["video_id"])}
    role.failures.sort(key=lambda f: (order[f[0]], f[3] != "error"))
    table = pd.DataFrame(role.failures, columns=list(TABLE_COLUMNS)).astype(str)
    if role.failures_out is not None:
        write_parquet(role.failures_out, table)
    role.partial.remove()
    report = ShardReport(out=role.out, failures=table, videos=len(ids), resumed=len(role.done),
                         forward_s=role.batcher.forward_s, shape=shape, ids=ids)
    log.info("%s shard %d of %d: %d videos, %d failures -> %s", role.role, shard, shards, len(ids),
             report.errors, role.out)
    return report


def _write_final(role: _Role, ids: list[str]) -> tuple[list[str], tuple]:
    """Stream the shard's videos (in manifest order) from the partial file into the store.

    Videos whose features have another shape than most (a window of another length) cannot share
    the store: they become failures. Returns the ids stored and the store's shape.
    """
    audio = role.extractor.stream == "audio"
    flags = ("padded_s",) if audio else ()
    dim = role.extractor.dim
    if not ids:
        with store_writer(role.out, 0, 0, dim, role.attrs, flags=flags):
            pass
        return [], (0, 0, dim)
    with role.partial.reader() as videos:
        extras = videos.file.get("extras", {})
        # a video's shape: its features' and its extras' (a teacher's scores follow the window)
        shapes = {vid: (videos[vid].shape, *(extras[n][vid].shape for n in sorted(extras))) for vid in ids}
        common = Counter(shapes.values()).most_common(1)[0][0]  # ties: the shape seen first
        for vid in ids:
            if shapes[vid] != common:
                role.fail(vid, "store", f"features of shape {_shown(shapes[vid])}, the other videos of the "
                          f"shard {_shown(common)} (its window has another length)")
        ids = [v for v in ids if shapes[v] == common]
        t, d = common[0]
        extra_shapes = dict(zip(sorted(extras), common[1:]))
        with store_writer(role.out, len(ids), t, d, role.attrs, flags=flags, extras=extra_shapes) as writer:
            for i, vid in enumerate(ids):
                data = videos[vid]
                values = {"padded_s": float(data.attrs.get("padded_s", 0.0))} if audio else {}
                extra = {name: extras[name][vid][...] for name in extra_shapes}
                writer.write(i, vid, data[...], extra=extra, **values)
                if audio:
                    role.padded[vid] = values["padded_s"]
    return ids, (len(ids), t, d)


def _shown(shapes: tuple) -> str:
    """A video's shapes for a message: the features' alone, or with its extras'."""
    return str(shapes[0]) if len(shapes) == 1 else " and ".join(map(str, shapes))


def _warn_padding(role: _Role, ids: list[str]) -> None:
    """A warning row for each stored video whose audio was padded with silence noticeably."""
    if role.extractor.stream != "audio":
        return
    for vid in ids:
        padded = role.padded.get(vid, 0.0)
        tolerance = role.extractor.audio_tolerance
        if padded > tolerance:
            role.fail(vid, "decode", f"the audio stream leaves {padded:.2f} s of the window uncovered, "
                      f"more than features.audio_tolerance ({tolerance:g} s); kept (the audio covers at "
                      f"least features.audio_min_coverage {role.extractor.audio_min_coverage:g} of the "
                      "window), padded with silence: its audio features there describe silence",
                      severity="degraded")
        elif padded > AUDIO_PAD_NOTE_S:
            role.fail(vid, "decode", f"the audio stream leaves {padded:.2f} s of the window uncovered; "
                      f"padded with silence (features.audio_tolerance {tolerance:g} s)", severity="warning")
