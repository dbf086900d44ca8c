"""Extract features of one shard of the manifest: one decode per clip for all roles, resumably.

One extraction job (:func:`extract_job`) serves any of the three roles (``audio``, ``frame``,
``clip``) at once: each clip is decoded once (:class:`avvp.stages.extractors.joint.ClipDecoder`: one demux
pass gives the 16-kHz audio and the 8T frames the frame and clip roles share) in background
threads or worker processes (``loader``, ``workers``, ``prefetch`` clips ahead;
:mod:`avvp.infra.prefetch`) while the models, all resident, compute. Model input units (VGGish examples,
frames, 8-frame clips) are batched across videos per role (``batch_size``, never joining inputs of
different shapes, :mod:`avvp.core.batching`) and run as :mod:`avvp.stages.extractors.engine` says (``engine``,
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

import logging
import os
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from avvp.infra.device import resolve_device
from avvp.infra.errors import ConfigError
from avvp.stages.extraction_loop import _finish, _plan, _Role, _run
from avvp.stages.extraction_shards import (MANIFEST_COLUMNS, TABLE_COLUMNS, JobReport, ShardReport, check_unique, inputs_identity,
                             partial_path, read_manifest, shard_rows)
from avvp.stages.extractors import create_extractor
from avvp.core.feature_store import EXTRACT_ROLES
from avvp.settings import complete_section

log = logging.getLogger(__name__)

def feature_settings(given: str | Mapping | None) -> dict:
    """The ``features`` settings (a ``--settings`` value) completed with the defaults of the
    settings definition (:mod:`avvp.settings`) and checked; role sections are checked again by
    their extractor, which fills in its own defaults (``defaults`` of the extractor class)."""
    return complete_section("features", given)


#: A teacher's batch for ``batch_size: auto`` on the CPU (the fastest per unit on 2 CPU cores).
CPU_BATCH = {"clip_image": 10, "clap_audio": 11}


def role_batch(settings: Mapping, role: str, extractor=None) -> int:
    """The batch size of ``role``: ``batch_size`` itself, or its entry for the role. ``auto`` (the
    teachers only) is :data:`CPU_BATCH`, or with an ``extractor`` on CUDA its
    :meth:`~avvp.stages.extractors.teacher.TeacherExtractor.gpu_batch` (sized to free GPU memory)."""
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


__all__ = ["MANIFEST_COLUMNS", "TABLE_COLUMNS", "JobReport", "ShardReport", "build_extractors",
           "check_unique", "extract_job", "extract_shard", "feature_settings", "inputs_identity", "partial_path",
           "read_manifest", "role_batch", "shard_rows"]
