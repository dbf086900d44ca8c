"""avvp parse: any video (length, container) into event tables, with bad and odd input.

The model is tiny and built here: either trained for one epoch on random features through
:func:`avvp.stages.train.train_model` (what ``avvp train`` writes), or a HAN whose segment head is
constant (zero weights, chosen biases), so the events it must find are known exactly. Videos are
written with PyAV (64×48, a few seconds).
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

from avvp.core.checkpoint import save_model
from avvp.cli import main
from avvp.infra.errors import ConfigError, InputError
from avvp.stages.extractors import create_extractor
from avvp.core.model import HAN
from avvp.stages.parse import find_events, load_parser, output_names, parse_video, parse_videos, write_result

W, H = 64, 48
CLASSES = ["Dog", "Speech", "Car"]
#: Cheap extractors (random weights): what the demo config uses, at an even smaller size.
FEATURES = {
    "audio": {"extractor": "vggish", "weights": "none", "seed": 0},
    "frame": {"extractor": "resnet152", "backbone": "resnet18", "weights": "none", "seed": 0,
              "size": 16, "crop": 16},
    "clip": {"extractor": "r2plus1d_18", "weights": "none", "seed": 0, "size": 16},
}
#: Segment-head biases of the constant model: Dog certain, Speech never, Car never.
BIAS = [4.0, -4.0, -4.0]


def make_video(path: Path, seconds: float, video: str | None = "libx264", audio: str | None = "aac",
               fps: int = 10, rate: int = 16000) -> Path:
    """A small clip: moving grey ramp frames and a tone (either stream optional)."""
    out = av.open(str(path), "w")
    vs = out.add_stream(video, rate=fps) if video else None
    aus = out.add_stream(audio, rate=rate, layout="mono") if audio else None
    if vs is not None:
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        for i in range(round(seconds * fps)):
            img = np.full((H, W, 3), (i * 7) % 256, np.uint8)
            img[:, : (i % W)] = 200
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode())
    if aus is not None:
        n = round(seconds * rate)
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
        size = aus.codec_context.frame_size or 1024
        for s in range(0, n, size):
            frame = av.AudioFrame.from_ndarray(wave[None, s:s + size], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, s, Fraction(1, rate)
            out.mux(aus.encode(frame))
        out.mux(aus.encode())
    out.close()
    return path


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def extractors(one_thread) -> dict:
    return {role: create_extractor(FEATURES[role], role) for role in FEATURES}


def _meta(extractors) -> dict:
    """The model-file meta ``avvp train`` records: the feature stores' attributes per role."""
    return {"features": {role: ext.describe() for role, ext in extractors.items()}}


@pytest.fixture(scope="module")
def constant_model(tmp_path_factory, extractors) -> Path:
    exts = extractors
    torch.manual_seed(0)
    model = HAN(audio_dim=exts["audio"].dim, frame_dim=exts["frame"].dim, clip_dim=exts["clip"].dim,
                n_classes=len(CLASSES), d_model=32, dim_feedforward=32)
    with torch.no_grad():
        model.fc_prob.weight.zero_()
        model.fc_prob.bias.copy_(torch.tensor(BIAS))
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, model, CLASSES, _meta(exts))
    return path


@pytest.fixture(scope="module")
def parser(constant_model):
    return load_parser(constant_model, {"device": "cpu"}, config=None)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    made = {
        "long": make_video(d / "long.mp4", 12.4, fps=8),
        "short": make_video(d / "short.mp4", 1.5),
        "mkv": make_video(d / "vp9_opus.mkv", 2.5, video="libvpx-vp9", audio="libopus", rate=48000),
        "no_audio": make_video(d / "no_audio.mp4", 2.0, audio=None),
        "no_video": make_video(d / "no_video.mp4", 2.0, video=None),
        "too_short": make_video(d / "too_short.mp4", 0.6),
        "zero": d / "zero.mp4",
        "truncated": d / "truncated.mp4",
        "corrupt": d / "corrupt.mp4",
    }
    made["zero"].write_bytes(b"")
    good = make_video(d / "good.mp4", 3.0).read_bytes()
    made["truncated"].write_bytes(good[: len(good) // 2])
    made["corrupt"].write_bytes(b"\x13\x37" * 64 + good[128:])
    return made


# ------------------------------------------------------------------------------------ events

def test_find_events_runs_confidence_and_av():
    t = 6
    fp = np.zeros((t, 2, 2), np.float32)
    fp[:, 0, 0] = [0.9, 0.8, 0.1, 0.7, 0.7, 0.7]  # audio, class 0
    fp[:, 1, 0] = [0.6, 0.2, 0.2, 0.9, 0.5, 0.1]  # visual, class 0
    audio_on = (fp[:, 0].T >= 0.5).astype(np.uint8)
    visual_on = (fp[:, 1].T >= 0.5).astype(np.uint8)
    ev = find_events(fp, audio_on, visual_on, ["A", "B"])
    got = [(r["class"], r["modality"], r["onset"], r["offset"]) for r in ev.to_dict("records")]
    assert got == [("A", "audio", 0, 2), ("A", "visual", 0, 1), ("A", "audio-visual", 0, 1),
                   ("A", "audio", 3, 6), ("A", "visual", 3, 5), ("A", "audio-visual", 3, 5)]
    conf = ev["confidence"].tolist()
    assert conf[0] == pytest.approx(0.85)  # mean audio probability over [0, 2)
    assert conf[4] == pytest.approx(0.7)  # mean visual probability over [3, 5)
    assert conf[5] == pytest.approx(0.6)  # audio-visual: mean of min(0.7, 0.9), min(0.7, 0.5)
    assert list(ev.columns) == ["class", "modality", "onset", "offset", "confidence"]


def test_find_events_nothing_on():
    ev = find_events(np.zeros((3, 2, 2)), np.zeros((2, 3)), np.zeros((2, 3)), ["A", "B"])
    assert ev.empty and list(ev.columns) == ["class", "modality", "onset", "offset", "confidence"]


# ------------------------------------------------------------------------------------ videos

def test_long_video_gives_whole_segments_and_drops_the_tail(parser, videos, tmp_path):
    result = parse_video(parser, videos["long"])  # 12.4 s: longer than LLP's 10-s clips
    assert result.segments == 12
    assert result.tail_s == pytest.approx(0.4, abs=0.06)
    assert result.frame_prob.shape == (12, 2, len(CLASSES))
    # constant head: Dog on everywhere in both modalities, nothing else
    assert result.events[["class", "modality", "onset", "offset"]].values.tolist() == [
        ["Dog", "audio", 0.0, 12.0], ["Dog", "visual", 0.0, 12.0], ["Dog", "audio-visual", 0.0, 12.0]]
    sig = 1 / (1 + np.exp(-BIAS[0]))
    assert np.allclose(result.events["confidence"], sig, atol=1e-5)


def test_features_are_embedded_window_by_window(parser, videos, extractors):
    """Each window's rows are what the extractor gives for that window alone: VGGish's examples
    restart at every window, as in the 10-s training clips."""
    from avvp.stages.parse import extract_features

    path = videos["long"]  # 12.4 s: windows [0, 10) and [10, 12)
    feats, warnings = extract_features(parser, path, 12)
    assert warnings == []
    assert {r: tuple(x.shape[:2]) for r, x in feats.items()} == {"audio": (1, 12), "frame": (1, 96), "clip": (1, 12)}
    for role, ext in extractors.items():
        tail = ext.forward(ext.load(path, 2.0, start=10.0))
        assert np.allclose(feats[role][0, -len(tail):].numpy(), tail, atol=1e-5), role
    one_pass = extractors["audio"].forward(extractors["audio"].load(path, 12.0))
    assert not np.allclose(feats["audio"][0, 10:].numpy(), one_pass[10:], atol=1e-3)
    small = load_parser(parser.model_path, {"device": "cpu", "window": 5}, config=None)
    assert {r: x.shape for r, x in extract_features(small, path, 12)[0].items()} == \
        {r: x.shape for r, x in feats.items()}


def test_real_llp_clip(parser, sample_clip):
    """The real LLP sample (10.03 s, H.264/AAC 44.1 kHz stereo): ten 1-s segments, like the features."""
    result = parse_video(parser, sample_clip)
    assert result.segments == 10 and result.tail_s == pytest.approx(0.028, abs=0.01)
    assert result.notes == [] and result.warnings == []
    assert result.events["offset"].max() == 10.0


def test_gate_han_vs_ma(parser, videos):
    """Gate ma reads each modality's own video probability, gate han the global one."""
    torch.manual_seed(0)
    ex = parser.extractors
    model = HAN(audio_dim=ex["audio"].dim, frame_dim=ex["frame"].dim, clip_dim=ex["clip"].dim,
                n_classes=len(CLASSES), d_model=32, dim_feedforward=32).eval()
    p = dataclasses.replace(parser, model=model)
    probe = parse_video(p, videos["short"])
    # a class and modality whose own video probability is above the global one
    own = {0: probe.a_prob, 1: probe.v_prob}
    m, c = max(((m, c) for m in (0, 1) for c in range(len(CLASSES))),
               key=lambda mc: own[mc[0]][mc[1]] - probe.global_prob[mc[1]])
    assert own[m][c] > probe.global_prob[c]
    threshold = float(own[m][c] + probe.global_prob[c]) / 2
    on = {}
    for gate in ("ma", "han"):
        q = dataclasses.replace(p, settings=dict(p.settings, gate=gate, threshold=threshold))
        res = parse_video(q, videos["short"])
        on[gate] = (res.audio_on, res.visual_on)[m][c]
        # events are exactly the runs of the binarised segments
        modality = ("audio", "visual")[m]
        ev = res.events[(res.events["class"] == CLASSES[c]) & (res.events["modality"] == modality)]
        assert int((ev["offset"] - ev["onset"]).sum()) == int(on[gate].sum())
    assert on["ma"].any() and not on["han"].any()


def test_cli_parses_good_and_reports_bad(constant_model, videos, tmp_path, capsys):
    out = tmp_path / "parsed"
    names = ["mkv", "no_audio", "zero", "truncated", "corrupt", "no_video", "too_short"]
    rc = main(["parse", *[str(videos[n]) for n in names], "--model", str(constant_model),
               "--out", str(out), "--settings", '{"device": "cpu"}', "--config", "none.yaml",
               "--no-progress"])
    assert rc == 1  # some failed
    printed = capsys.readouterr().out
    summary = pd.read_csv(out / "summary.csv").set_index("video")
    status = {Path(v).stem: s for v, s in summary["status"].items()}
    assert status == {"vp9_opus": "ok", "no_audio": "ok", "zero": "failed", "truncated": "failed",
                      "corrupt": "failed", "no_video": "failed", "too_short": "failed"}
    msg = {Path(v).stem: str(m) for v, m in summary["message"].items()}
    for name in ("zero", "truncated", "corrupt", "no_video", "too_short"):
        assert f"FAILED  {videos[name]}: {msg[name]}" in printed  # the error names the file
    assert "empty" in msg["zero"]
    assert "no video stream" in msg["no_video"]
    assert "at least one whole second" in msg["too_short"]
    assert "5 failed" in printed

    # the good ones: JSON, CSV and picture; the silent one says so
    doc = json.loads((out / "vp9_opus" / "events.json").read_text())
    assert doc["segments"] == 2 and doc["tail_s"] == pytest.approx(0.5, abs=0.06)
    assert doc["notes"] == []
    table = pd.read_csv(out / "vp9_opus" / "events.csv")
    assert table[["class", "modality", "onset", "offset"]].values.tolist() == [
        [e["class"], e["modality"], e["onset"], e["offset"]] for e in doc["events"]]
    assert (out / "vp9_opus" / "timeline.png").stat().st_size > 1000
    silent = json.loads((out / "no_audio" / "events.json").read_text())
    assert any("no audio stream" in n for n in silent["notes"])
    assert "no audio stream" in msg["no_audio"]


def test_folder_input(parser, videos, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("mkv", "no_audio"):
        (folder / videos[name].name).write_bytes(videos[name].read_bytes())
    (folder / "notes.txt").write_text("not a video, ignored in a folder")
    quiet = dataclasses.replace(parser, settings=dict(parser.settings, timeline=False))
    summary = parse_videos([folder], None, tmp_path / "out", progress=False, parser=quiet)
    assert summary.failed == 0 and len(summary.table) == 2
    assert "2 of 2 videos parsed, 0 failed" in summary.text()
    assert (tmp_path / "out" / "no_audio" / "events.json").exists()
    assert not (tmp_path / "out" / "no_audio" / "timeline.png").exists()


def test_trained_checkpoint_works_out_of_the_box(tmp_path, videos, extractors):
    """A model written by the training code carries classes and extractor settings."""
    from avvp.core.data import Features, SplitData, build_targets
    from avvp.stages.train import train_model

    exts = extractors
    n, t = 8, 10
    g = torch.Generator().manual_seed(0)
    feats = Features([f"v{i}" for i in range(n)], torch.randn(n, t, exts["audio"].dim, generator=g),
                     torch.randn(n, t, exts["frame"].dim, generator=g),
                     torch.randn(n, t, exts["clip"].dim, generator=g),
                     {role: ext.describe() for role, ext in exts.items()})
    weak = np.eye(len(CLASSES), dtype=np.float32)[np.arange(n) % len(CLASSES)]
    targets = build_targets(weak, feats.video_ids, CLASSES)
    settings = {"model": {"d_model": 32, "dim_feedforward": 32},
                "train": {"epochs": 1, "batch_size": 4, "device": "cpu"}}
    model_path = tmp_path / "model.pt"
    train_model(SplitData(feats, weak), targets, None, CLASSES, settings, model_path, seed=1,
                progress=False, meta={"features": feats.attrs})
    # no --config needed: the extractor settings come from the model file
    p = load_parser(model_path, {"device": "cpu"}, config=None)
    assert p.feature_source == "model file" and p.classes == CLASSES
    res = parse_video(p, videos["mkv"])
    assert res.frame_prob.shape == (2, 2, len(CLASSES))
    assert set(res.events["class"]) <= set(CLASSES)


def test_extractor_settings_from_config_when_the_model_has_none(tmp_path, videos, extractors):
    def bare(frame_dim: int) -> Path:
        model = HAN(audio_dim=128, frame_dim=frame_dim, clip_dim=extractors["clip"].dim,
                    n_classes=len(CLASSES), d_model=32, dim_feedforward=32)
        path = tmp_path / f"bare{frame_dim}.pt"
        save_model(path, model, CLASSES, {})  # records no extractor settings
        return path

    with pytest.raises(ConfigError, match="records no usable feature-extractor settings"):
        load_parser(bare(512), {"device": "cpu"}, config=None)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"dataset": "x", "data": {"source": "synth"}, "features": FEATURES}))
    p = load_parser(bare(512), {"device": "cpu"}, config=config)
    assert p.feature_source == str(config) and any(str(config) in n for n in p.notes)
    res = parse_video(p, videos["mkv"])
    assert res.segments == 2 and any(str(config) in n for n in res.notes)
    # extractors whose feature sizes do not fit the model are refused, naming both
    with pytest.raises(ConfigError, match="frame 512 \\(model: 100\\)"):
        load_parser(bare(100), {"device": "cpu"}, config=config)


def test_missing_model_and_bad_settings(tmp_path, constant_model):
    from avvp.infra.errors import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="nope.pt"):
        load_parser(tmp_path / "nope.pt", {"device": "cpu"}, config=None)
    with pytest.raises(ConfigError, match="parse.gate"):
        load_parser(constant_model, {"gate": "both"}, config=None)
    with pytest.raises(ConfigError, match=r"parse.window: 0 is less than the minimum of 1"):
        load_parser(constant_model, {"window": 0}, config=None)
    with pytest.raises(InputError, match="same file name"):
        parse_videos([tmp_path / "a" / "x.mp4", tmp_path / "b" / "x.mp4"], constant_model,
                     tmp_path / "o", {"device": "cpu"}, config=None)


def test_output_names():
    a, b, c = Path("d/x.mp4"), Path("d/x.mkv"), Path("d/y.webm")
    assert output_names([a, b, c]) == {a: "x_mp4", b: "x_mkv", c: "y"}


def test_short_audio_track_is_padded_with_a_warning(parser, constant_model, tmp_path):
    """An 8-s video whose audio track stops at 6.06 s (downloads often have a slightly short
    track): parsed, the 1.94 s padded with silence and reported; below parse.audio_tolerance it is
    an error naming the file (issue 13.4)."""
    from media import write_media

    path = write_media(tmp_path / "short_audio.mp4", seconds=8.0, audio_seconds=6.06, fps=10)
    result = parse_video(parser, path)
    assert result.segments == 8 and result.notes == []
    assert len(result.warnings) == 1 and "1.94 s of [0, 8) s uncovered" in result.warnings[0]
    folder = tmp_path / "out"
    write_result(dataclasses.replace(parser, settings=dict(parser.settings, timeline=False)), result, folder)
    doc = json.loads((folder / "events.json").read_text())
    assert doc["warnings"] == result.warnings and doc["audio_tolerance_s"] == 2.0
    strict = load_parser(constant_model, {"device": "cpu", "audio_tolerance": 1.0, "audio_min_coverage": 0.8},
                         config=None)  # 6.06 of 8 s: 76 %
    with pytest.raises(InputError, match="audio covers 6.06 s") as err:
        parse_video(strict, path)
    assert err.value.path == str(path) or str(path) in str(err.value)
