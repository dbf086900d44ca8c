"""Audio decoded in memory to mono float32 at a fixed rate, placed on the window's time axis.

Channels are averaged (the VGGish front end's mono mix; note that ``ffmpeg -ac 1`` instead sums a
stereo pair with weights 1/√2, i.e. √2 × the mean). The mono signal is resampled with libswresample
through PyAV, the resampler the ``ffmpeg`` tool uses, so the result equals ``ffmpeg -ar`` up to that
scale. Samples are placed by their timestamps: the output has exactly ``round((end - start) × rate)``
samples, sample ``k`` at time ``start + k / rate``; codec padding beyond the window (AAC decodes
~0.008 s more than its stream declares) is cut, and a stream that starts late, ends early or has
gaps is padded with zeros (``Audio.padded_s`` says how much) when the shortfall is within the
tolerance.

Placement precision: consecutive frames are joined sample by sample from the first frame's
timestamp (as the ``ffmpeg`` tool does), so decoding a file from its start matches ``ffmpeg``
exactly; after a seek (a window that starts later) the first frame's timestamp anchors the run,
which is exact for MP4 and within about 1 ms for WebM/Matroska (1-ms timestamps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avvp.stages.decoding.media import (AUDIO_MARGIN_S, SHORT_TOLERANCE_S, DecodeError, declared_end, open_media, run_decode,
                    window_offset)
from avvp.stages.decoding.video import check_request

MISSING_CHOICES = ("error", "silence")

#: Timestamp jitter (s) below which consecutive audio frames are treated as contiguous.
_JITTER_S = 0.01

_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


@dataclass
class Audio:
    """Mono audio for one window.

    Attributes:
        samples: float32, shape (round((end - start) × sample_rate),).
        sample_rate: samples per second.
        padded_s: seconds of the window the stream did not cover (it starts late, ends early or
            has gaps), filled with zeros.
        silent: True if the file has no audio stream and silence was substituted.
    """

    samples: np.ndarray
    sample_rate: int
    padded_s: float = 0.0
    silent: bool = False

    @property
    def padded(self) -> bool:
        """True if zeros were added where the stream did not cover the window."""
        return self.padded_s > 0


def to_mono(frame: av.AudioFrame) -> np.ndarray:
    """The channel mean of one decoded audio frame as float32 in [-1, 1]."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    name = frame.format.name.rstrip("p")
    data = data.astype(np.float32)
    if name == "u8":
        data = (data - 128.0) / _INT_SCALE["u8"]
    elif name in _INT_SCALE:
        data /= _INT_SCALE[name]
    return data.mean(axis=0) if channels > 1 else data[0]


def resample(signal: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono float32 signal with libswresample (ffmpeg's default resampler settings)."""
    if source_rate == target_rate or signal.size == 0:
        return signal.astype(np.float32, copy=False)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(signal, dtype=np.float32)[None, :],
                                       format="flt", layout="mono")
    frame.sample_rate = source_rate
    frame.pts = 0
    frame.time_base = Fraction(1, source_rate)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
    parts = [out.to_ndarray()[0] for out in resampler.resample(frame)]
    parts += [out.to_ndarray()[0] for out in resampler.resample(None)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class AudioCollector:
    """Receives an audio stream's decoded frames and assembles the window's mono signal.

    Args:
        container: the open input.
        path: the file, for error messages.
        start: window start (s).
        end: window end (s), or None for the end the audio stream declares (the container's
            duration if it declares none; the decoded end if neither is known).
        sample_rate: output rate.
        tolerance: how much of the window the stream may leave uncovered (s).
    """

    def __init__(self, container: av.container.InputContainer, path: str | Path, start: float,
                 end: float | None, sample_rate: int = 16000, tolerance: float = SHORT_TOLERANCE_S):
        if not container.streams.audio:
            raise DecodeError(path, "no audio stream")
        self.path = path
        self.stream = container.streams.audio[0]
        self.start = start
        self.sample_rate = int(sample_rate)
        self.tolerance = tolerance
        self.time_base = Fraction(self.stream.time_base)
        self.offset = window_offset(container, self.stream, start)
        own_end = declared_end(container, self.stream, own_only=True)
        self.stream_end = None if own_end is None else own_end - start
        if end is None:
            file_end = declared_end(container, self.stream)
            self.window = None if file_end is None else file_end - start
        else:
            self.window = end - start
        self.reset()

    def reset(self) -> None:
        """Forget all frames pushed so far."""
        self.source_rate: int | None = None
        self.runs: list[_Run] = []
        self.first_time: float | None = None
        self.n_decoded = 0
        self.done = False

    def push(self, frame: av.AudioFrame) -> None:
        """Take one decoded frame: add its mono samples to the current contiguous run."""
        rate = frame.sample_rate
        if self.source_rate is None:
            self.source_rate = rate
        elif rate != self.source_rate:
            raise DecodeError(self.path,
                              f"audio sample rate changes mid-stream ({self.source_rate} -> {rate} Hz)")
        run = self.runs[-1] if self.runs else None
        if frame.pts is None:
            index = run.expected_next if run is not None else 0
        else:
            index = round((frame.pts + self.offset) * self.time_base * rate)
        if self.first_time is None:
            self.first_time = index / rate
        self.n_decoded += 1
        margin = round(AUDIO_MARGIN_S * rate)
        if self.window is not None and index >= self.window * rate + margin:
            self.done = True
            return
        if run is None or abs(index - run.expected_next) > _JITTER_S * rate:
            run = _Run(index)
            self.runs.append(run)
        start = run.expected_next
        keep = start + frame.samples > -margin and frame.samples > 0
        run.add(frame.samples, to_mono(frame) if keep else None)

    def finish(self, problem: str | None = None) -> Audio:
        """Resample, cut or pad to the window; check the shortfall against the tolerance.

        Raises:
            DecodeError: nothing could be decoded, or the stream leaves more than the tolerance of
                the window uncovered.
        """
        note = f" ({problem})" if problem else ""
        if self.n_decoded == 0 or self.source_rate is None:
            raise DecodeError(self.path, f"no audio could be decoded{note}")
        src, out_rate = self.source_rate, self.sample_rate
        chunks = [placed for run in self.runs for placed in run.placed()]
        data_start = min((i for i, _ in chunks), default=0)
        data_stop = max((i + len(x) for i, x in chunks), default=0)
        if self.stream_end is not None:  # codec padding after the declared end (AAC) is not signal
            data_stop = max(min(data_stop, round(self.stream_end * src)), data_start)
        window = self.window if self.window is not None else data_stop / src
        samples, covered = _on_window(chunks, data_start, data_stop, src, out_rate, window)
        missing = (len(covered) - int(covered.sum())) / src
        if missing > self.tolerance:
            raise DecodeError(self.path, f"audio covers {window - missing:.2f} s of the window "
                                         f"[{self.start:g}, {self.start + window:g}) s, which needs "
                                         f"{window:.2f} s; at most {self.tolerance:.2f} s may be "
                                         f"padded with silence (features.audio_tolerance / "
                                         f"audio_min_coverage){note}")
        self.runs = []
        return Audio(samples=samples, sample_rate=out_rate, padded_s=float(missing))


def _on_window(chunks: list[tuple[int, np.ndarray]], data_start: int, data_stop: int, src: int,
               out_rate: int, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Join placed source-rate chunks, resample, and cut/pad to the window.

    Returns:
        The window's ``round(window × out_rate)`` samples, and a mask over the window's source
        samples that is True where the stream had data.
    """
    n_out = round(window * out_rate)
    # Start the resampled block on a sample shared by both rates so that output sample k is at
    # exactly k / out_rate.
    common = math.gcd(src, out_rate)
    step_in, step_out = src // common, out_rate // common
    if data_start <= 0:
        origin = math.ceil(data_start / step_in) * step_in
    else:
        origin = data_start // step_in * step_in
    block = np.zeros(max(data_stop - origin, 0), dtype=np.float32)
    covered = np.zeros(max(round(window * src), 0), dtype=bool)
    for index, chunk in chunks:
        lo, hi = max(index, origin), min(index + len(chunk), data_stop)
        if hi > lo:
            block[lo - origin:hi - origin] = chunk[lo - index:hi - index]
            covered[max(lo, 0):max(hi, 0)] = True
    resampled = resample(block, src, out_rate)
    first_out = origin // step_in * step_out
    samples = np.zeros(n_out, dtype=np.float32)
    lo, hi = max(first_out, 0), min(first_out + len(resampled), n_out)
    if hi > lo:
        samples[lo:hi] = resampled[lo - first_out:hi - first_out]
    samples[:max(0, math.ceil(data_start * out_rate / src))] = 0.0  # no filter ringing in the padding
    samples[max(0, data_stop * out_rate // src):] = 0.0
    return samples, covered


class _Run:
    """Consecutive decoded audio frames, placed sample after sample from the first one's timestamp.

    Like the ``ffmpeg`` tool (which ignores timestamp jitter within a stream), later timestamps only
    decide where a new run starts: a frame more than 10 ms away from where the run would continue
    starts a new run (a gap or an overlap in the stream).
    """

    def __init__(self, index: int) -> None:
        self.anchor = index
        self.length = 0
        self.chunks: list[tuple[int, np.ndarray]] = []  # (offset in the run, mono samples)

    @property
    def expected_next(self) -> int:
        """Where the run continues on the window timeline (source samples)."""
        return self.anchor + self.length

    def add(self, n_samples: int, mono: np.ndarray | None) -> None:
        """Append a frame's samples (None: a frame outside the window, only counted)."""
        if mono is not None:
            self.chunks.append((self.length, mono))
        self.length += n_samples

    def placed(self) -> list[tuple[int, np.ndarray]]:
        """The run's chunks as (start index on the window timeline, samples)."""
        return [(self.anchor + offset, mono) for offset, mono in self.chunks]


def silence(path: str | Path, container: av.container.InputContainer, start: float, end: float | None,
            sample_rate: int) -> Audio:
    """Zeros for the window of a file without audio (``missing="silence"``)."""
    if end is None:
        file_end = declared_end(container, None)
        if file_end is None:
            raise DecodeError(path, "no audio stream, and the file declares no duration to fill with silence")
        end = file_end
    n = max(round((end - start) * sample_rate), 0)
    return Audio(samples=np.zeros(n, dtype=np.float32), sample_rate=int(sample_rate), silent=True)


def check_missing(missing: str) -> None:
    """Reject an unknown ``missing`` policy."""
    if missing not in MISSING_CHOICES:
        raise ValueError(f"missing must be one of {MISSING_CHOICES}, got {missing!r}")


def decode_audio(path: str | Path, start: float = 0.0, end: float | None = None, sample_rate: int = 16000,
                 missing: str = "error", tolerance: float = SHORT_TOLERANCE_S) -> Audio:
    """Decode a window of a file's first audio stream to mono float32 at ``sample_rate``.

    Args:
        path: a media file.
        start: window start (s, file timeline).
        end: window end (s); None: the end the audio stream declares (e.g. 10.0 s for an LLP clip
            cut with ``-t 10``, giving exactly 160,000 samples at 16 kHz).
        sample_rate: output rate.
        missing: ``"error"`` raises DecodeError for a file without audio; ``"silence"`` returns
            zeros with ``silent=True``.
        tolerance: how much of the window the stream may leave uncovered (s) before failing.

    Raises:
        DecodeError: unreadable file, no audio stream (with ``missing="error"``), or an audio
            stream that misses more than ``tolerance`` of the window.
    """
    check_request(start, end)
    check_missing(missing)
    with open_media(path) as container:
        if not container.streams.audio and missing == "silence":
            return silence(path, container, start, end, sample_rate)
        collector = AudioCollector(container, path, start, end, sample_rate, tolerance)
        problem = run_decode(container, path, [collector], start, lead=AUDIO_MARGIN_S)
        return collector.finish(problem)
