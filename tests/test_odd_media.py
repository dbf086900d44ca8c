"""Twenty-one odd and broken media files through ``avvp extract`` and ``avvp parse`` (issues 13, 20).

The files are written here with PyAV: other containers and codecs (MPEG-TS with MPEG-2/MP2, AVI
with MPEG-4 and PCM, MJPEG, VP9/Opus WebM, 96-kHz 5.1 FLAC in MKV, 8-kHz mono), a 60-s video,
three aspect ratios and an odd size (in one shard, with and without a crop), short audio tracks
(one padded within the tolerance, one covering 60 % of the window: kept and flagged as degraded,
one covering 20 %: the audio role fails), missing streams, one frame, and broken files (zero
bytes, truncated, a corrupt ``moov`` box, text). Each command runs once over all of them, as one
shard, in a fresh process: it must end without a traceback, and every file must be either decoded
or listed with its reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from media import write_media

from avvp.core.checkpoint import save_model
from avvp.stages.extractors import create_extractor
from avvp.core.feature_store import read_store
from avvp.core.model import HAN

ROLES = ("audio", "frame", "clip")
WINDOW = 3  # seconds: every manifest row is a 3-s clip
FEATURES = {
    "batch_size": 16, "threads": 1, "audio_tolerance": 1.0, "audio_min_coverage": 0.5,
    "audio": {"extractor": "vggish", "weights": "none", "seed": 0},
    "frame": {"extractor": "resnet152", "backbone": "resnet18", "weights": "none", "seed": 0,
              "size": 24, "crop": None},  # crop null: every aspect ratio keeps its shape
    "clip": {"extractor": "r2plus1d_18", "weights": "none", "seed": 0, "size": 16},
}

GOOD = {  # decoded in every role
    "transport_stream.ts": dict(vcodec="mpeg2video", acodec="mp2", rate=48000, layout="stereo"),
    "avi_pcm.avi": dict(vcodec="mpeg4", acodec="pcm_s16le", rate=44100, layout="stereo"),
    "mjpeg.avi": dict(vcodec="mjpeg", acodec="pcm_s16le", pix_fmt="yuvj420p"),
    "vp9_opus.webm": dict(vcodec="libvpx-vp9", acodec="libopus", rate=48000, fps=24),
    "surround_96k.mkv": dict(acodec="flac", rate=96000, layout="5.1"),
    "mono_8k.mp4": dict(rate=8000),
    "long_60s.mp4": dict(seconds=60.0, size=(32, 24), fps=8),
    "aspect_4x3.mp4": dict(size=(64, 48)),
    "aspect_16x9.mp4": dict(size=(64, 36)),
    "portrait_9x16.mp4": dict(size=(36, 64)),
    "odd_63x37.mp4": dict(size=(63, 37), pix_fmt="yuv444p"),
    "short_audio.mp4": dict(audio_seconds=WINDOW - 0.94),  # padded with silence: a warning
    "audio_60pct.mp4": dict(audio_seconds=0.6 * WINDOW),  # 1.2 s > tolerance, 60 % >= 50 %: degraded
}
#: Decoded in the video roles only: the audio covers 20 % of the window (< audio_min_coverage).
AUDIO_TOO_SHORT = {"audio_20pct.mp4": dict(audio_seconds=0.2 * WINDOW)}
#: The aspect ratios and sizes that share one shard.
SHAPES = ("aspect_4x3.mp4", "aspect_16x9.mp4", "portrait_9x16.mp4", "odd_63x37.mp4")
ONE_STREAM = {
    "audio_only.m4a": dict(vcodec=None),
    "video_only.mp4": dict(acodec=None),
    "one_frame.mp4": dict(seconds=1 / 12, acodec=None),
}
BROKEN = ("zero_bytes.mp4", "truncated.mp4", "corrupt_moov.mp4", "text.mp4")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("odd")
    made = {name: write_media(d / name, **{"seconds": float(WINDOW), **kw}, colour=17 * i)
            for i, (name, kw) in enumerate({**GOOD, **ONE_STREAM, **AUDIO_TOO_SHORT}.items())}
    (d / "zero_bytes.mp4").write_bytes(b"")
    whole = write_media(d / "whole.mp4", seconds=float(WINDOW)).read_bytes()
    (d / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    at = whole.index(b"moov")
    (d / "corrupt_moov.mp4").write_bytes(whole[:at + 4] + b"\xff" * 64 + whole[at + 68:])
    (d / "text.mp4").write_text("these are meeting notes, not a video\n" * 40)
    (d / "whole.mp4").unlink()
    made.update({name: d / name for name in BROKEN})
    assert len(made) == 21
    return made


def _run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "avvp", *args], capture_output=True, text=True, timeout=900)
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    return proc


def test_extract_one_shard_of_odd_media(media, tmp_path):
    ids = {name: f"{Path(name).stem.replace('_', '')[:11]:x<11}_0_{WINDOW}" for name in media}
    assert len(set(ids.values())) == len(ids)
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame({"video_id": [ids[n] for n in media], "start": 0.0, "end": float(WINDOW),
                  "path": [str(media[n]) for n in media]}).to_parquet(manifest)
    proc = _run("extract", "--manifest", str(manifest), "--role", "all", "--settings", json.dumps(FEATURES),
                "--shards", "1", "--out", str(tmp_path / "{role}.h5"), "--failures",
                str(tmp_path / "{role}.parquet"), "--threads", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = {role: set(GOOD) for role in ROLES}
    expected["audio"] |= {"audio_only.m4a"}
    expected["frame"] |= {"video_only.mp4", "audio_20pct.mp4"}
    expected["clip"] |= {"video_only.mp4", "audio_20pct.mp4"}
    name_of = {v: k for k, v in ids.items()}
    for role in ROLES:
        stored, feats, _ = read_store(tmp_path / f"{role}.h5")
        table = pd.read_parquet(tmp_path / f"{role}.parquet")
        errors = table[table["severity"] == "error"].set_index("video_id")["reason"]
        assert {name_of[v] for v in stored} == expected[role], role
        assert set(stored).isdisjoint(errors.index)
        assert set(stored) | set(errors.index) == set(ids.values()), role  # every file accounted for
        assert all(len(reason) > 5 for reason in errors), errors
        assert torch.isfinite(torch.from_numpy(feats)).all()
    reasons = pd.read_parquet(tmp_path / "frame.parquet").set_index("video_id")["reason"]
    assert "no video stream" in reasons[ids["audio_only.m4a"]]
    assert "empty" in reasons[ids["zero_bytes.mp4"]]
    assert "not a readable media file" in reasons[ids["text.mp4"]]
    from avvp.core.feature_store import read_flags

    audio = pd.read_parquet(tmp_path / "audio.parquet")
    warning = audio[audio["severity"] == "warning"]
    assert warning["video_id"].tolist() == [ids["short_audio.mp4"]]
    assert "padded with silence" in warning["reason"].iloc[0]
    degraded = audio[audio["severity"] == "degraded"]
    assert degraded["video_id"].tolist() == [ids["audio_60pct.mp4"]]
    assert "more than features.audio_tolerance (1 s); kept" in degraded["reason"].iloc[0]
    padded = dict(zip(read_store(tmp_path / "audio.h5")[0], read_flags(tmp_path / "audio.h5")["padded_s"]))
    assert padded[ids["short_audio.mp4"]] == pytest.approx(0.94, abs=0.05)
    assert padded[ids["audio_60pct.mp4"]] == pytest.approx(1.2, abs=0.05)
    assert "no audio stream" in audio.set_index("video_id")["reason"][ids["video_only.mp4"]]
    too_short = audio.set_index("video_id")["reason"][ids["audio_20pct.mp4"]]
    assert "audio covers 0.6" in too_short and "audio_min_coverage" in too_short
    # Every aspect ratio and the odd size in one shard, without a crop (each frame keeps its
    # aspect ratio): all stored, with features of the one store shape.
    frames = dict(zip(*read_store(tmp_path / "frame.h5")[:2]))
    assert all(ids[n] in frames for n in SHAPES)


def test_shapes_in_one_shard_with_a_crop(media, tmp_path):
    """The same four shapes (4:3, 16:9, 9:16, 63 x 37) in one shard with a square centre crop."""
    ids = {name: f"{Path(name).stem.replace('_', '')[:11]:x<11}_0_{WINDOW}" for name in SHAPES}
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame({"video_id": list(ids.values()), "start": 0.0, "end": float(WINDOW),
                  "path": [str(media[n]) for n in SHAPES]}).to_parquet(manifest)
    settings = json.loads(json.dumps(FEATURES))
    settings.update(frame={**settings["frame"], "crop": 16}, engine="eager")  # eager: no compile
    from avvp.cli import main

    threads = torch.get_num_threads()
    try:  # in this process: the torch import of a new one costs more than the extraction
        rc = main(["--threads", "1", "extract", "--manifest", str(manifest), "--role", "frame", "--settings",
                   json.dumps(settings), "--shards", "1", "--out", str(tmp_path / "{role}.h5"), "--failures",
                   str(tmp_path / "{role}.parquet"), "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    stored, feats, attrs = read_store(tmp_path / "frame.h5")
    assert sorted(stored) == sorted(ids.values())
    assert pd.read_parquet(tmp_path / "frame.parquet").empty
    assert json.loads(attrs["settings"])["crop"] == 16
    assert torch.isfinite(torch.from_numpy(feats)).all() and feats.shape[1] == 8 * WINDOW


def test_parse_odd_media_in_one_call(media, tmp_path):
    exts = {role: create_extractor(FEATURES[role], role) for role in ROLES}
    torch.manual_seed(0)
    model = HAN(audio_dim=exts["audio"].dim, frame_dim=exts["frame"].dim, clip_dim=exts["clip"].dim,
                n_classes=3, d_model=16, dim_feedforward=16)
    meta = {"features": {role: ext.describe() for role, ext in exts.items()}}
    save_model(tmp_path / "model.pt", model, ["Dog", "Speech", "Car"], meta)
    out = tmp_path / "parsed"
    proc = _run("--threads", "1", "parse", *[str(p) for p in media.values()], "--model", str(tmp_path / "model.pt"),
                "--out", str(out), "--settings", json.dumps({"device": "cpu", "timeline": False}),
                "--config", str(tmp_path / "none.yaml"), "--no-progress")
    assert proc.returncode == 1  # some files cannot be parsed; that is reported, not raised
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    status = {Path(v).name: s for v, s in zip(summary["video"], summary["status"])}
    assert set(status) == set(media)
    parsed = set(GOOD) | {"video_only.mp4"}
    assert {n for n, s in status.items() if s == "ok"} == parsed
    failed = summary[summary["status"] == "failed"]
    assert all(len(m) > 5 for m in failed["message"])
    for name in media:  # every failure is printed with the file's name and its reason
        if name not in parsed:
            assert f"FAILED  {media[name]}:" in proc.stdout
    long_doc = json.loads((out / "long_60s" / "events.json").read_text())
    assert long_doc["segments"] == 60
    short = json.loads((out / "short_audio" / "events.json").read_text())
    assert short["warnings"] and "padded with silence" in short["warnings"][0]
    assert short["audio_tolerance_s"] == 2.0
