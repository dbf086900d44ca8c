"""Audio and frames of one window from a single pass over the file.

:func:`decode_streams` is the tolerant form used by the extraction job and by ``avvp parse``: one
open, one demux pass, and each stream's result or its own failure, so a clip whose audio is
unusable still gives its frames (and the other way round). :func:`decode_clip` raises the first
failure instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from avvp.stages.decoding.audio import Audio, AudioCollector, check_missing, silence
from avvp.stages.decoding.media import (AUDIO_MARGIN_S, DECODER_ERRORS, SHORT_TOLERANCE_S, DecodeError, describe_error, open_media,
                    run_decode)
from avvp.stages.decoding.video import Frames, VideoCollector, check_request


@dataclass
class Streams:
    """One window of one file: the decoded audio and frames, or why each could not be had.

    A stream that was not asked for is None with no error.
    """

    audio: Audio | None = None
    frames: Frames | None = None
    audio_error: DecodeError | None = None
    video_error: DecodeError | None = None

    def need_audio(self) -> Audio:
        """The audio, or raise its DecodeError."""
        if self.audio is None:
            raise self.audio_error or ValueError("audio was not decoded")
        return self.audio

    def need_frames(self) -> Frames:
        """The frames, or raise their DecodeError."""
        if self.frames is None:
            raise self.video_error or ValueError("frames were not decoded")
        return self.frames


def decode_streams(path: str | Path, start: float = 0.0, end: float | None = None, *,
                   audio: bool = True, video: bool = True, fps: float = 8.0,
                   n_frames: int | None = None, size: tuple[int, int] | None = None,
                   sample_rate: int = 16000, missing: str = "error",
                   tolerance: float = SHORT_TOLERANCE_S,
                   audio_tolerance: float | None = None) -> Streams:
    """Decode the audio and/or frames of a window in one pass; each stream fails on its own.

    Args:
        path, start, end, fps, n_frames, size, sample_rate, missing: as for
            :func:`avvp.stages.decoding.decode_audio` and :func:`avvp.stages.decoding.decode_frames`.
        audio, video: which streams to decode.
        tolerance: how much shorter than the window the video may be (s).
        audio_tolerance: how much of the window the audio may leave uncovered (s), padded with
            silence (``Audio.padded_s``); None: ``tolerance``.

    Returns:
        The streams asked for; a stream that is missing, unreadable or too short has its
        DecodeError instead.

    Raises:
        DecodeError: the file itself cannot be used (missing, empty, not a media file).
    """
    check_request(start, end, fps, n_frames, size)
    check_missing(missing)
    audio_tolerance = tolerance if audio_tolerance is None else audio_tolerance
    out = Streams()
    with open_media(path) as container:
        collectors: dict[str, object] = {}
        if video:
            try:
                collectors["video"] = VideoCollector(container, path, start, end, fps, tolerance)
            except DecodeError as err:
                out.video_error = err
        if audio:
            if not container.streams.audio and missing == "silence":
                out.audio = silence(path, container, start, end, sample_rate)
            else:
                try:
                    collectors["audio"] = AudioCollector(container, path, start, end, sample_rate,
                                                         audio_tolerance)
                except DecodeError as err:
                    out.audio_error = err
        lead = AUDIO_MARGIN_S if "audio" in collectors else 0.0
        problem = run_decode(container, path, list(collectors.values()), start, lead=lead)
        if "video" in collectors:
            out.frames, out.video_error = _finish(path, lambda: collectors["video"].finish(n_frames, size, problem))
        if "audio" in collectors:
            out.audio, out.audio_error = _finish(path, lambda: collectors["audio"].finish(problem))
    return out


def _finish(path, finish):
    """(result, None) or (None, DecodeError) of one collector's ``finish``."""
    try:
        return finish(), None
    except DecodeError as err:
        return None, err
    except DECODER_ERRORS as err:  # a decoder failure that is not already a DecodeError
        return None, DecodeError(path, describe_error(err))


def decode_clip(path: str | Path, start: float = 0.0, end: float | None = None, fps: float = 8.0,
                n_frames: int | None = None, size: tuple[int, int] | None = None,
                sample_rate: int = 16000, missing: str = "error",
                tolerance: float = SHORT_TOLERANCE_S,
                audio_tolerance: float | None = None) -> tuple[Audio, Frames]:
    """Decode audio and frames of a window with one open of the file and one demux pass.

    The arguments and results are those of :func:`avvp.stages.decoding.decode_audio` and
    :func:`avvp.stages.decoding.decode_frames`; with ``end=None`` each stream runs to its own end.

    Raises:
        DecodeError: as either function would (the video's problem first).
    """
    streams = decode_streams(path, start, end, fps=fps, n_frames=n_frames, size=size,
                             sample_rate=sample_rate, missing=missing, tolerance=tolerance,
                             audio_tolerance=audio_tolerance)
    frames = streams.need_frames()
    return streams.need_audio(), frames
