"""Cut a video into whole 1-second segments and compute its features window by window
(``window`` seconds at a time), concatenating the windows' rows."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from avvp.infra.errors import InputError
from avvp.stages.extractors.base import AUDIO_PAD_NOTE_S
from avvp.stages.parse.model_loading import VideoParser

#: A video this close below a whole second counts that second (9.95 s → 10 segments; the
#: decoders pad the missing frames and audio).
SEGMENT_TOLERANCE_S = 0.1


def video_segments(info: Mapping, path: str | Path) -> tuple[int, float, list[str]]:
    """(T, duration, notes) of a probed video: T whole seconds of the video stream.

    Raises:
        DecodeError: no video stream, unknown duration, or shorter than one segment.
    """
    from avvp.stages.decoding import DecodeError

    if not info.get("has_video"):
        raise DecodeError(path, "no video stream; parse needs the pictures as well as the sound")
    duration = info.get("video_duration") or info.get("duration")
    if not duration or duration <= 0:
        raise DecodeError(path, "the file declares no duration")
    duration = float(duration)
    t = int(np.floor(duration + SEGMENT_TOLERANCE_S))
    if t < 1:
        raise DecodeError(path, f"the video is {duration:.2f} s long; parse needs at least one whole "
                                "second (1-s segments)")
    notes = []
    if not info.get("has_audio"):
        notes.append("no audio stream: the audio was parsed as silence, so the audio and "
                     "audio-visual events say nothing about the real sound")
    return t, duration, notes


def extract_features(parser: VideoParser, path: str | Path, segments: int
                     ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The (1, rows, D) features of ``[0, segments)`` seconds of ``path`` for each input slot,
    decoded (once per window for the roles that can share a decode) and embedded window by window
    (``window`` seconds, see the :mod:`avvp.stages.parse` docstring), and the warnings (audio padded with
    silence). Each window's rows go through the extractor's ``assemble``: a teacher's class
    scores are dropped and CLAP gives one (64, D) token map per window, one after the other.

    Raises:
        InputError: a role's input could not be decoded in some window.
    """
    from avvp.stages.extractors.joint import ClipDecoder

    batch, window = int(parser.settings["batch_size"]), int(parser.settings["window"])
    decoder = ClipDecoder(parser.extractors)
    rows: dict[str, list[np.ndarray]] = {slot: [] for slot in parser.extractors}
    warnings = []
    for start in range(0, segments, window):
        seconds = float(min(window, segments - start))
        for slot, got in decoder(path, float(start), seconds).items():
            ext = parser.extractors[slot]
            if got.units is None:
                raise InputError(path, f"{got.reason} ({ext.role} features of [{start:g}, {start + seconds:g}) s)")
            if got.padded_s > AUDIO_PAD_NOTE_S:
                warnings.append(f"the audio stream leaves {got.padded_s:.2f} s of [{start:g}, "
                                f"{start + seconds:g}) s uncovered: padded with silence")
            step = even_batch(len(got.units), batch)
            out = [ext.forward(got.units[i:i + step]) for i in range(0, len(got.units), step)]
            rows[slot].append(ext.assemble(np.concatenate(out))[0])
    return {slot: torch.from_numpy(np.concatenate(r)).unsqueeze(0) for slot, r in rows.items()}, warnings


def window_segments(segments: int, window: int) -> list[int]:
    """The segments of each window of a video of ``segments`` seconds (all ``window`` but the last)."""
    return [min(window, segments - start) for start in range(0, segments, window)]


def even_batch(n: int, batch: int) -> int:
    """The batch size that splits ``n`` units into the fewest batches of at most ``batch``, all of
    about the same size (80 frames at batch 64: two of 40, not 64 + 16), so every full window
    runs one compiled shape and a shorter last window is padded to it."""
    return -(-n // -(-n // batch)) if n else batch
