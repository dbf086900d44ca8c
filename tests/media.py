"""Writing small test media of any container, codec and shape with PyAV (no ffmpeg tool needed).

``write_media`` is the one writer the extraction and odd-media tests share: frames of a moving bar
over a colour that identifies the clip, and a tone per channel; the video and audio streams may
have different lengths (a short audio track), either may be left out.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_media(path: Path, *, seconds: float = 2.0, vcodec: str | None = "libx264",
                acodec: str | None = "aac", size: tuple[int, int] = (64, 48), fps: int = 12,
                rate: int = 16000, layout: str = "mono", audio_seconds: float | None = None,
                pix_fmt: str = "yuv420p", colour: int = 0, freq: float = 440.0,
                container: str | None = None, options: dict | None = None) -> Path:
    """Write a clip of ``seconds`` of video (``size`` = (width, height), ``fps``) and
    ``audio_seconds`` (default ``seconds``) of audio; ``vcodec`` / ``acodec`` None leaves that
    stream out. ``container`` forces the format (else chosen from the file name)."""
    out = av.open(str(path), "w", format=container, options=options or {})
    video = audio = None
    if vcodec:
        video = out.add_stream(vcodec, rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], pix_fmt
    if acodec:
        audio = out.add_stream(acodec, rate=rate, layout=layout)
    if video is not None:
        width, height = size
        for i in range(max(1, round(seconds * fps))):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = (i * 9) % 256
            img[..., 2] = colour % 256
            img[:, : i % width, 1] = 200
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(video.encode())
    if audio is not None:
        total = seconds if audio_seconds is None else audio_seconds
        channels = av.AudioLayout(layout).nb_channels
        n = round(total * rate)
        t = np.arange(n) / rate
        wave = 0.3 * np.sin(2 * np.pi * freq * t)
        gains = np.linspace(1.0, 0.5, channels)[:, None]
        step = audio.codec_context.frame_size or 1024
        for s in range(0, n, step):
            block = (gains * wave[None, s:s + step]).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, s, Fraction(1, rate)
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    out.close()
    return path
