"""The shard runner: bad clips become failure rows, resume after an interruption, CLI, batching."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

from avvp.cli import main
from avvp.infra.errors import ConfigError, InputError
from avvp.core.batching import Batcher
from avvp.stages.extraction import extract_shard, feature_settings, partial_path, shard_rows
from avvp.stages.extractors import create_extractor
from avvp.core.feature_store import read_store

SECONDS = 2.0
SETTINGS = {"batch_size": 16, "prefetch": 2, "checkpoint_every": 1, "audio_tolerance": 0.5, "engine": "eager",
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
    assert list(fails.columns) == ["video_id", "stage", "reason", "severity"]
    assert set(fails["severity"]) == {"error"}
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
    assert [v for v, _, _ in done] == ["a", "b", "c"]
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
    with pytest.raises(ConfigError, match="unknown setting 'features.colour'"):
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

    from avvp.stages.download import clip_window

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
    ext = create_extractor({"backbone": "resnet18", "size": 32, "crop": 32}, role="frame", engine="eager")
    frames = ext.load(path, 2.0, start=2.0)
    assert frames.shape[0] == 16 and float(frames.float().mean()) > 200
    early = ext.load(path, 2.0, start=0.0)
    assert float(early.float().mean()) < 50


def test_damaged_manifest_is_named(tmp_path):
    import pytest

    from avvp.infra.errors import InputError
    from avvp.stages.extraction import read_manifest

    bad = tmp_path / "manifest.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match=r"manifest.parquet: not a Parquet file"):
        read_manifest(bad)
    with pytest.raises(InputError, match=r"manifest not found"):
        read_manifest(tmp_path / "missing.parquet")


# ---------------------------------------------------------------------------------------------
# one decode for three roles; odd shapes; failed forward passes; short audio (issues 13.1, 13.4, 14)


@pytest.fixture(scope="module")
def models() -> dict:
    """The three extractors of SETTINGS, built once for the joint-job tests."""
    from avvp.stages.extraction import build_extractors, feature_settings

    return build_extractors(feature_settings(SETTINGS), ["audio", "frame", "clip"])


def _table(ids, paths, seconds=SECONDS) -> pd.DataFrame:
    return pd.DataFrame({"video_id": ids, "start": 0.0, "end": seconds, "path": [str(p) for p in paths]})


def test_mixed_aspect_ratios_share_a_shard(tmp_path):
    """crop: null keeps each clip's aspect ratio: a 4:3 and a 16:9 clip never share a batch, and
    both are stored (before: torch.cat of frames of two sizes killed the shard for good)."""
    from media import write_media

    paths = [write_media(tmp_path / "a.mp4", size=(64, 48), colour=40),
             write_media(tmp_path / "b.mp4", size=(64, 36), colour=90),
             write_media(tmp_path / "c.mp4", size=(64, 48), colour=140)]
    ids = [f"{c}{c * 10}_0_2" for c in "abc"]
    settings = {**SETTINGS, "batch_size": 24, "frame": {"backbone": "resnet18", "size": 32, "crop": None}}
    report = extract_shard(_table(ids, paths), "frame", settings, 0, 1, tmp_path / "0.h5",
                           tmp_path / "f.parquet", progress=False)
    assert report.failures.empty and report.videos == 3
    stored, feats, _ = read_store(tmp_path / "0.h5")
    assert stored == ids and feats.shape == (3, 16, 512)
    alone = extract_shard(_table(ids[1:2], paths[1:2]), "frame", settings, 0, 1, tmp_path / "b.h5",
                          progress=False)
    assert alone.videos == 1
    np.testing.assert_array_equal(read_store(tmp_path / "b.h5")[1][0], feats[1])


def test_batcher_never_joins_shapes_and_isolates_failed_forward_passes():
    calls = []

    def forward(batch):
        calls.append(tuple(batch.shape))
        if (batch == 7).any():
            raise RuntimeError("boom")
        return batch.flatten(1).float().numpy()[:, :1]

    b = Batcher(forward, batch_size=4)
    done = b.add("a", torch.zeros(3, 2)) + b.add("wide", torch.ones(2, 5)) + b.add("b", torch.zeros(3, 2))
    done += b.add("bad", torch.full((2, 2), 7)) + b.add("c", torch.zeros(1, 2)) + b.flush()
    assert [d.video_id for d in done] == ["a", "wide", "b", "bad", "c"]
    assert all(len(set(shape[1:] for shape in calls[i:i + 1])) == 1 for i in range(len(calls)))
    assert (3, 2) in calls and (2, 5) in calls  # the 2-wide units went alone, the 5-wide too
    by_id = {d.video_id: d for d in done}
    assert by_id["bad"].rows is None and "RuntimeError: boom" in by_id["bad"].reason
    assert by_id["b"].rows.shape == (3, 1) and by_id["c"].rows.shape == (1, 1)
    assert by_id["wide"].rows[:, 0].tolist() == [1.0, 1.0]


def test_failed_forward_pass_becomes_failure_rows(tmp_path, clips):
    """A forward pass that raises fails its videos only; the shard completes for the others."""
    ext = create_extractor({"backbone": "resnet18", "size": 40, "crop": 32}, role="frame")
    plain = ext.forward

    def fragile(units):  # good1's frames have a blue channel of 450 % 256 = 194
        if (units[:, 2].float().mean(dim=(1, 2)) > 150).any():
            raise RuntimeError("oneDNN: out of memory")
        return plain(units)

    ext.forward = fragile
    manifest = _manifest(clips, GOOD)
    report = extract_shard(manifest, "frame", {**SETTINGS, "batch_size": 24}, 0, 1, tmp_path / "0.h5",
                           tmp_path / "f.parquet", extractor=ext, progress=False)
    fails = pd.read_parquet(tmp_path / "f.parquet")
    assert fails[["video_id", "stage", "severity"]].values.tolist() == [[_vid("good1"), "forward", "error"]]
    assert "out of memory" in fails["reason"].iloc[0]
    assert report.ids == [_vid("good0"), _vid("good2")]


def test_one_decode_serves_three_roles(tmp_path, clips, monkeypatch, models):
    """The joint job decodes each clip once and writes what the roles write alone; a clip that
    fails in one role still gives the others."""
    import avvp.stages.decoding.clip as clip_module
    from avvp.stages.extraction import extract_job

    names = ["good0", "noaudio", "novideo", "good1", "missing"]
    manifest = _manifest(clips, names)
    opened = []
    real = clip_module.open_media
    monkeypatch.setattr(clip_module, "open_media", lambda p: opened.append(Path(p).name) or real(p))
    outs = {r: tmp_path / "joint" / f"{r}.h5" for r in ("audio", "frame", "clip")}
    fails = {r: tmp_path / "joint" / f"{r}.parquet" for r in outs}
    job = extract_job(manifest, list(outs), SETTINGS, 0, 1, outs, fails, progress=False, extractors=models)
    assert sorted(opened) == sorted(["good0.mp4", "noaudio.mp4", "novideo.mp4", "good1.mp4"])
    assert job.clips == 5 and 0 <= job.wait_share < 1
    expected_ids = {"audio": ["good0", "novideo", "good1"], "frame": ["good0", "noaudio", "good1"]}
    expected_ids["clip"] = expected_ids["frame"]
    for role in outs:
        alone = extract_shard(manifest, role, SETTINGS, 0, 1, tmp_path / f"{role}.h5",
                              tmp_path / f"{role}.parquet", progress=False, extractor=models[role])
        ids, joint, attrs = read_store(outs[role])
        assert ids == alone.ids == [_vid(n) for n in expected_ids[role]]
        np.testing.assert_array_equal(joint, read_store(tmp_path / f"{role}.h5")[1])
        table = pd.read_parquet(fails[role])
        assert table.equals(pd.read_parquet(tmp_path / f"{role}.parquet")), role
    reasons = pd.read_parquet(fails["audio"]).set_index("video_id")["reason"]
    assert reasons[_vid("noaudio")] == "no audio stream" and reasons[_vid("missing")] == "no clip"
    assert "no video stream" in pd.read_parquet(fails["frame"]).set_index("video_id")["reason"][_vid("novideo")]


def test_rerun_keeps_roles_whose_settings_did_not_change(tmp_path, clips, models):
    """After one role's settings change, rerunning the job recomputes that role alone."""
    from avvp.stages.extraction import extract_job

    manifest = _manifest(clips, GOOD)
    outs = {r: tmp_path / f"{r}.h5" for r in ("audio", "frame", "clip")}
    fails = {r: tmp_path / f"{r}.parquet" for r in outs}
    extract_job(manifest, list(outs), SETTINGS, 0, 1, outs, fails, progress=False, extractors=models)
    before = {r: outs[r].read_bytes() for r in outs}
    changed = {**SETTINGS, "frame": {**SETTINGS["frame"], "seed": 3}}
    unchanged = {r: models[r] for r in ("audio", "clip")}  # the frame extractor is built anew
    job = extract_job(manifest, list(outs), changed, 0, 1, outs, fails, progress=False, extractors=unchanged)
    assert {r: job.roles[r].kept for r in outs} == {"audio": True, "frame": False, "clip": True}
    assert outs["audio"].read_bytes() == before["audio"] and outs["clip"].read_bytes() == before["clip"]
    assert read_store(outs["frame"])[2]["weights"] == "random:3"
    assert job.roles["audio"].ids == [_vid(n) for n in GOOD]
    # other clips (a changed manifest) are never served from an old store
    fewer = extract_job(manifest.iloc[:2], list(outs), changed, 0, 1, outs, fails, progress=False,
                        extractors=unchanged)
    assert not any(r.kept for r in fewer.roles.values()) and fewer.roles["audio"].videos == 2


def test_killed_joint_job_resumes_to_the_same_bytes(tmp_path, clips):
    """With the fused graph every batch is padded to batch_size, so a video's features do not
    depend on its batch neighbours and a resumed job ends bitwise equal to an uninterrupted one."""
    from avvp.stages.extraction import extract_job

    manifest = _manifest(clips, ["good0", "zero", "good1", "good2"])
    roles = ["audio", "frame", "clip"]
    settings = {**SETTINGS, "engine": "jit", "batch_size": {"audio": 3, "frame": 12, "clip": 3}}

    def outs(name):
        return ({r: tmp_path / name / f"{r}.h5" for r in roles}, {r: tmp_path / name / f"{r}.parquet" for r in roles})

    extract_job(manifest, roles, settings, 0, 1, *outs("full"), progress=False)

    def stop(count, video_id):
        if count == 2:
            raise Stop(video_id)

    with pytest.raises(Stop):
        extract_job(manifest, roles, settings, 0, 1, *outs("part"), on_video=stop, progress=False)
    assert all(partial_path(p).exists() for p in outs("part")[0].values())
    job = extract_job(manifest, roles, settings, 0, 1, *outs("part"), progress=False)
    resumed = {r: job.roles[r].resumed for r in roles}
    assert min(resumed.values()) >= 2 and sum(resumed.values()) < 9, resumed  # something was left
    for role in roles:
        full, part = read_store(outs("full")[0][role]), read_store(outs("part")[0][role])
        assert full[0] == part[0] and np.array_equal(full[1], part[1]), role  # bitwise


def test_short_audio_is_padded_up_to_the_tolerance(tmp_path):
    """An audio track shorter than the video is padded with silence up to audio_tolerance, recorded
    in the store (padded_s) and as a warning row; beyond it, kept as a degraded row while the audio
    covers audio_min_coverage of the window, else an error."""
    from media import write_media

    from avvp.core.feature_store import read_flags

    full = write_media(tmp_path / "full.mp4", seconds=3.0, size=(32, 24))
    short = write_media(tmp_path / "short.mp4", seconds=3.0, audio_seconds=1.9, size=(32, 24))
    manifest = _table(["full0000000_0_3", "short000000_0_3"], [full, short], 3.0)
    settings = {**SETTINGS, "audio_tolerance": 1.5}
    report = extract_shard(manifest, "audio", settings, 0, 1, tmp_path / "a.h5", tmp_path / "a.parquet",
                           progress=False)
    assert report.ids == ["full0000000_0_3", "short000000_0_3"] and report.errors == 0
    padded = read_flags(tmp_path / "a.h5")["padded_s"]
    assert padded[0] == 0 and padded[1] == pytest.approx(1.1, abs=0.05)
    rows = pd.read_parquet(tmp_path / "a.parquet")
    assert rows[["video_id", "severity"]].values.tolist() == [["short000000_0_3", "warning"]]
    assert "1.1" in rows["reason"].iloc[0] and "padded with silence" in rows["reason"].iloc[0]
    assert '"audio_tolerance":1.5' in read_store(tmp_path / "a.h5")[2]["settings"]
    kept = extract_shard(manifest, "audio", {**settings, "audio_tolerance": 0.5}, 0, 1, tmp_path / "k.h5",
                         tmp_path / "k.parquet", progress=False)  # 1.9 of 3 s: 63 % >= 50 %
    assert kept.ids == ["full0000000_0_3", "short000000_0_3"]
    assert kept.failures.set_index("video_id").loc["short000000_0_3", "severity"] == "degraded"
    strict = extract_shard(manifest, "audio", {**settings, "audio_tolerance": 0.5, "audio_min_coverage": 1.0},
                           0, 1, tmp_path / "b.h5", tmp_path / "b.parquet", progress=False)
    assert strict.ids == ["full0000000_0_3"]
    error = strict.failures.set_index("video_id").loc["short000000_0_3"]
    assert error["severity"] == "error" and "audio covers 1.9" in error["reason"]
    # the flag survives merging (shard stores made with the same settings)
    extract_shard(_table(["other000000_0_3"], [full], 3.0), "audio", settings, 0, 1, tmp_path / "c.h5",
                  progress=False)
    assert main(["merge-features", "--out", str(tmp_path / "m.h5"), str(tmp_path / "c.h5"),
                 str(tmp_path / "a.h5")]) == 0
    assert read_flags(tmp_path / "m.h5")["padded_s"].tolist() == pytest.approx([0, 0, 1.1], abs=0.05)


def test_windows_of_another_length_become_failures(tmp_path, clips):
    """A store holds one T; a video whose window gives another T is a failure row, not a crash."""
    manifest = _table([_vid("good0"), "other000000_0_1", _vid("good1")],
                      [clips["good0"], clips["good2"], clips["good1"]])
    manifest.loc[1, "end"] = 1.0
    report = extract_shard(manifest, "clip", SETTINGS, 0, 1, tmp_path / "0.h5", tmp_path / "f.parquet",
                           progress=False)
    assert report.ids == [_vid("good0"), _vid("good1")] and report.shape == (2, 2, 512)
    row = report.failures.iloc[0]
    assert (row["video_id"], row["stage"]) == ("other000000_0_1", "store") and "(1, 512)" in row["reason"]


def test_decoding_processes_feed_the_resident_models(tmp_path, clips, models):
    """The GPU-box structure on the CPU: worker processes decode each clip once for the three
    roles and one process runs all three models; the stores equal the threaded run's, bitwise."""
    from avvp.stages.extraction import extract_job

    manifest = _manifest(clips, ["good0", "noaudio", "good1", "zero"])
    roles = ["audio", "frame", "clip"]
    runs = {}
    for mode in ("thread", "process"):
        outs = {r: tmp_path / mode / f"{r}.h5" for r in roles}
        fails = {r: tmp_path / mode / f"{r}.parquet" for r in roles}
        job = extract_job(manifest, roles, {**SETTINGS, "loader": mode, "workers": 2}, 0, 1, outs, fails,
                          progress=False, extractors=models)
        runs[mode] = {r: (read_store(outs[r])[:2], job.roles[r].failures) for r in roles}
    for role in roles:
        (ids_t, feats_t), fails_t = runs["thread"][role]
        (ids_p, feats_p), fails_p = runs["process"][role]
        assert ids_t == ids_p and np.array_equal(feats_t, feats_p) and fails_t.equals(fails_p), role
    assert runs["process"]["audio"][0][0] == [_vid("good0"), _vid("good1")]
