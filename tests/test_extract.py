"""The shard runner: bad clips become failure rows, resume after an interruption, CLI, batching."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

from avvp.cli import main
from avvp.errors import ConfigError, InputError
from avvp.extract import Batcher, extract_shard, feature_settings, partial_path, shard_rows
from avvp.extractors import create_extractor
from avvp.feature_store import read_store

SECONDS = 2.0
SETTINGS = {"batch_size": 16, "prefetch": 2, "checkpoint_every": 1,
            "frame": {"backbone": "resnet18", "size": 40, "crop": 32},
            "clip": {"size": 16}}


def make_clip(path: Path, seconds: float = SECONDS, video: bool = True, audio: bool = True,
              size=(64, 48), fps: int = 12, rate: int = 16000, freq: float = 440.0,
              faststart: bool = False) -> Path:
    """Write a small H.264/AAC clip with PyAV: a changing picture and a sine tone."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        vs = out.add_stream("libx264", rate=fps) if video else None
        stream = out.add_stream("aac", rate=rate, layout="mono") if audio else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = size[0], size[1], "yuv420p"
            for i in range(int(round(seconds * fps))):
                img = np.zeros((size[1], size[0], 3), np.uint8)
                img[..., 0] = (i * 9) % 256
                img[..., 2] = int(freq) % 256  # each clip its own colour
                img[:, : i % size[0], 1] = 200
                for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
        if stream is not None:
            n = int(seconds * rate)
            signal = (0.3 * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)
            for k in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(signal[None, k:k + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts = rate, k
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path | None]:
    """Three good clips and one of each kind of bad input."""
    d = tmp_path_factory.mktemp("clips")
    good = {f"good{i}": make_clip(d / f"good{i}.mp4", freq=300.0 + 150 * i) for i in range(3)}
    bad: dict[str, Path | None] = {}
    (d / "zero.mp4").write_bytes(b"")
    bad["zero"] = d / "zero.mp4"
    whole = make_clip(d / "fast.mp4", faststart=True).read_bytes()
    (d / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    bad["truncated"] = d / "truncated.mp4"
    bad["noaudio"] = make_clip(d / "noaudio.mp4", audio=False)
    bad["novideo"] = make_clip(d / "novideo.mp4", video=False)
    bad["short"] = make_clip(d / "short.mp4", seconds=0.75)
    raw = good["good0"].read_bytes()
    (d / "header.mp4").write_bytes(b"\xde\xad\xbe\xef" * 16 + raw[64:])
    bad["header"] = d / "header.mp4"
    bad["missing"] = None
    return {**good, **bad}


def _manifest(clips: dict[str, Path | None], names) -> pd.DataFrame:
    ids = [f"{n[:11]:_<11}_0_{int(SECONDS)}" for n in names]
    return pd.DataFrame({"video_id": ids, "youtube_id": [i[:11] for i in ids], "start": 0.0,
                         "end": SECONDS, "split": "train", "labels": [[] for _ in ids],
                         "path": [None if clips[n] is None else str(clips[n]) for n in names]})


def _vid(name: str) -> str:
    return f"{name[:11]:_<11}_0_{int(SECONDS)}"


GOOD = ["good0", "good1", "good2"]
BAD_FOR = {
    "audio": {"zero": "empty", "truncated": "", "noaudio": "no audio stream", "short": "",
              "header": "", "missing": "no clip"},
    "frame": {"zero": "empty", "truncated": "", "novideo": "no video stream", "short": "",
              "header": "", "missing": "no clip"},
}
BAD_FOR["clip"] = BAD_FOR["frame"]


@pytest.mark.parametrize("role, shape", [("audio", (2, 128)), ("frame", (16, 512)), ("clip", (2, 512))])
def test_bad_clips_become_failures(tmp_path, clips, role, shape):
    names = list(clips)
    manifest = _manifest(clips, names)
    report = extract_shard(manifest, role, SETTINGS, 0, 1, tmp_path / "0.h5", tmp_path / "f.parquet",
                           progress=False)
    fails = pd.read_parquet(tmp_path / "f.parquet")
    assert list(fails.columns) == ["video_id", "stage", "reason"]
    expected_bad = BAD_FOR[role]
    assert sorted(fails["video_id"]) == sorted(_vid(n) for n in expected_bad)
    for name, words in expected_bad.items():
        row = fails[fails["video_id"] == _vid(name)].iloc[0]
        assert row["stage"] == ("clip" if name == "missing" else "decode")
        assert words in row["reason"] and row["reason"]
    ids, feats, attrs = read_store(tmp_path / "0.h5")
    good = [n for n in names if n not in expected_bad]
    assert ids == [_vid(n) for n in good]
    assert feats.shape == (len(good),) + shape and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert not np.allclose(feats[0], feats[1])  # different clips, different features
    assert attrs["role"] == role and attrs["weights"] == "random:0"
    assert report.videos == len(good) and not partial_path(tmp_path / "0.h5").exists()
    # the short clip's window is longer than the clip: a decode failure that says so
    reason = fails.set_index("video_id").loc[_vid("short"), "reason"]
    assert "window" in reason


def test_missing_audio_silence(tmp_path, clips):
    manifest = _manifest(clips, ["good0", "noaudio"])
    report = extract_shard(manifest, "audio", {**SETTINGS, "missing_audio": "silence"}, 0, 1,
                           tmp_path / "0.h5", tmp_path / "f.parquet", progress=False)
    assert report.failures.empty
    ids, feats, attrs = read_store(tmp_path / "0.h5")
    assert ids == [_vid("good0"), _vid("noaudio")]
    # silence gives the network's output for a constant log(0.01) input, unlike the tone
    assert not np.allclose(feats[0], feats[1])
    assert '"missing_audio":"silence"' in attrs["settings"]


class Stop(Exception):
    pass


@pytest.mark.parametrize("role", ["audio", "frame"])
def test_resume_after_interruption_equals_uninterrupted(tmp_path, clips, role):
    names = ["good0", "zero", "good1", "good2"]
    manifest = _manifest(clips, names)
    full = extract_shard(manifest, role, SETTINGS, 0, 1, tmp_path / "full.h5", progress=False)

    out = tmp_path / "part.h5"

    def stop_after_two(count, video_id):
        if count == 2:
            raise Stop(video_id)

    with pytest.raises(Stop):
        extract_shard(manifest, role, SETTINGS, 0, 1, out, tmp_path / "f.parquet",
                      on_video=stop_after_two, progress=False)
    assert not out.exists() and not (tmp_path / "f.parquet").exists()
    assert partial_path(out).exists()

    seen = []
    resumed = extract_shard(manifest, role, SETTINGS, 0, 1, out, tmp_path / "f.parquet",
                            on_video=lambda c, v: seen.append(v), progress=False)
    assert resumed.resumed == 2
    assert seen == [_vid("good2")]  # only the video not done before
    assert not partial_path(out).exists()
    ids_a, a, attrs_a = read_store(tmp_path / "full.h5")
    ids_b, b, attrs_b = read_store(out)
    assert ids_a == ids_b == [_vid("good0"), _vid("good1"), _vid("good2")]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert attrs_a == attrs_b
    assert pd.read_parquet(tmp_path / "f.parquet")["video_id"].tolist() == [_vid("zero")]
    assert full.videos == 3


def test_resume_ignores_partial_results_of_other_settings(tmp_path, clips):
    manifest = _manifest(clips, ["good0", "good1"])
    out = tmp_path / "0.h5"

    def stop(count, video_id):
        raise Stop()

    with pytest.raises(Stop):
        extract_shard(manifest, "audio", SETTINGS, 0, 1, out, on_video=stop, progress=False)
    other = {**SETTINGS, "audio": {"seed": 1}}
    report = extract_shard(manifest, "audio", other, 0, 1, out, progress=False)
    assert report.resumed == 0 and report.videos == 2
    assert read_store(out)[2]["weights"] == "random:1"


def test_cli_shards_and_merge(tmp_path, clips):
    import json

    names = ["good0", "missing", "good1", "good2"]
    man = tmp_path / "manifest.parquet"
    _manifest(clips, names).to_parquet(man)
    settings = json.dumps(SETTINGS)
    shards = []
    for shard in range(2):
        out = tmp_path / "shards" / "audio" / f"{shard}.h5"
        code = main(["extract", "--manifest", str(man), "--role", "audio", "--settings", settings,
                     "--shard", str(shard), "--shards", "2", "--out", str(out), "--failures",
                     str(tmp_path / "failures" / f"audio_{shard}.parquet"), "--threads", "1",
                     "--no-progress"])
        assert code == 0
        shards.append(str(out))
    assert read_store(shards[0])[0] == [_vid("good0")]
    assert main(["merge-features", "--out", str(tmp_path / "audio.h5"), *shards]) == 0
    ids, feats, _ = read_store(tmp_path / "audio.h5")
    assert ids == [_vid("good0"), _vid("good1"), _vid("good2")] and feats.shape == (3, 2, 128)
    assert pd.read_parquet(tmp_path / "failures" / "audio_0.parquet")["reason"].tolist() == ["no clip"]
    # bad settings are reported, not a traceback
    assert main(["extract", "--manifest", str(man), "--role", "audio", "--settings",
                 '{"audio": {"weights": "/no/such/vggish.pth"}}', "--out", str(tmp_path / "x.h5"),
                 "--failures", str(tmp_path / "x.parquet"), "--no-progress"]) == 1


def test_batcher_splits_and_joins_videos():
    calls = []

    def forward(batch):
        calls.append(len(batch))
        return batch.float().numpy()[:, None].repeat(2, axis=1)

    b = Batcher(forward, batch_size=4)
    done = b.add("a", torch.arange(3)) + b.add("b", torch.arange(10, 16)) + b.add("c", torch.arange(20, 21))
    done += b.flush()
    assert [v for v, _ in done] == ["a", "b", "c"]
    assert calls == [4, 4, 2]
    assert done[1][1][:, 0].tolist() == [10, 11, 12, 13, 14, 15]
    assert done[0][1].shape == (3, 2)


def test_shards_cover_the_manifest_in_order():
    man = pd.DataFrame({"video_id": [f"v{i}" for i in range(10)]})
    parts = [shard_rows(man, i, 3)["video_id"].tolist() for i in range(3)]
    assert sum(parts, []) == man["video_id"].tolist()
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ConfigError):
        shard_rows(man, 3, 3)
    with pytest.raises(ConfigError, match="unknown key 'features.colour'"):
        feature_settings({"colour": 1})
    twice = pd.DataFrame({"video_id": ["a", "a"], "start": 0.0, "end": 2.0, "path": None})
    with pytest.raises(InputError, match="appears more than once"):
        extract_shard(twice, "audio", SETTINGS, 0, 1, "unused.h5", extractor=object())


def test_one_extractor_serves_several_shards(tmp_path, clips):
    ext = create_extractor({"size": 16}, role="clip")
    manifest = _manifest(clips, GOOD)
    a = extract_shard(manifest, "clip", SETTINGS, 0, 2, tmp_path / "0.h5", extractor=ext, progress=False)
    b = extract_shard(manifest, "clip", SETTINGS, 1, 2, tmp_path / "1.h5", extractor=ext, progress=False)
    assert a.videos + b.videos == 3
    assert a.forward_s > 0 and a.wall_s >= a.forward_s


def test_process_loader_matches_thread_loader(tmp_path, clips):
    manifest = _manifest(clips, ["good0", "zero", "good1"])
    ext = create_extractor({}, role="audio")
    runs = {}
    for mode in ("thread", "process"):
        settings = {**SETTINGS, "loader": mode, "workers": 2}
        report = extract_shard(manifest, "audio", settings, 0, 1, tmp_path / f"{mode}.h5",
                               extractor=ext, progress=False)
        runs[mode] = (report.failures, read_store(tmp_path / f"{mode}.h5"))
    assert runs["thread"][0].equals(runs["process"][0])
    assert runs["process"][0]["video_id"].tolist() == [_vid("zero")]
    assert runs["thread"][1][0] == runs["process"][1][0] == [_vid("good0"), _vid("good1")]
    np.testing.assert_allclose(runs["thread"][1][1], runs["process"][1][1], rtol=1e-5, atol=1e-6)


def test_full_source_video_is_cut_at_decode_time(tmp_path):
    """A downloaded full source video is decoded over its LLP window, not from 0."""
    import av
    import numpy as np
    import pandas as pd

    from avvp.download import clip_window

    # 4 s of video: seconds 0-1 black, 2-3 white; the LLP window is [2, 4).
    path = tmp_path / "Abcdefghijk.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(32):
            img = np.full((32, 32, 3), 0 if i < 16 else 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    pd.DataFrame([{"video_id": "Abcdefghijk_2_4", "youtube_id": "Abcdefghijk", "file": path.name,
                   "start": 2.0, "end": 4.0, "window": "source"}]).to_parquet(tmp_path / "downloads.parquet")
    assert clip_window(path, 2, 4) == (2.0, 4.0)
    assert clip_window(tmp_path / "other.mp4", 2, 4) == (0.0, 2.0)
    from avvp.extractors.frame2d import decode_units

    frames = decode_units(path, 2.0, 16, start=2.0)
    assert frames.shape[0] == 16 and float(frames.float().mean()) > 200
    early = decode_units(path, 2.0, 16, start=0.0)
    assert float(early.float().mean()) < 50


def test_damaged_manifest_is_named(tmp_path):
    import pytest

    from avvp.errors import InputError
    from avvp.extract import read_manifest

    bad = tmp_path / "manifest.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"manifest.parquet: not a Parquet file"):
        read_manifest(bad)
    with pytest.raises(InputError, match=r"manifest not found"):
        read_manifest(tmp_path / "missing.parquet")
