"""Extract features of one shard of the manifest: one decode per clip for all roles, resumably.

One extraction job (:func:`extract_job`) serves any of the three roles (``audio``, ``frame``,
``clip``) at once: each clip is decoded once (:class:`avvp.extractors.joint.ClipDecoder`: one demux
pass gives the 16-kHz audio and the 8T frames the frame and clip roles share) in background
threads or worker processes (``loader``, ``workers``, ``prefetch`` clips ahead;
:mod:`avvp.prefetch`) while the models, all resident, compute. Model input units (VGGish examples,
frames, 8-frame clips) are batched across videos per role (``batch_size``, never joining inputs of
different shapes, :mod:`avvp.batching`) and run as :mod:`avvp.extractors.engine` says (``engine``,
``precision``).

Each role writes its own shard store and failure table, as if it had run alone. A clip that fails
in one role (no audio stream, too short, a failed forward pass) is a row of that role's failure
table (``video_id``, ``stage``, ``reason``, ``severity``) and still gives the roles that worked;
an audio stream that leaves part of the window uncovered is padded with silence and recorded in
the audio store (``padded_s``): up to ``audio_tolerance`` seconds as a ``warning`` row, more as a
``degraded`` row as long as the audio covers at least ``audio_min_coverage`` of the window (a
short audio track keeps the video and its visual features); less coverage fails the audio role
(an ``error`` row; the other roles still store the video).
Finished videos are appended to ``<shard>.partial.h5`` (per role) every ``checkpoint_every``
videos and when the run stops on an error, so a killed job resumes where it stopped; the stores
and tables are written atomically at the end.

A role whose shard store and failure table already exist, made with the same settings and weights
from the same clips (store attributes ``settings``, ``weights`` and ``inputs``), is kept as it is:
rerunning the job after one role's settings changed recomputes that role alone.

A clip already cut to its window (the demo's, the official download's) is decoded over
``[0, end - start)``; a full source video listed in its folder's ``downloads.parquet``
(``avvp download``) over ``[start, end)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from . import parquet
from .atomic import write_parquet
from .batching import Batcher
from .device import resolve_device
from .download import clip_window
from .errors import ConfigError, InputError
from .extractors import create_extractor
from .extractors.base import AUDIO_MIN_COVERAGE, AUDIO_PAD_NOTE_S, AUDIO_TOLERANCE_S
from .extractors.engine import check_engine
from .extractors.joint import ClipDecoder, RoleUnits
from .feature_store import (EXTRACT_ROLES, FAILURE_COLUMNS, TEACHER_ROLES, PartialFile, read_attrs, read_ids,
                            store_writer)
from .prefetch import MODES, prefetch
from .settings import merge_settings, parse_settings, require_range

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("video_id", "start", "end", "path")
#: Columns of an extraction failure table: the common ones plus ``severity`` (error: not stored |
#: degraded: stored, much of the audio padded with silence | warning: stored, a little padded).
TABLE_COLUMNS = (*FAILURE_COLUMNS, "severity")

#: The ``features`` config section; role sections are checked by their extractor.
DEFAULTS = {
    "shards": 4,
    "device": "auto",
    # model inputs per forward pass: one number for every role, or one per role (the fastest per
    # unit on 2 CPU cores; smaller batches also compile faster, see docs/benchmarks.md); a teacher's
    # "auto": CPU_BATCH on the CPU, sized to the free memory of its GPU on CUDA (docs/teachers.md)
    "batch_size": {"audio": 20, "frame": 20, "clip": 5, "clip_image": "auto", "clap_audio": "auto"},
    "missing_audio": "error",
    "audio_tolerance": AUDIO_TOLERANCE_S,
    "audio_min_coverage": AUDIO_MIN_COVERAGE,
    "engine": "jit",
    "threads": 2,
    "workers": 1,
    "loader": "thread",
    "prefetch": 4,
    "checkpoint_every": 16,
    "official": None,
    "audio": {},
    "frame": {},
    "clip": {},
    # VALOR's teachers (docs/teachers.md): extracted by the workflow only when listed here
    "teachers": [],
    "clip_image": {},
    "clap_audio": {},
}


def feature_settings(given: str | Mapping | None) -> dict:
    """The ``features`` settings (``--settings`` value) merged over :data:`DEFAULTS`, checked."""
    settings = merge_settings(DEFAULTS, parse_settings(given), "features")
    for key in ("shards", "threads", "workers", "prefetch", "checkpoint_every"):
        require_range(f"features.{key}", settings[key], 1)
    for role in EXTRACT_ROLES:
        require_range(f"features.batch_size ({role})", role_batch(settings, role), 1)
    teachers = settings["teachers"] or []
    if not isinstance(teachers, list) or any(t not in TEACHER_ROLES for t in teachers):
        raise ConfigError(f"features.teachers must be a list of some of {', '.join(TEACHER_ROLES)}, "
                          f"got {teachers!r}")
    require_range("features.audio_tolerance", settings["audio_tolerance"], 0)
    require_range("features.audio_min_coverage", settings["audio_min_coverage"], 0, 1)
    if settings["loader"] not in MODES:
        raise ConfigError(f"features.loader must be one of {', '.join(MODES)}, "
                          f"got {settings['loader']!r}")
    if settings["missing_audio"] not in ("error", "silence"):
        raise ConfigError(f"features.missing_audio must be error or silence, "
                          f"got {settings['missing_audio']!r}")
    check_engine(settings["engine"], "features")
    return settings


#: A teacher's batch for ``batch_size: auto`` on the CPU (the fastest per unit on 2 CPU cores).
CPU_BATCH = {"clip_image": 10, "clap_audio": 11}


def role_batch(settings: Mapping, role: str, extractor=None) -> int:
    """The batch size of ``role``: ``batch_size`` itself, or its entry for the role. ``auto`` (the
    teachers only) is :data:`CPU_BATCH`, or with an ``extractor`` on CUDA its
    :meth:`~avvp.extractors.teacher.TeacherExtractor.gpu_batch` (sized to free GPU memory)."""
    value = settings["batch_size"]
    if isinstance(value, Mapping):
        if role not in value:
            raise ConfigError(f"features.batch_size has no entry for {role}")
        value = value[role]
    if value == "auto":
        if role not in CPU_BATCH:
            raise ConfigError(f"features.batch_size ({role}): auto is for the teachers "
                              f"({', '.join(CPU_BATCH)}) only")
        on_gpu = extractor is not None and extractor.device.type == "cuda"
        return extractor.gpu_batch() if on_gpu else CPU_BATCH[role]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"features.batch_size ({role}) must be an integer, got {value!r}")
    return value


def build_extractors(settings: Mapping, roles: Sequence[str]) -> dict:
    """The extractors of ``roles`` as the ``features`` settings describe them (models built)."""
    device = resolve_device(settings["device"])
    return {role: create_extractor(settings[role], role, device=device,
                                   missing_audio=settings["missing_audio"],
                                   audio_tolerance=settings["audio_tolerance"], engine=settings["engine"],
                                   audio_min_coverage=settings["audio_min_coverage"],
                                   batch_size=role_batch(settings, role))
            for role in roles}


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


def inputs_identity(rows: pd.DataFrame) -> str:
    """What a shard is made from: sha256 of its rows (id, window, clip path, size, mtime)."""
    digest = hashlib.sha256()
    for row in rows.itertuples(index=False):
        path = "" if row.path is None or pd.isna(row.path) else str(row.path)
        try:
            stat = os.stat(path) if path else None
        except OSError:
            stat = None
        stamp = (stat.st_size, stat.st_mtime_ns) if stat else None
        digest.update(json.dumps([row.video_id, float(row.start), float(row.end), path, stamp]).encode())
    return digest.hexdigest()


@dataclass
class ShardReport:
    """What one role of a shard run did."""

    out: Path
    failures: pd.DataFrame
    videos: int = 0
    resumed: int = 0
    wall_s: float = 0.0
    forward_s: float = 0.0
    shape: tuple[int, ...] = ()
    ids: list[str] = field(default_factory=list)
    kept: bool = False

    @property
    def outside_share(self) -> float:
        """Share of wall time spent outside the model's forward passes."""
        return 1.0 - self.forward_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def errors(self) -> int:
        """Failure rows that are errors (not warnings)."""
        return int((self.failures["severity"] == "error").sum()) if len(self.failures) else 0


@dataclass
class JobReport:
    """What one extraction job did: per role, the time the models waited for decoded clips and
    the time spent compiling them (tracing, profiling, fusing: part of the first passes)."""

    roles: dict[str, ShardReport]
    wall_s: float = 0.0
    wait_s: float = 0.0
    setup_s: float = 0.0
    clips: int = 0

    @property
    def forward_s(self) -> float:
        """Seconds in the models' forward passes (including :attr:`setup_s`)."""
        return sum(r.forward_s for r in self.roles.values())

    @property
    def wait_share(self) -> float:
        """Share of the job's wall time spent waiting for decoded input."""
        return self.wait_s / self.wall_s if self.wall_s > 0 else 0.0


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


def extract_job(manifest: pd.DataFrame, roles: Sequence[str], settings: Mapping, shard: int, shards: int,
                outs: Mapping[str, str | Path], failures: Mapping[str, str | Path] | None = None, *,
                on_video: Callable[[int, str], None] | None = None, progress: bool = True,
                extractors: Mapping | None = None) -> JobReport:
    """Extract the features of ``roles`` for one manifest shard, decoding each clip once.

    Args:
        manifest: the manifest table (see :func:`read_manifest`).
        roles: some of ``audio``, ``frame``, ``clip``.
        settings: the ``features`` settings (see :func:`feature_settings`).
        shard, shards: which contiguous block of the manifest.
        outs: role → shard store (.h5); ``<out stem>.partial.h5`` beside it holds partial results.
        failures: role → Parquet failure table (:data:`TABLE_COLUMNS`); None: not written (and
            no existing store is kept).
        on_video: called as ``on_video(n_done, video_id)`` after each clip is through every role
            (a hook for tests; an exception there stops the run after saving).
        progress: show a progress bar.
        extractors: role → an already built extractor (else built from ``settings``).

    Returns:
        A :class:`JobReport`.
    """
    roles = list(dict.fromkeys(roles))
    unknown = [r for r in roles if r not in EXTRACT_ROLES]
    if unknown or not roles:
        raise ConfigError(f"roles must be some of {', '.join(EXTRACT_ROLES)}, got {roles!r}")
    settings = feature_settings(settings)
    given = dict(extractors or {})
    missing = [r for r in roles if r not in given]
    built = {**given, **(build_extractors(settings, missing) if missing else {})}
    wall0 = time.perf_counter()  # throughput: model construction not included
    check_unique(manifest)
    rows = shard_rows(manifest, shard, shards)
    inputs = inputs_identity(rows)
    state = {r: _Role(r, built[r], Path(outs[r]), None if failures is None else Path(failures[r]), rows,
                      f"{shard}/{shards}", inputs, role_batch(settings, r, built[r]), settings["checkpoint_every"])
             for r in roles}
    active = [r for r in roles if not state[r].kept]
    for r in roles:
        if state[r].kept:
            log.info("%s shard %d: kept %s (same clips, settings and weights)", r, shard, state[r].out)
            os.utime(state[r].out)  # newer than its inputs, so Snakemake sees it as current
            os.utime(state[r].failures_out)
        elif state[r].done:
            log.info("%s shard %d: resuming, %d of %d videos already done", r, shard,
                     len(state[r].done), len(rows))
    todo = _plan(rows, active, state)
    report = JobReport(roles={}, clips=len(rows))
    if active:
        report.wait_s = _run(todo, active, state, built, settings, shard, shards, len(rows), on_video, progress)
    for r in roles:
        report.roles[r] = _finish(state[r], rows, shard, shards)
    report.wall_s = time.perf_counter() - wall0
    report.setup_s = sum(built[r].engine.setup_s for r in active)
    for r in roles:
        report.roles[r].wall_s = report.wall_s
    return report


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


def extract_shard(manifest: pd.DataFrame, role: str, settings: Mapping, shard: int, shards: int,
                  out: str | Path, failures_out: str | Path | None = None, *,
                  on_video: Callable[[int, str], None] | None = None, progress: bool = True,
                  extractor=None) -> ShardReport:
    """Extract one role's features of one manifest shard (:func:`extract_job` with one role).

    Returns:
        The role's :class:`ShardReport` (videos stored, failures, timings).
    """
    if role not in EXTRACT_ROLES:
        raise ConfigError(f"role must be one of {', '.join(EXTRACT_ROLES)}, got {role!r}")
    report = extract_job(manifest, [role], settings, shard, shards, {role: out},
                         None if failures_out is None else {role: failures_out}, on_video=on_video,
                         progress=progress, extractors=None if extractor is None else {role: extractor})
    return report.roles[role]
