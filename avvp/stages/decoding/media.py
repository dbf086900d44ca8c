"""Opening media files, probing them and the shared demux/decode loop.

Times: every time in this package is in seconds on the file's own timeline, which starts at the
container's start time (as ffmpeg does without ``-copyts``). A window ``[start, end)`` is decoded
with ffmpeg's input-seeking semantics (``ffmpeg -ss start -t end-start -i clip``): timestamps are
shifted so that the window starts at 0, frames before 0 or at/after the window length are dropped.
"""

from __future__ import annotations

import contextlib
import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Protocol

import av

from avvp.infra.errors import InputError
from avvp.stages.decoding.ratesync import rescale

log = logging.getLogger(__name__)

#: How much shorter than its window a stream may be (s) before decoding fails: within it, audio is
#: padded with zeros (``Audio.padded``) and the frames are what ffmpeg outputs for the shorter
#: stream (the last frame is the last one ffmpeg repeats; ``n_frames`` subsampling still returns
#: the requested count). Covers container/codec rounding, AAC padding and cut points that miss the
#: end by a few frames, while a clip that is really too short (e.g. 3 s for a 10-s window) fails.
SHORT_TOLERANCE_S = 0.5

#: Audio decoded beyond each end of a window so that the resampler has real context there.
AUDIO_MARGIN_S = 0.1

_MICRO = Fraction(1, 1_000_000)


class DecodeError(InputError):
    """A media file that cannot be decoded as asked: names the file and the problem."""


#: Errors a decoder or converter may raise on damaged data that are not yet a DecodeError.
DECODER_ERRORS = (av.FFmpegError, OSError, ValueError, RuntimeError, EOFError)


def describe_error(err: BaseException) -> str:
    """A failure reason for an error of :data:`DECODER_ERRORS` (or a DecodeError)."""
    if isinstance(err, InputError):
        return err.problem
    return f"{type(err).__name__}: {err}"


@contextlib.contextmanager
def open_media(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open a media file for reading; turn every failure into a :class:`DecodeError`."""
    path = Path(path)
    if not path.exists():
        raise DecodeError(path, "file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise DecodeError(path, "file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as err:
        raise DecodeError(path, f"not a readable media file ({_describe(err)})") from err
    try:
        if not container.streams.video and not container.streams.audio:
            raise DecodeError(path, "no audio or video stream (corrupt header or not a media file)")
        yield container
    finally:
        container.close()


def _describe(err: Exception) -> str:
    """A short description of a PyAV/FFmpeg error without the repeated file name."""
    text = getattr(err, "strerror", None) or str(err)
    return str(text).strip()


def start_us(container: av.container.InputContainer) -> int:
    """The container's start time in microseconds (0 if unknown)."""
    return int(container.start_time or 0)


def window_offset(container: av.container.InputContainer, stream: av.stream.Stream,
                  start: float) -> int:
    """Ticks (in the stream's time base) to add to a pts to make it relative to the window start.

    Mirrors ffmpeg's input offset ``-(container start + ss)``, applied in integer ticks.
    """
    offset_us = -(start_us(container) + round(start * 1_000_000))
    return rescale(offset_us, _MICRO, Fraction(stream.time_base))


def declared_end(container: av.container.InputContainer, stream: av.stream.Stream | None,
                 own_only: bool = False) -> float | None:
    """Where a stream ends on the file timeline (s), by its header.

    Falls back to the container's duration when the stream declares none, unless ``own_only``.
    """
    if stream is not None and stream.duration is not None and stream.time_base is not None:
        first = stream.start_time or 0
        end = (first + stream.duration) * stream.time_base - Fraction(start_us(container), 1_000_000)
        return float(end)
    if container.duration is not None and not own_only:
        return container.duration / 1_000_000
    return None


def probe(path: str | Path) -> dict[str, Any]:
    """Describe a media file from its headers (no decoding).

    Returns:
        A dict with ``path``, ``format``, ``duration`` (s, container), ``start_time`` (s),
        ``has_video``, ``has_audio``, and for the first video stream ``video_codec``, ``fps``
        (average rate, falling back to ffmpeg's guessed rate), ``width``, ``height``,
        ``video_duration`` (s, may be None), ``n_frames`` (declared, 0 if unknown); for the first
        audio stream ``audio_codec``, ``sample_rate``, ``channels``, ``audio_duration``. Missing
        streams give None for their fields.

    Raises:
        DecodeError: the file is missing, empty, unreadable or has neither audio nor video.
    """
    with open_media(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        info: dict[str, Any] = {
            "path": str(path),
            "format": container.format.name,
            "duration": container.duration / 1_000_000 if container.duration is not None else None,
            "start_time": start_us(container) / 1_000_000,
            "has_video": video is not None,
            "has_audio": audio is not None,
            "video_codec": None, "fps": None, "width": None, "height": None,
            "video_duration": None, "n_frames": None,
            "audio_codec": None, "sample_rate": None, "channels": None, "audio_duration": None,
        }
        if video is not None:
            rate = video.average_rate or video.guessed_rate
            info.update(video_codec=video.codec_context.name, fps=float(rate) if rate else None,
                        width=video.codec_context.width, height=video.codec_context.height,
                        video_duration=_stream_duration(video), n_frames=int(video.frames or 0))
        if audio is not None:
            info.update(audio_codec=audio.codec_context.name, sample_rate=audio.codec_context.sample_rate,
                        channels=audio.codec_context.channels, audio_duration=_stream_duration(audio))
        if info["duration"] is None:
            known = [d for d in (info["video_duration"], info["audio_duration"]) if d is not None]
            info["duration"] = max(known) if known else None
        return info


def _stream_duration(stream: av.stream.Stream) -> float | None:
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


class Collector(Protocol):
    """What :func:`run_decode` feeds: one per stream."""

    stream: av.stream.Stream
    done: bool
    first_time: float | None  # window-relative time of the first decoded frame, before trimming

    def push(self, frame: av.frame.Frame) -> None:
        """Take one decoded frame (in presentation order)."""

    def reset(self) -> None:
        """Forget everything pushed (before decoding again from the start of the file)."""


def run_decode(container: av.container.InputContainer, path: str | Path,
               collectors: list[Collector], start: float, lead: float = 0.0) -> str | None:
    """Demux and decode the collectors' streams in one pass, from just before ``start``.

    Seeks to the keyframe at or before ``start - lead`` when ``start > 0``; if the seek lands after
    the window start (an imprecise index), decodes again from the beginning. Stops as soon as every
    collector is done. Packets that fail to decode are skipped (as ffmpeg does) and counted.

    Returns:
        A description of a read/decode problem met on the way (truncated data, bad packets), or
        None; the collectors' completeness checks decide whether it is fatal.
    """
    if not collectors:
        return None
    seek = start - lead > 0
    problem = _decode_pass(container, collectors, start - lead if seek else None)
    if seek and any(c.first_time is not None and c.first_time > 1e-3 for c in collectors):
        log.debug("%s: seek overshot the window start, decoding from the beginning", path)
        for c in collectors:
            c.reset()
        problem = _decode_pass(container, collectors, None, rewind=True)
    return problem


def _decode_pass(container: av.container.InputContainer, collectors: list[Collector],
                 seek_to: float | None, rewind: bool = False) -> str | None:
    """Decode from ``seek_to`` (s; None: from the current position, the beginning of the file
    after ``rewind``) until all collectors are done."""
    by_index = {c.stream.index: c for c in collectors}
    bad_packets = 0
    problem = None
    target = start_us(container) + (int(seek_to * 1_000_000) if seek_to is not None else 0)
    if seek_to is not None or rewind:
        try:
            container.seek(target, backward=True, any_frame=False)
        except av.FFmpegError:  # no usable index: read from the start (frames are trimmed by time)
            with contextlib.suppress(av.FFmpegError):
                container.seek(start_us(container), backward=True, any_frame=True)
    try:
        for packet in container.demux([c.stream for c in collectors]):
            collector = by_index[packet.stream.index]
            if collector.done:
                continue
            try:
                frames = packet.decode()
            except av.FFmpegError:
                bad_packets += 1
                continue
            for frame in frames:
                collector.push(frame)
                if collector.done:
                    break
            if all(c.done for c in collectors):
                break
    except av.FFmpegError as err:
        problem = f"reading stopped early ({_describe(err)})"
    if bad_packets:
        note = f"{bad_packets} packet(s) could not be decoded"
        problem = note if problem is None else f"{problem}; {note}"
    return problem
