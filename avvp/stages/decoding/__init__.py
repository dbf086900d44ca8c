"""Decoding media with PyAV: mono audio at a fixed rate and frames at ffmpeg's ``-r`` rate.

Public API::

    probe(path) -> dict
    decode_audio(path, start=0.0, end=None, sample_rate=16000, missing="error") -> Audio
    decode_frames(path, start=0.0, end=None, fps=8.0, n_frames=None, size=None) -> Frames
    decode_clip(path, start=0.0, end=None, ...) -> (Audio, Frames)
    decode_streams(path, start=0.0, end=None, audio=True, video=True, ...) -> Streams

Everything happens in memory (no temporary files, no ``ffmpeg`` process). A window ``[start, end)``
on the file's timeline is decoded with one seek to the keyframe before it. Frames are the ones
``ffmpeg -ss start -t end-start -i path -r fps`` writes (see :mod:`.ratesync`); audio is the channel
mean resampled with libswresample, exactly ``round((end - start) × rate)`` samples. A stream shorter
than its window by at most :data:`SHORT_TOLERANCE_S` (0.5 s; for audio, ``tolerance`` /
``audio_tolerance``) is accepted (audio padded with zeros, ``Audio.padded_s``); more raises
:class:`DecodeError`, as do unreadable files and missing streams. :func:`decode_streams` returns each
stream's DecodeError instead of raising it, so one pass serves the audio and the frame roles.
"""

from avvp.stages.decoding.audio import Audio, decode_audio
from avvp.stages.decoding.clip import Streams, decode_clip, decode_streams
from avvp.stages.decoding.media import SHORT_TOLERANCE_S, DecodeError, probe
from avvp.stages.decoding.video import Frames, decode_frames, spread_indices

__all__ = ["Audio", "DecodeError", "Frames", "SHORT_TOLERANCE_S", "Streams", "decode_audio", "decode_clip",
           "decode_frames", "decode_streams", "probe", "spread_indices"]
