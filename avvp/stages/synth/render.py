"""Render planned videos into MP4 clips (H.264 + AAC, written with PyAV) shard by shard.

Each clip ``<clips>/<youtube id>.mp4`` is written atomically and carries a fingerprint of what
it was rendered from (the video's plan entry and the render settings) in its ``comment`` tag.
A shard skips clips whose fingerprint already matches, so an interrupted or repeated run only
renders what is missing or out of date, and ends by listing its clips in ``shard_<i>.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping

import av
import numpy as np
import pandas as pd
from tqdm import tqdm

from avvp.core.annotations import FULL_FILE, read_weak
from avvp.infra.atomic import atomic_path, write_parquet
from avvp.infra.errors import ConfigError, InputError
from avvp.infra.paths import child
from avvp.stages.synth.audio import synthesize
from avvp.stages.synth.classes import CATALOGUE
from avvp.stages.synth.plan import PLAN_FILE, read_plan
from avvp.stages.synth.settings import PLAN_KEYS, plan_part, render_part
from avvp.stages.synth.visual import render_frames

log = logging.getLogger(__name__)

RENDER_VERSION = 1  # bump when the rendering code changes what a clip looks or sounds like
TAG_PREFIX = "avvp-synth:"
VIDEO_OPTIONS = {"preset": "ultrafast"}
AUDIO_OPTIONS = {"aac_coder": "fast"}


def fingerprint(video: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """A short hash of what a clip's content depends on: its plan entry, the render settings, the
    class signatures and :data:`RENDER_VERSION`."""
    key = {"version": RENDER_VERSION, "video": video, "render": render_part(settings),
           "duration": settings["duration"], "classes": repr(CATALOGUE)}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def clip_fingerprint(path: str | Path) -> str | None:
    """The fingerprint stored in a clip, or None if it is missing, unreadable or incomplete."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or not container.streams.audio:
                return None
            tag = container.metadata.get("comment", "")
    except (av.error.FFmpegError, OSError):
        return None
    return tag[len(TAG_PREFIX):] if tag.startswith(TAG_PREFIX) else None


def write_clip(path: str | Path, frames: np.ndarray, audio: np.ndarray, settings: Mapping[str, Any],
               tag: str = "") -> None:
    """Encode frames (T, H, W, 3) uint8 and audio (C, N) float32 into an MP4, atomically.

    Args:
        path: the target ``.mp4``.
        frames: RGB frames at ``settings["fps"]``.
        audio: samples in [-1, 1] at ``settings["sample_rate"]``, one row per channel.
        settings: resolved synth settings (``fps``, ``sample_rate``, ``crf``, ``audio_bitrate``).
        tag: the fingerprint written into the ``comment`` tag.
    """
    fps, sr = settings["fps"], settings["sample_rate"]
    layout = "stereo" if audio.shape[0] == 2 else "mono"
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        container.metadata["comment"] = TAG_PREFIX + tag
        video = container.add_stream("libx264", rate=fps, options=dict(VIDEO_OPTIONS, crf=str(settings["crf"])))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        video.codec_context.thread_count = 1  # deterministic and light on a shared CPU
        sound = container.add_stream("aac", rate=sr, layout=layout, options=AUDIO_OPTIONS)
        sound.bit_rate = settings["audio_bitrate"]
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode())
        step = sr  # one second of audio per frame handed to the encoder (it re-chunks)
        for start in range(0, audio.shape[1], step):
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + step]),
                                               format="fltp", layout=layout)
            chunk.sample_rate, chunk.pts = sr, start
            container.mux(sound.encode(chunk))
        container.mux(sound.encode())


def render_video(video: Mapping[str, Any], settings: Mapping[str, Any], path: str | Path) -> None:
    """Render one planned video into ``path``."""
    write_clip(path, render_frames(video, settings), synthesize(video, settings), settings,
               fingerprint(video, settings))


def check_plan_settings(plan: Mapping[str, Any], settings: Mapping[str, Any], folder: Path) -> None:
    """Raise ConfigError if the settings disagree with the plan keys the plan was made with."""
    given, stored = plan_part(settings), plan["settings"]
    differ = [k for k in PLAN_KEYS if k in stored and stored[k] != given[k]]
    if differ:
        diffs = ", ".join(f"{k}: plan {stored[k]!r}, settings {given[k]!r}" for k in differ)
        raise ConfigError(f"{folder / PLAN_FILE} was planned with other settings ({diffs}); "
                          f"re-run `avvp synth plan` with these settings")


def _check_against_csv(plan: Mapping[str, Any], folder: Path) -> None:
    path = folder / FULL_FILE
    listed = list(read_weak(path, list(plan["classes"]))["video_id"])
    planned = [v["video_id"] for v in plan["videos"]]
    if listed != planned:
        raise InputError(path, f"lists other videos than {PLAN_FILE} ({len(listed)} vs {len(planned)}); "
                         f"re-run `avvp synth plan`")


def shard_videos(plan: Mapping[str, Any], shard: int, shards: int) -> list[Mapping[str, Any]]:
    """The videos of one shard: those whose index in full-file order is ``shard`` modulo ``shards``."""
    if shards < 1 or not 0 <= shard < shards:
        raise ConfigError(f"shard {shard} is not in [0, {shards})")
    return [v for i, v in enumerate(plan["videos"]) if i % shards == shard]


def render_shard(annotations: str | Path, settings: Mapping[str, Any], shard: int, shards: int,
                 out_dir: str | Path, progress: bool = True) -> pd.DataFrame:
    """Render the clips of one shard and write ``<out_dir>/shard_<shard>.parquet``.

    Args:
        annotations: the annotation folder written by ``avvp synth plan``.
        settings: resolved synth settings; plan keys must match the plan's.
        shard, shards: render the videos with index % shards == shard (full-file order).
        out_dir: the clips folder.
        progress: show a tqdm bar.

    Returns:
        The shard's list: ``video_id``, ``youtube_id``, ``path``.
    """
    folder, out_dir = Path(annotations), Path(out_dir)
    plan = read_plan(folder)
    check_plan_settings(plan, settings, folder)
    _check_against_csv(plan, folder)
    videos = shard_videos(plan, shard, shards)
    rows, rendered = [], 0
    for video in tqdm(videos, desc=f"synth shard {shard}/{shards}", unit="clip", disable=not progress):
        path = child(out_dir, video["youtube_id"], ".mp4", source=folder / PLAN_FILE, youtube=True)
        tag = fingerprint(video, settings)
        if clip_fingerprint(path) != tag:
            render_video(video, settings, path)
            rendered += 1
        rows.append({"video_id": video["video_id"], "youtube_id": video["youtube_id"], "path": str(path)})
    log.info("shard %d/%d: rendered %d, kept %d clips in %s", shard, shards, rendered,
             len(videos) - rendered, out_dir)
    table = pd.DataFrame(rows, columns=["video_id", "youtube_id", "path"])
    write_parquet(out_dir / f"shard_{shard}.parquet", table)
    return table
