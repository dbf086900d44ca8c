"""Decoding with PyAV: frames as ``ffmpeg -r 8`` picks them, mono 16-kHz audio, bad input.

Test clips are written here with PyAV (H.264/AAC MP4, VP9/Opus WebM, H.264/FLAC MKV, VFR, 5.1 audio),
tiny (64×48, 2–6 s). Each video frame is one flat colour that encodes its index, and the audio is a
chirp, so tests can tell exactly which source frame/time ended up where. Comparisons with the
``ffmpeg`` tool itself are skipped when it is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from avvp.stages.decoding import (SHORT_TOLERANCE_S, DecodeError, decode_audio, decode_clip, decode_frames,
                           probe, spread_indices)
from avvp.stages.decoding.ratesync import CfrRateSync
from avvp.infra.errors import InputError

W, H = 64, 48
CHIRP = (300.0, 3000.0)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="the ffmpeg command-line tool is not installed (reference output)")


def ffmpeg_major() -> int | None:
    """The installed ffmpeg's major version (None if absent or unparsable)."""
    if shutil.which("ffmpeg") is None:
        return None
    first = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split()
    try:
        return int(first[2].split(".")[0].lstrip("n"))
    except (IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# test media


def frame_colour(i: int) -> tuple[int, int, int]:
    """A flat RGB colour that encodes frame index i (robust to lossy coding)."""
    return 16 + 8 * (i % 28), 16 + 8 * (i // 28 % 28), 16 + 8 * (i // 784)


def frame_index(image: np.ndarray) -> int:
    """Recover the index from a decoded frame (any size)."""
    digits = [int(round((image[..., c].astype(float).mean() - 16) / 8)) for c in range(3)]
    return digits[0] + 28 * digits[1] + 784 * digits[2]


def chirp(t: np.ndarray, duration: float) -> np.ndarray:
    f0, f1 = CHIRP
    return np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * duration)))


def make_clip(path: Path, *, duration: float = 2.0, fps: int = 30, vcodec: str | None = "libx264",
              acodec: str | None = "aac", rate: int = 44100, layout: str = "stereo",
              vfr_ms: list[int] | None = None, audio_duration: float | None = None,
              options: dict | None = None) -> Path:
    """Write a small clip with colour-coded frames and a chirp (channel c has amplitude 0.1(c+1))."""
    out = av.open(str(path), "w", options=options or {})
    video = audio = None
    if vcodec:
        video = out.add_stream(vcodec, rate=1000 if vfr_ms else fps)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        if vfr_ms:
            video.codec_context.time_base = Fraction(1, 1000)
        video.options = {"crf": "18"} if vcodec == "libx264" else {"crf": "20", "b:v": "0"}
    if acodec:
        audio = out.add_stream(acodec, rate=rate, layout=layout)
    if video is not None:
        times = vfr_ms if vfr_ms else [None] * round(duration * fps)
        for i, ms in enumerate(times):
            image = np.empty((H, W, 3), np.uint8)
            image[:] = frame_colour(i)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if ms is not None:
                frame.pts, frame.time_base = ms, Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode())
    if audio is not None:
        total = audio_duration if audio_duration is not None else duration
        channels = av.AudioLayout(layout).nb_channels
        n = round(total * rate)
        wave = chirp(np.arange(n) / rate, total)
        gains = 0.1 * np.arange(1, channels + 1)[:, None]
        size = audio.codec_context.frame_size or 1024
        for s in range(0, n, size):
            block = (gains * wave[None, s:s + size]).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, s
            out.mux(audio.encode(frame))
        out.mux(audio.encode())
    out.close()
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(3)
    vfr = np.cumsum([0] + list(rng.choice([20, 33, 50, 70], size=79))).tolist()
    made = {
        "mp4": make_clip(d / "h264_aac.mp4"),
        "webm": make_clip(d / "vp9_opus.webm", fps=24, vcodec="libvpx-vp9", acodec="libopus", rate=48000),
        "webm_video": make_clip(d / "vp9.webm", fps=24, vcodec="libvpx-vp9", acodec=None),
        "mkv": make_clip(d / "h264_flac.mkv", fps=25, acodec="flac"),
        "fps10": make_clip(d / "fps10.mp4", fps=10),
        "fps5": make_clip(d / "fps5.mp4", fps=5, duration=2.4),
        "vfr": make_clip(d / "vfr.mp4", vfr_ms=vfr, audio_duration=vfr[-1] / 1000 + 0.05),
        "surround": make_clip(d / "surround.mp4", rate=48000, layout="5.1"),
        "long": make_clip(d / "long.mp4", duration=6.0),
        "long_webm": make_clip(d / "long.webm", duration=6.0, fps=24, vcodec="libvpx-vp9", acodec="libopus",
                               rate=48000),
        "video_only": make_clip(d / "video_only.mp4", acodec=None),
        "audio_only": make_clip(d / "audio_only.mp4", vcodec=None),
        "short_audio": make_clip(d / "short_audio.mp4", audio_duration=1.8),
        "faststart": make_clip(d / "faststart.mp4", options={"movflags": "faststart"}),
    }
    return made


def ffmpeg_frames(path: Path, *args: str, fps: int = 8) -> np.ndarray:
    """What ``ffmpeg [args] -i path -r fps`` writes, as raw RGB frames."""
    info = probe(path)
    cmd = ["ffmpeg", "-v", "error", *args, "-i", str(path), "-r", str(fps), "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, info["height"], info["width"], 3)


def indices(frames: np.ndarray) -> list[int]:
    return [frame_index(f) for f in frames]


# ---------------------------------------------------------------------------------------------
# the real LLP clip against ffmpeg


@needs_ffmpeg
def test_sample_frames_match_ffmpeg(sample_clip):
    ours = decode_frames(sample_clip, fps=8)
    ref = ffmpeg_frames(sample_clip)
    assert ours.frames.shape == (82, 240, 320, 3) == ref.shape
    assert ours.frames.dtype == np.uint8
    diff = np.abs(ours.frames.astype(np.int16) - ref.astype(np.int16)).mean(axis=(1, 2, 3))
    assert diff.mean() < 2.0
    # each of our frames is the same source frame as ffmpeg's frame at that index, not a neighbour
    for i in range(len(ref)):
        neighbours = {j: np.abs(ours.frames[i].astype(np.int16) - ref[j]).mean()
                      for j in (i - 1, i, i + 1) if 0 <= j < len(ref)}
        assert min(neighbours, key=neighbours.get) == i or neighbours[i] == min(neighbours.values())
    assert np.all(np.diff(ours.times) > 0) and ours.times[0] == 0.0
    assert ours.source_fps == pytest.approx(359 / 12)


@needs_ffmpeg
def test_sample_audio_matches_ffmpeg(sample_clip):
    ours = decode_audio(sample_clip)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(sample_clip), "-ac", "1", "-ar", "16000",
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    ref = np.frombuffer(raw, np.float32)
    assert len(ref) > 160000  # AAC padding: ffmpeg writes ~160,125 samples
    assert ours.samples.shape == (160000,) and ours.samples.dtype == np.float32
    assert ours.sample_rate == 16000 and not ours.padded and not ours.silent
    assert np.corrcoef(ours.samples, ref[:160000])[0, 1] > 0.99
    # ffmpeg's -ac 1 sums a stereo pair with weights 1/sqrt(2); ours is the channel mean
    assert np.allclose(ours.samples * np.sqrt(2), ref[:160000], atol=1e-4)


def test_sample_probe(sample_clip):
    info = probe(sample_clip)
    assert info["has_video"] and info["has_audio"]
    assert (info["width"], info["height"]) == (320, 240)
    assert info["fps"] == pytest.approx(29.92, abs=0.01)
    assert info["duration"] == pytest.approx(10.03, abs=0.01)
    assert (info["sample_rate"], info["channels"]) == (44100, 2)
    assert info["audio_duration"] == pytest.approx(10.0)


def test_sample_subset_resize_and_clip(sample_clip):
    full = decode_frames(sample_clip, size=(112, 112))
    picked = decode_frames(sample_clip, n_frames=80, size=(112, 112))
    assert full.frames.shape == (82, 112, 112, 3)
    assert picked.frames.shape == (80, 112, 112, 3)
    idx = spread_indices(82, 80)
    np.testing.assert_array_equal(picked.frames, full.frames[idx])
    np.testing.assert_array_equal(picked.times, full.times[idx])
    audio, frames = decode_clip(sample_clip, n_frames=80, size=(112, 112))
    np.testing.assert_array_equal(frames.frames, picked.frames)
    np.testing.assert_array_equal(audio.samples, decode_audio(sample_clip).samples)


def test_spread_indices_is_rounded_linspace():
    idx = spread_indices(82, 80)
    assert len(idx) == 80 and idx[0] == 0 and idx[-1] == 81
    np.testing.assert_array_equal(idx, np.round(np.linspace(0, 81, 80)).astype(int))
    np.testing.assert_array_equal(spread_indices(3, 5), [0, 0, 1, 2, 2])  # 0.5 and 1.5 round to even


# ---------------------------------------------------------------------------------------------
# containers and codecs


# Frame rates below 2 × 8 fps (own frame durations) and VFR are checked against the ffmpeg
# generation we reproduce (4.x/5.x, the official extraction's era); later versions moved this code.
@needs_ffmpeg
@pytest.mark.parametrize("name", ["mp4", "mkv", "webm_video", "fps10", "fps5", "vfr", "video_only"])
def test_frame_choice_matches_ffmpeg(clips, name):
    major = ffmpeg_major()
    if name in ("fps10", "fps5", "vfr") and (major is None or major > 5):
        pytest.skip(f"reference behaviour is ffmpeg 4.x/5.x; installed ffmpeg is {major}")
    ours = decode_frames(clips[name], fps=8)
    ref = ffmpeg_frames(clips[name])
    assert indices(ours.frames) == indices(ref)


@needs_ffmpeg
@pytest.mark.parametrize("start,end", [(1.3, 3.3), (2.0, 5.0), (0.05, 4.95)])
def test_window_frames_match_ffmpeg_input_seeking(clips, start, end):
    ours = decode_frames(clips["long"], start=start, end=end, fps=8)
    ref = ffmpeg_frames(clips["long"], "-ss", str(start), "-t", str(round(end - start, 6)))
    assert indices(ours.frames) == indices(ref)
    assert ours.times.min() >= 0 and ours.times.max() < end - start


def test_vp9_opus_webm_frames_follow_time(clips):
    # FFmpeg versions disagree on this file's start time (Opus codec delay), so check by time
    ours = decode_frames(clips["webm"], fps=8)
    src = np.array(indices(ours.frames))
    assert 16 <= len(src) <= 18
    slot_times = np.arange(len(src)) / 8
    assert np.all(np.diff(src) >= 0)
    assert np.all(np.abs(src / 24 - slot_times) <= 1.1 / 8 + 1 / 24 + 1e-9)
    np.testing.assert_allclose(ours.times, src / 24, atol=1e-3)


# channel mean of gains 0.1(c+1); in 5.1 the AAC encoder low-passes the LFE channel (gain 0.4) to
# nothing at the chirp's frequencies, leaving (0.1 + 0.2 + 0.3 + 0.5 + 0.6) / 6
@pytest.mark.parametrize("name,gain", [("mp4", 0.15), ("webm", 0.15), ("mkv", 0.15), ("surround", 1.7 / 6),
                                       ("vfr", 0.15)])
def test_audio_content_and_length(clips, name, gain):
    info = probe(clips[name])
    audio = decode_audio(clips[name])
    expected_len = round(info["audio_duration"] * 16000) if info["audio_duration"] else None
    if expected_len is not None:
        assert len(audio.samples) == expected_len
    t = np.arange(len(audio.samples)) / 16000
    duration = {"vfr": probe(clips["vfr"])["audio_duration"]}.get(name, 2.0)
    truth = gain * chirp(t, duration)
    body = slice(800, len(truth) - 800)  # codec edges
    assert np.corrcoef(audio.samples[body], truth[body])[0, 1] > 0.99
    ratio = np.std(audio.samples[body]) / np.std(truth[body])
    assert 0.9 < ratio < 1.1


def best_lag(x: np.ndarray, y: np.ndarray, max_lag: int = 48, margin: int = 400) -> tuple[int, float]:
    """The shift of x against the equally long, aligned y (samples) that correlates best, and the
    correlation there (ignoring ``margin`` samples at each end)."""
    body = slice(margin, len(x) - margin)
    scores = {lag: np.corrcoef(x[body], y[margin + lag:len(x) - margin + lag])[0, 1]
              for lag in range(-max_lag, max_lag + 1)}
    lag = max(scores, key=scores.get)
    return lag, scores[lag]


# WebM/Matroska timestamps have 1-ms resolution: after a seek, placement there is good to ~1 ms
# (16 samples; this clip is 1 ms early because its Opus packet times are rounded up by 0.5 ms)
@pytest.mark.parametrize("name,max_lag", [("long", 0), ("long_webm", 24)])
def test_audio_window_is_placed_by_time(clips, name, max_lag):
    start, end = 1.3, 3.3
    part = decode_audio(clips[name], start=start, end=end)
    whole = decode_audio(clips[name], end=6.0)
    n = round((end - start) * 16000)
    assert len(part.samples) == n and not part.padded
    lag, score = best_lag(part.samples, whole.samples[round(start * 16000):][:n])
    assert abs(lag) <= max_lag and score > 0.99
    lag, score = best_lag(part.samples, 0.15 * chirp(start + np.arange(n) / 16000, 6.0))
    assert abs(lag) <= max_lag and score > 0.99


def test_webm_window_frames_follow_time(clips):
    start, end = 2.5, 4.5
    ours = decode_frames(clips["long_webm"], start=start, end=end)
    src = np.array(indices(ours.frames))
    np.testing.assert_allclose(ours.times, src / 24 - start, atol=1e-3)
    assert ours.times.min() >= 0 and ours.times.max() < end - start
    slot_times = np.arange(len(src)) / 8
    assert np.all(np.abs(ours.times - slot_times) <= 1.1 / 8 + 1 / 24 + 1e-9)
    assert 16 <= len(src) <= 18


def test_decode_clip_matches_separate_calls(clips):
    audio, frames = decode_clip(clips["long"], start=1.0, end=3.0, n_frames=16, size=(32, 24))
    alone = decode_frames(clips["long"], start=1.0, end=3.0, n_frames=16, size=(32, 24))
    np.testing.assert_array_equal(frames.frames, alone.frames)
    assert frames.frames.shape == (16, 24, 32, 3)
    np.testing.assert_allclose(audio.samples, decode_audio(clips["long"], 1.0, 3.0).samples, atol=1e-6)


def test_probe_surround(clips):
    info = probe(clips["surround"])
    assert (info["sample_rate"], info["channels"], info["fps"]) == (48000, 6, 30.0)
    assert info["video_codec"] == "h264" and info["audio_codec"] == "aac"


# ---------------------------------------------------------------------------------------------
# short streams and missing streams


def test_short_video_within_tolerance_and_beyond(clips):
    near = decode_frames(clips["mp4"], end=2.0 + SHORT_TOLERANCE_S - 0.2)
    assert indices(near.frames) == indices(decode_frames(clips["mp4"]).frames)
    with pytest.raises(DecodeError) as err:
        decode_frames(clips["mp4"], start=0, end=10)
    assert str(clips["mp4"]) in str(err.value)
    assert "clip is 2.00 s long, window needs 10.00 s" in str(err.value)
    with pytest.raises(DecodeError, match="no frame in the window"):
        decode_frames(clips["mp4"], start=5, end=7)
    with pytest.raises(DecodeError, match="audio covers 0.00 s"):
        decode_audio(clips["mp4"], start=5, end=7)


def test_short_audio_is_padded_within_tolerance(clips):
    audio = decode_audio(clips["short_audio"], end=2.0)
    assert len(audio.samples) == 32000 and audio.padded
    assert np.all(audio.samples[round(1.81 * 16000):] == 0)
    assert np.abs(audio.samples[16000:round(1.75 * 16000)]).max() > 0.05
    with pytest.raises(DecodeError, match="needs 10.00 s"):
        decode_audio(clips["short_audio"], end=10.0)


def test_missing_audio(clips):
    with pytest.raises(DecodeError, match="no audio stream") as err:
        decode_audio(clips["video_only"])
    assert isinstance(err.value, InputError) and err.value.path == str(clips["video_only"])
    audio = decode_audio(clips["video_only"], missing="silence")
    assert audio.silent and len(audio.samples) == 32000 and not audio.samples.any()
    sound, frames = decode_clip(clips["video_only"], missing="silence", end=1.5)
    assert sound.silent and len(sound.samples) == 24000 and len(frames.frames) > 0
    with pytest.raises(ValueError):
        decode_audio(clips["video_only"], missing="ignore")


def test_missing_video(clips):
    with pytest.raises(DecodeError, match="no video stream"):
        decode_frames(clips["audio_only"])
    with pytest.raises(DecodeError, match="no video stream"):
        decode_clip(clips["audio_only"])
    assert len(decode_audio(clips["audio_only"]).samples) == 32000


# ---------------------------------------------------------------------------------------------
# bad files


def test_bad_files(clips, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    data = clips["mp4"].read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    garbage = tmp_path / "corrupt_header.mp4"
    garbage.write_bytes(b"\xff" * 64 + data[64:])
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    cases = {empty: "empty", truncated: "not a readable media file", garbage: "not a readable media file",
             text: "not a readable media file", tmp_path / "absent.mp4": "not found"}
    for path, problem in cases.items():
        for call in (decode_frames, decode_audio, decode_clip, probe):
            with pytest.raises(DecodeError) as err:
                call(path)
            assert err.value.path == str(path) and problem in err.value.problem, (path, call)


def test_truncated_after_index(clips, tmp_path):
    data = clips["faststart"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])  # index first, media data cut short
    with pytest.raises(DecodeError, match="truncated or damaged"):
        decode_frames(cut)
    with pytest.raises(DecodeError, match="audio covers"):
        decode_audio(cut)


def test_damaged_media_data_is_tolerated(clips, tmp_path):
    data = bytearray(clips["mp4"].read_bytes())
    middle = len(data) // 2
    data[middle:middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    assert len(decode_frames(damaged).frames) == len(decode_frames(clips["mp4"]).frames)
    audio = decode_audio(damaged)
    assert len(audio.samples) == 32000 and np.isfinite(audio.samples).all()


def test_bad_arguments(clips):
    for kwargs in ({"start": -1}, {"start": 2, "end": 1}, {"fps": 0}, {"n_frames": 0}, {"size": (0, 5)}):
        with pytest.raises(ValueError):
            decode_frames(clips["mp4"], **kwargs)


# ---------------------------------------------------------------------------------------------
# ffmpeg's rate conversion on its own


def test_ratesync_basics():
    same = CfrRateSync(Fraction(25), Fraction(25), Fraction(1, 25))
    assert [same.push(i)[1] for i in range(50)] == [1] * 50
    up = CfrRateSync(Fraction(8), Fraction(4), Fraction(1, 4))
    counts = [up.push(i, duration=1) for i in range(8)]
    assert sum(n for _, n in counts) + up.flush() == 16  # each frame twice
    down = CfrRateSync(Fraction(8), Fraction(30), Fraction(1, 30))
    total = sum(down.push(i)[1] for i in range(300)) + down.flush()
    assert total == 82  # 10 s at 30 fps -> 82 frames, as for the LLP sample
