"""The synthetic demo data set: plan determinism, LLP format, clips that match their annotations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import yaml

from avvp.core.annotations import DENSE_FILES, FULL_FILE, SPLIT_FILES, TRAIN_TRUTH_FILES, read_llp
from avvp.cli import main
from avvp.infra.errors import ConfigError, InputError
from avvp.stages.synth import PLAN_FILE, PLAN_KEYS, RENDER_KEYS, make_plan, read_plan, render_shard, resolve, write_annotations
from avvp.stages.synth.classes import BY_NAME, CATALOGUE
from avvp.stages.synth.plan import modality_probabilities
from avvp.stages.synth.render import clip_fingerprint

REPO = Path(__file__).resolve().parents[1]
TINY = {"n_train": 4, "n_val": 1, "n_test": 1, "duration": 3, "width": 64, "height": 48, "shards": 1}
CSV_FILES = [FULL_FILE, *SPLIT_FILES.values(), *DENSE_FILES.values(), *TRAIN_TRUTH_FILES.values()]


def tiny(**extra) -> dict:
    return resolve({**TINY, **extra})


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, H, W, 3) uint8, audio (C, N) float32) of a clip."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    return frames, audio


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[dict, Path, Path, dict]:
    """A tiny planned and rendered data set: (settings, annotation folder, clips folder, plan)."""
    root = tmp_path_factory.mktemp("synth")
    settings = tiny(n_train=6, n_val=2, n_test=2, seed=3)
    write_annotations(make_plan(settings), root / "annotations")
    render_shard(root / "annotations", settings, 0, 1, root / "clips", progress=False)
    return settings, root / "annotations", root / "clips", read_plan(root / "annotations")


# ----------------------------------------------------------------------------- plan and format

def test_plan_is_deterministic(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_annotations(make_plan(tiny(seed=seed, n_train=20)), tmp_path / name)
    for f in CSV_FILES + ["classes.txt", PLAN_FILE]:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert any((tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes() for f in CSV_FILES)


def test_llp_format_matches_real_files(dataset, llp_dir):
    settings, folder, _, plan = dataset
    for name in CSV_FILES:
        text = (folder / name).read_text()
        real = (llp_dir / (name if name in (FULL_FILE, *SPLIT_FILES.values(), *DENSE_FILES.values())
                           else DENSE_FILES["audio"])).read_text()
        assert text.splitlines()[0] == real.splitlines()[0], name
        assert text.endswith("\n") and "\r" not in text and '"' not in text
        n_columns = len(real.splitlines()[0].split("\t"))
        assert all(len(line.split("\t")) == n_columns for line in text.splitlines()), name
        for line in text.splitlines()[1:]:
            assert re.fullmatch(r"[A-Za-z0-9_-]{11}_0_3", line.split("\t")[0])
    ann = read_llp(folder)
    assert ann.classes == [c.name for c in CATALOGUE[:settings["n_classes"]]]
    assert list(ann.videos["split"].value_counts().sort_index().items()) == [("test", 2), ("train", 6), ("val", 2)]
    assert (ann.videos["youtube_id"].str.len() == 11).all()
    full = pd.read_csv(folder / FULL_FILE, sep="\t")
    assert list(full["filename"]) == list(ann.videos["video_id"])  # train, val, test in order
    evaluated = set(ann.videos.loc[ann.videos["split"] != "train", "video_id"])
    assert set(ann.audio["video_id"]) | set(ann.visual["video_id"]) <= evaluated
    assert set(ann.train_audio["video_id"]) | set(ann.train_visual["video_id"]) <= set(ann.split("train")["video_id"])
    assert [v["video_id"] for v in plan["videos"]] == list(ann.videos["video_id"])


def test_weak_labels_are_the_union_of_modalities(dataset):
    _, folder, _, _ = dataset
    ann = read_llp(folder)
    dense = pd.concat([ann.audio, ann.visual, ann.train_audio, ann.train_visual])
    union = dense.groupby("video_id")["class"].agg(set)
    for vid, labels in zip(ann.videos["video_id"], ann.videos["labels"]):
        assert set(labels) == union[vid], vid
    assert len(ann.train_audio) + len(ann.train_visual) > 0


def test_plan_statistics_over_many_videos():
    settings = resolve({"n_train": 400, "n_val": 50, "n_test": 50})
    plan = make_plan(settings)
    events = [e for v in plan["videos"] for e in v["events"]]
    single = [e for e in events if (e["audio"] is None) != (e["visual"] is None)]
    assert all(e["audio"] is not None or e["visual"] is not None for e in events)
    assert len(single) / len(events) >= max(0.3, settings["min_single_modality"])
    probs = {modality_probabilities(c, settings["min_single_modality"]) for c in plan["classes"]}
    assert len(probs) > 3  # class-dependent
    counts = [len(v["events"]) for v in plan["videos"]]
    assert min(counts) == 1 and max(counts) == 3
    both = [e for e in events if e["audio"] is not None and e["visual"] is not None]
    differ = sum(e["audio"] != e["visual"] for e in both) / len(both)
    assert 0.15 < differ < 0.45  # extent_jitter 0.3
    decoys = sum(v["decoy"] is not None for v in plan["videos"]) / len(plan["videos"])
    assert 0.2 < decoys < 0.4  # cross_modal_decoy 0.3
    for e in events:
        for extent in (e["audio"], e["visual"]):
            assert extent is None or 0 <= extent[0] < extent[1] <= settings["duration"]
    assert len({e["class"] for e in events}) == settings["n_classes"]


def test_signatures_are_distinct():
    bands = sorted(c.audio.band for c in CATALOGUE)
    assert all(a[1] <= b[0] for a, b in zip(bands, bands[1:]))  # disjoint frequency bands
    assert bands[0][0] >= 125 and bands[-1][1] <= 7500          # inside the VGGish mel range
    assert len({c.visual.hue for c in CATALOGUE}) == len(CATALOGUE)
    assert len({(c.visual.shape, c.visual.texture) for c in CATALOGUE}) == len(CATALOGUE)


# ----------------------------------------------------------------------------- clips

def _band_energy(audio: np.ndarray, sr: int, seconds: int, band: tuple[float, float]) -> np.ndarray:
    mono = audio.mean(axis=0)[: seconds * sr].reshape(seconds, sr)
    spectrum = np.abs(np.fft.rfft(mono, axis=1)) ** 2
    freqs = np.fft.rfftfreq(sr, 1.0 / sr)
    return spectrum[:, (freqs >= band[0]) & (freqs <= band[1])].sum(axis=1)


def _hue_share(frames: np.ndarray, hue: float, fps: int) -> np.ndarray:
    """Per second: the share of pixels with a saturated colour within 12 degrees of ``hue``."""
    f = frames.astype(np.float32) / 255
    top, low = f.max(-1), f.min(-1)
    spread = np.maximum(top - low, 1e-6)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    h = np.where(top == r, ((g - b) / spread) % 6,
                 np.where(top == g, (b - r) / spread + 2, (r - g) / spread + 4)) * 60
    saturated = (top - low) / np.maximum(top, 1e-6) > 0.35
    near = np.abs((h - hue + 180) % 360 - 180) < 12
    share = (near & saturated & (top > 0.2)).mean(axis=(1, 2))
    return share.reshape(-1, fps).mean(axis=1)


def _seconds(extent, duration: int) -> np.ndarray:
    out = np.zeros(duration, dtype=bool)
    if extent is not None:
        out[extent[0]:extent[1]] = True
    return out


def test_clips_agree_with_annotations(dataset):
    settings, _, clips, plan = dataset
    duration, sr, fps = settings["duration"], settings["sample_rate"], settings["fps"]
    checked_audio = checked_visual = 0
    for video in plan["videos"]:
        frames, audio = decode(clips / f"{video['youtube_id']}.mp4")
        decoy = video["decoy"] or {}
        audio_decoy = _seconds((decoy["onset"], decoy["offset"]) if decoy.get("modality") == "audio" else None,
                               duration)
        for event in video["events"]:
            sig = BY_NAME[event["class"]]
            heard = _seconds(event["audio"], duration)
            energy = _band_energy(audio, sr, duration, sig.audio.band)
            quiet = ~heard & ~audio_decoy
            if heard.any() and quiet.any():
                assert energy[heard].min() > 4 * energy[quiet].max(), (video["video_id"], event)
                checked_audio += 1
            seen = _seconds(event["visual"], duration)
            share = _hue_share(frames, sig.visual.hue, fps)
            assert (share[seen] > 0.05).all(), (video["video_id"], event, share)
            assert (share[~seen] < 0.01).all(), (video["video_id"], event, share)
            checked_visual += seen.any() and (~seen).any()
    assert checked_audio >= 3 and checked_visual >= 3


def test_container_properties(tmp_path):
    settings = resolve({"n_train": 1, "n_val": 1, "n_test": 1, "width": 64, "height": 48})
    write_annotations(make_plan(settings), tmp_path / "ann")
    table = render_shard(tmp_path / "ann", settings, 1, 3, tmp_path / "clips", progress=False)
    assert list(table["video_id"]) == ["S0000000001_0_10"]
    path = Path(table["path"][0])
    assert path == tmp_path / "clips" / "S0000000001.mp4"
    with av.open(str(path)) as c:
        assert "mp4" in c.format.name
        video, audio = c.streams.video[0], c.streams.audio[0]
        assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
        assert video.average_rate == 25 and (video.width, video.height) == (64, 48)
        assert audio.rate == 44100 and audio.channels == 2
        assert abs(c.duration / av.time_base - 10) < 0.05
    frames, samples = decode(path)
    assert frames.shape == (250, 48, 64, 3)
    assert samples.shape[0] == 2 and 441000 <= samples.shape[1] <= 441000 + 2048


def test_other_formats(tmp_path):
    settings = tiny(n_train=1, channels=1, fps=10, sample_rate=16000, duration=2, width=32, height=32)
    write_annotations(make_plan(settings), tmp_path / "ann")
    table = render_shard(tmp_path / "ann", settings, 0, 1, tmp_path / "clips", progress=False)
    with av.open(table["path"][0]) as c:
        assert c.streams.video[0].average_rate == 10 and c.streams.audio[0].rate == 16000
        assert c.streams.audio[0].channels == 1
    frames, samples = decode(Path(table["path"][0]))
    assert frames.shape == (20, 32, 32, 3) and samples.shape[0] == 1 and samples.shape[1] >= 32000


def test_render_is_deterministic(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        settings = tiny(seed=seed)
        write_annotations(make_plan(settings), tmp_path / name / "ann")
        render_shard(tmp_path / name / "ann", settings, 0, 3, tmp_path / name / "clips", progress=False)
    for clip in ("S0000000000.mp4", "S0000000003.mp4"):
        (fa, aa), (fb, ab), (fc, ac) = (decode(tmp_path / n / "clips" / clip) for n in "abc")
        assert np.array_equal(fa, fb) and np.array_equal(aa, ab)
        assert not np.array_equal(fa, fc) and not np.array_equal(aa, ac)


def test_render_skips_complete_clips_and_redoes_stale_ones(tmp_path):
    settings = tiny(n_train=3, n_val=1, n_test=1)
    write_annotations(make_plan(settings), tmp_path / "ann")
    clips = tmp_path / "clips"
    table = render_shard(tmp_path / "ann", settings, 0, 2, clips, progress=False)
    assert list(table["youtube_id"]) == ["S0000000000", "S0000000002", "S0000000004"]
    listed = pd.read_parquet(clips / "shard_0.parquet")
    assert list(listed.columns) == ["video_id", "youtube_id", "path"] and len(listed) == 3
    paths = [Path(p) for p in table["path"]]
    stamps = [p.stat().st_mtime_ns for p in paths]
    paths[1].write_bytes(paths[1].read_bytes()[:1000])  # a broken clip
    render_shard(tmp_path / "ann", settings, 0, 2, clips, progress=False)
    assert paths[0].stat().st_mtime_ns == stamps[0] and paths[2].stat().st_mtime_ns == stamps[2]
    assert clip_fingerprint(paths[1]) is not None
    brighter = dict(settings, visual_contrast=0.9)  # a render key: every clip is stale
    old = clip_fingerprint(paths[0])
    render_shard(tmp_path / "ann", brighter, 0, 2, clips, progress=False)
    assert clip_fingerprint(paths[0]) != old
    assert not list(clips.glob(".*tmp*"))


def test_bad_settings_and_inputs(tmp_path):
    with pytest.raises(ConfigError, match="synth.colour"):
        resolve({"colour": 1})
    with pytest.raises(ConfigError, match="synth.width: 65 is not a multiple of 2"):
        resolve({"width": 65})
    with pytest.raises(ConfigError, match="n_classes"):
        resolve({"n_classes": len(CATALOGUE) + 1})
    with pytest.raises(ConfigError, match="events_per_video"):
        resolve({"events_per_video": [3, 1]})
    with pytest.raises(InputError, match=PLAN_FILE):
        render_shard(tmp_path, tiny(), 0, 1, tmp_path / "clips", progress=False)
    write_annotations(make_plan(tiny()), tmp_path / "ann")
    with pytest.raises(ConfigError, match="seed"):
        render_shard(tmp_path / "ann", tiny(seed=9), 0, 1, tmp_path / "clips", progress=False)
    with pytest.raises(ConfigError, match="shard 2"):
        render_shard(tmp_path / "ann", tiny(), 2, 2, tmp_path / "clips", progress=False)
    (tmp_path / "ann" / PLAN_FILE).write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_plan(tmp_path / "ann")


def test_cli(tmp_path, capsys):
    settings = json.dumps({**TINY, "n_train": 2})
    assert main(["synth", "plan", "--settings", settings, "--out", str(tmp_path / "ann")]) == 0
    assert main(["synth", "render", "--annotations", str(tmp_path / "ann"), "--settings", settings,
                 "--shard", "1", "--shards", "2", "--out", str(tmp_path / "clips"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "clips").iterdir()) == [
        "S0000000001.mp4", "S0000000003.mp4", "shard_1.parquet"]
    assert main(["synth", "plan", "--settings", '{"n_trian": 2}', "--out", str(tmp_path / "x")]) == 1
    assert "n_trian" in capsys.readouterr().err


def test_config_and_schema_match_the_plan_and_render_keys():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = {*PLAN_KEYS, *RENDER_KEYS, "shards"}
    assert set(config["synth"]) == keys
    assert set(schema["properties"]["synth"]["properties"]) == keys
    assert resolve(config["synth"]) == resolve(None) == config["synth"]
