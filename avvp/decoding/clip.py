"""Audio and frames of one window from a single pass over the file."""

from __future__ import annotations

from pathlib import Path

from .audio import Audio, AudioCollector, check_missing, silence
from .media import AUDIO_MARGIN_S, SHORT_TOLERANCE_S, open_media, run_decode
from .video import Frames, VideoCollector, check_request


def decode_clip(path: str | Path, start: float = 0.0, end: float | None = None, fps: float = 8.0,
                n_frames: int | None = None, size: tuple[int, int] | None = None,
                sample_rate: int = 16000, missing: str = "error",
                tolerance: float = SHORT_TOLERANCE_S) -> tuple[Audio, Frames]:
    """Decode audio and frames of a window with one open of the file and one demux pass.

    The arguments and results are those of :func:`avvp.decoding.decode_audio` and
    :func:`avvp.decoding.decode_frames`; with ``end=None`` each stream runs to its own end.

    Raises:
        DecodeError: as either function would.
    """
    check_request(start, end, fps, n_frames, size)
    check_missing(missing)
    with open_media(path) as container:
        video = VideoCollector(container, path, start, end, fps, tolerance)
        audio = None
        if container.streams.audio or missing == "error":
            audio = AudioCollector(container, path, start, end, sample_rate, tolerance)
        collectors = [video] if audio is None else [video, audio]
        problem = run_decode(container, path, collectors, start, lead=AUDIO_MARGIN_S if audio else 0.0)
        frames = video.finish(n_frames, size, problem)
        if audio is None:
            return silence(path, container, start, end, sample_rate), frames
        return audio.finish(problem), frames
