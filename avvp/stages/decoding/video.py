"""Video frames at a fixed output rate, chosen exactly as ``ffmpeg -i clip -r <fps>`` chooses them.

Every source frame in the window is decoded (inter-coded video cannot be decoded selectively), but
only the frames that end up in the output are converted to RGB, at the requested size, by the
decoder's own scaler (``VideoFrame.reformat``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avvp.stages.decoding.media import SHORT_TOLERANCE_S, DecodeError, declared_end, open_media, run_decode, window_offset
from avvp.stages.decoding.ratesync import CfrRateSync, parse_rate

#: A frame's own duration is trusted (as ffmpeg uses it) only when it agrees with the stream's
#: frame rate to this relative precision; variable-rate streams report durations that different
#: FFmpeg versions assign differently, so they fall back to the rate.
_DURATION_AGREEMENT = 0.01


@dataclass
class Frames:
    """Decoded RGB frames.

    Attributes:
        frames: uint8 RGB, shape (N, H, W, 3).
        times: float64, presentation time (s, relative to the window start) of the source frame
            shown in each output frame.
        source_fps: the source stream's frame rate (ffmpeg's guessed rate).
    """

    frames: np.ndarray
    times: np.ndarray
    source_fps: float


def spread_indices(n_available: int, n_wanted: int) -> np.ndarray:
    """Indices ``round(linspace(0, n_available - 1, n_wanted))`` (official; numpy rounding)."""
    if n_available < 1 or n_wanted < 1:
        raise ValueError(f"need at least one frame to pick from and to pick, got {n_available}, {n_wanted}")
    return np.round(np.linspace(0, n_available - 1, n_wanted)).astype(np.int64)


@dataclass
class _Source:
    """One decoded source frame that appears in the output."""

    frame: av.VideoFrame
    time: float


class VideoCollector:
    """Receives a video stream's decoded frames and keeps the ones ffmpeg's ``-r`` would output.

    Args:
        container: the open input.
        path: the file, for error messages.
        start: window start (s).
        end: window end (s), or None for "to the end of the stream".
        fps: output frame rate.
        tolerance: how much shorter than the window the stream may be (s).
    """

    def __init__(self, container: av.container.InputContainer, path: str | Path, start: float,
                 end: float | None, fps: float, tolerance: float = SHORT_TOLERANCE_S):
        if not container.streams.video:
            raise DecodeError(path, "no video stream")
        self.path = path
        self.stream = container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.start = start
        self.end = end
        self.tolerance = tolerance
        self.time_base = Fraction(self.stream.time_base)
        self.rate = Fraction(self.stream.guessed_rate or self.stream.average_rate or 0)
        self.window = None if end is None else Fraction(end - start).limit_denominator(1_000_000)
        self.offset = window_offset(container, self.stream, start)
        file_end = declared_end(container, self.stream)
        self.declared = None if file_end is None else file_end - start
        self._fps = parse_rate(fps)
        self._single_stream = len(container.streams) == 1
        self.reset()

    def reset(self) -> None:
        """Forget all frames pushed so far."""
        self.sync = CfrRateSync(self._fps, self.rate, self.time_base, self._single_stream)
        self.slots: list[_Source] = []
        self.first_time: float | None = None
        self.first_kept: float | None = None
        self.covered_end: float | None = None
        self.n_decoded = 0
        self.done = False
        self._previous: _Source | None = None
        self._last_pts: int | None = None

    def push(self, frame: av.VideoFrame) -> None:
        """Take one decoded frame: trim it to the window and emit ffmpeg's copies of it."""
        pts = frame.pts
        if pts is None:
            if self._last_pts is None:
                return
            pts = self._last_pts + (frame.duration or 1)
        self._last_pts = pts
        self.n_decoded += 1
        rel = pts + self.offset
        time = Fraction(rel) * self.time_base
        if self.first_time is None:
            self.first_time = float(time)
        if time < 0:
            return
        if self.window is not None and time >= self.window:
            self.done = True
            return
        duration = self._trusted_duration(frame.duration)
        length = duration * self.time_base if duration else (1 / self.rate if self.rate else Fraction(0))
        self.covered_end = float(time + length)
        current = _Source(frame, float(time))
        if self.first_kept is None:
            self.first_kept = current.time
        n_previous, n_total = self.sync.push(rel, duration)
        previous = self._previous or current
        self.slots.extend([previous] * n_previous + [current] * (n_total - n_previous))
        self._previous = current

    def _trusted_duration(self, duration: int | None) -> int:
        if not duration or not self.rate:
            return 0
        seconds = duration * self.time_base
        if abs(seconds * self.rate - 1) > _DURATION_AGREEMENT:
            return 0
        return int(duration)

    def finish(self, n_frames: int | None = None, size: tuple[int, int] | None = None,
               problem: str | None = None) -> Frames:
        """Check the stream covered the window, then convert the selected frames to RGB.

        Raises:
            DecodeError: no frame could be decoded, or the stream is shorter than the window by
                more than the tolerance.
        """
        note = f" ({problem})" if problem else ""
        if self.n_decoded == 0:
            raise DecodeError(self.path, f"no video frame could be decoded{note}")
        if self._previous is not None:
            self.slots.extend([self._previous] * self.sync.flush())
        self._check_coverage(note)
        slots = self.slots
        if n_frames is not None:
            slots = [slots[i] for i in spread_indices(len(slots), n_frames)]
        images = _to_rgb([s.frame for s in slots], size)
        times = np.array([s.time for s in slots], dtype=np.float64)
        self.slots = []
        self._previous = None
        return Frames(frames=images, times=times, source_fps=float(self.rate))

    def _check_coverage(self, note: str) -> None:
        start = self.start
        if not self.slots:
            last = self.covered_end if self.covered_end is not None else (self.first_time or 0.0)
            raise DecodeError(self.path, f"video has no frame in the window [{start:g}, "
                                         f"{'end' if self.end is None else f'{self.end:g}'}) s "
                                         f"(video ends near {start + last:.2f} s){note}")
        covered = self.covered_end or 0.0
        if self.first_kept is not None and self.first_kept > self.tolerance:
            raise DecodeError(self.path, f"video starts at {start + self.first_kept:.2f} s, "
                                         f"after the window start {start:g} s{note}")
        if self.window is not None:
            need = float(self.window)
            if need - covered > self.tolerance:
                raise DecodeError(self.path, f"clip is {start + covered:.2f} s long, window needs "
                                             f"{start + need:.2f} s{note}")
        elif self.declared is not None and self.declared - covered > self.tolerance:
            raise DecodeError(self.path, f"video stops at {start + covered:.2f} s but the file declares "
                                         f"{start + self.declared:.2f} s (truncated or damaged){note}")


def _to_rgb(frames: list[av.VideoFrame], size: tuple[int, int] | None) -> np.ndarray:
    """Convert frames (at least one) to a uint8 (N, H, W, 3) array, each distinct frame once."""
    width, height = (None, None) if size is None else size
    converted: dict[int, np.ndarray] = {}
    images = []
    for frame in frames:
        key = id(frame)
        if key not in converted:
            converted[key] = frame.to_ndarray(format="rgb24", width=width, height=height)
        images.append(converted[key])
    return np.stack(images)


def check_request(start: float, end: float | None, fps: float | None = None,
                  n_frames: int | None = None, size: tuple[int, int] | None = None) -> None:
    """Reject impossible arguments (ValueError: a programming error, not bad input)."""
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    if end is not None and end <= start:
        raise ValueError(f"end must be after start, got [{start}, {end})")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if n_frames is not None and (int(n_frames) != n_frames or n_frames < 1):
        raise ValueError(f"n_frames must be a positive integer, got {n_frames}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (width, height) with positive values, got {size}")


def decode_frames(path: str | Path, start: float = 0.0, end: float | None = None, fps: float = 8.0,
                  n_frames: int | None = None, size: tuple[int, int] | None = None,
                  tolerance: float = SHORT_TOLERANCE_S) -> Frames:
    """Decode the frames ``ffmpeg -ss start -t end-start -i path -r fps`` would write.

    With ``start=0`` and ``end=None`` these are exactly the frames of the official extraction
    ``ffmpeg -i clip -r 8 %06d.jpg`` (before JPEG compression), e.g. 82 frames for a 10-s LLP clip.

    Args:
        path: a media file.
        start: window start (s, file timeline).
        end: window end (s); None decodes to the end of the stream.
        fps: output frame rate.
        n_frames: if given, keep only the frames at ``round(linspace(0, N - 1, n_frames))`` of the
            N output frames (as the official extraction); frames repeat when N < n_frames.
        size: ``(width, height)`` to resize to in the decoder (bilinear); None keeps the source size.
        tolerance: how much shorter than the window the video may be (s).

    Returns:
        The frames, their source presentation times and the source frame rate.

    Raises:
        DecodeError: the file cannot be read, has no video stream, no decodable frame, or is
            shorter than the window by more than ``tolerance``.
    """
    check_request(start, end, fps, n_frames, size)
    with open_media(path) as container:
        collector = VideoCollector(container, path, start, end, fps, tolerance)
        problem = run_decode(container, path, [collector], start)
        return collector.finish(n_frames, size, problem)
