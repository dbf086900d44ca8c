"""Parse one video: probe it, compute its features, run the model, binarise and find the events."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from avvp.stages.decoding.media import DECODER_ERRORS
from avvp.infra.errors import InputError
from avvp.core.metrics import binarize
from avvp.stages.parse.events import find_events
from avvp.stages.parse.model_loading import ROLES, VideoParser
from avvp.stages.parse.windows import extract_features, video_segments, window_segments

log = logging.getLogger(__package__)  # "avvp.stages.parse", as before the split into modules


@dataclass
class ParseResult:
    """What :func:`parse_video` found in one video.

    Attributes:
        video: the file.
        duration: its duration (s).
        segments: T, the number of whole 1-s segments parsed.
        tail_s: the seconds after the last whole segment, not parsed.
        events: table with :data:`EVENT_COLUMNS`.
        global_prob, a_prob, v_prob: (C,) video-level probabilities.
        frame_prob: (T, 2, C) segment probabilities (axis 1: audio, visual).
        audio_on, visual_on: (C, T) uint8 binarised segments.
        notes: anything the user should know (no audio stream, extractor settings, ...).
        warnings: what was patched up (audio padded with silence where the stream did not cover
            a window).
    """

    video: Path
    duration: float
    segments: int
    tail_s: float
    events: pd.DataFrame
    global_prob: np.ndarray
    a_prob: np.ndarray
    v_prob: np.ndarray
    frame_prob: np.ndarray
    audio_on: np.ndarray
    visual_on: np.ndarray
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_video(parser: VideoParser, path: str | Path) -> ParseResult:
    """Parse one video (see the :mod:`avvp.stages.parse` docstring).

    Raises:
        InputError: (incl. DecodeError) the file is unreadable, has no video stream, is shorter
            than one second, or its streams end before the declared duration; names the file.
    """
    from avvp.stages.decoding import probe

    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a video file")
    info = probe(path)
    segments, duration, notes = video_segments(info, path)
    try:
        feats, warnings = extract_features(parser, path, segments)
    except torch.cuda.OutOfMemoryError:
        raise
    except DECODER_ERRORS as exc:  # a decoder failure that was not already an InputError
        raise InputError(path, f"cannot decode: {type(exc).__name__}: {exc}") from None
    # CLAP's token maps (VALOR++): one per window, pooled to that window's segments by the model
    extra = {"audio_windows": window_segments(segments, int(parser.settings["window"]))} \
        if parser.windowed_audio else {}
    with torch.inference_mode():
        out = parser.model(*(feats[r].to(parser.device) for r in ROLES), **extra)
    arrays = {k: getattr(out, k)[0].float().cpu().numpy()
              for k in ("global_prob", "a_prob", "v_prob", "frame_prob")}
    audio_on, visual_on = binarize({k: v[None] for k, v in arrays.items()},
                                   gate=parser.settings["gate"], threshold=float(parser.settings["threshold"]))
    events = find_events(arrays["frame_prob"], audio_on[0], visual_on[0], parser.classes)
    for warning in warnings:
        log.warning("%s: %s", path, warning)
    return ParseResult(path, duration, segments, max(duration - segments, 0.0), events, arrays["global_prob"],
                       arrays["a_prob"], arrays["v_prob"], arrays["frame_prob"], audio_on[0],
                       visual_on[0], parser.notes + notes, warnings)
