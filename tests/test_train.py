"""Training, resume, determinism, refined labels, prediction and bad input, on a tiny data set."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from avvp.core.annotations import read_llp, write_tables
from avvp.core.checkpoint import load_model
from avvp.cli import main as cli_main
from avvp.core.data import build_targets, load_annotations, load_features
from avvp.infra.errors import ConfigError, InputError
from avvp.core.feature_store import write_store
from avvp.core.prediction_file import Predictions
from avvp.stages.train import run_training, train_settings

CLASSES = ["Dog", "Speech", "Car"]
T = 10
DIMS = {"audio": 6, "frame": 5, "clip": 4}
TINY = {"model": {"d_model": 16, "nhead": 2, "dim_feedforward": 16, "dropout": 0.1},
        "train": {"epochs": 3, "batch_size": 4, "lr": 0.003, "device": "cpu", "gate": "han",
                  "contrastive": {"enabled": True}}}
ATTRS = {"extractor": "test", "settings": "{}", "weights": "random:0"}


def _name(i: int) -> str:
    return f"vid{i:08d}_{10 * i}_{10 * i + 10}"


def _write_dataset(root: Path, n_train=24, n_val=6, n_test=6, seed=0) -> dict:
    """LLP-format CSVs (3 classes), the manifest and dense tables, and three feature stores whose
    features carry the labels (audio events in the audio features, visual in the frames)."""
    rng = np.random.default_rng(seed)
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True)
    (ann_dir / "classes.txt").write_text("".join(f"{c}\n" for c in CLASSES))
    n = n_train + n_val + n_test
    names = [_name(i) for i in range(n)]
    labels = [sorted(rng.choice(len(CLASSES), size=rng.integers(1, 3), replace=False)) for _ in range(n)]
    splits = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    files = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
    for split, (lo, hi) in splits.items():
        rows = [f"{names[i]}\t{','.join(CLASSES[c] for c in labels[i])}" for i in range(lo, hi)]
        (ann_dir / files[split]).write_text("filename\tevent_labels\n" + "\n".join(rows) + "\n")
    audio = rng.normal(0, 0.3, size=(n, T, DIMS["audio"])).astype(np.float32)
    frame = rng.normal(0, 0.3, size=(n, 8 * T, DIMS["frame"])).astype(np.float32)
    clip = rng.normal(0, 0.3, size=(n, T, DIMS["clip"])).astype(np.float32)
    dense = {"audio": [], "visual": []}
    for i in range(n):
        for c in labels[i]:
            for modality, x, scale in (("audio", audio, 1), ("visual", frame, 8)):
                on = int(rng.integers(0, 6))
                off = int(rng.integers(on + 1, T + 1))
                x[i, on * scale:off * scale, c] += 2.0
                dense[modality].append(f"{names[i]}\t{on}\t{off}\t{CLASSES[c]}")
    for modality, rows in dense.items():
        (ann_dir / f"AVVP_eval_{modality}.csv").write_text("filename\tonset\toffset\tevent_labels\n"
                                                           + "\n".join(rows) + "\n")
    write_tables(read_llp(ann_dir), root)
    feats = root / "features"
    for role, x in (("audio", audio), ("frame", frame), ("clip", clip)):
        write_store(feats / f"{role}.h5", names, x, {"role": role, **ATTRS})
    return {"root": root, "manifest": root / "manifest.parquet", "features": feats, "names": names,
            "labels": labels, "n_train": n_train, "frame": frame}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    return _write_dataset(tmp_path_factory.mktemp("tiny"))


def _settings(**train) -> dict:
    s = json.loads(json.dumps(TINY))
    s["train"].update(train)
    return s


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path)[0].state_dict()


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------- data

def test_features_are_pooled_on_load(tiny):
    ids = tiny["names"][:5]
    f = load_features(tiny["features"], ids)
    assert f.video_ids == ids
    assert f.frame.shape == (5, T, DIMS["frame"]) and f.audio.shape == (5, T, DIMS["audio"])
    want = tiny["frame"][:5].reshape(5, T, 8, DIMS["frame"]).mean(axis=2)
    np.testing.assert_allclose(f.frame.numpy(), want, rtol=1e-6, atol=1e-6)
    assert f.dims() == {"audio_dim": 6, "frame_dim": 5, "clip_dim": 4}


def test_bad_features_are_named(tiny, tmp_path):
    with pytest.raises(InputError, match=r"audio\.h5: 1 of 2 requested videos have no features: nope"):
        load_features(tiny["features"], [tiny["names"][0], "nope"])
    ids = tiny["names"][:3]
    for role, shape, msg in (("clip", (3, 9, 4), r"clip\.h5: clip features have 9 rows per video, expected 10"),
                             ("frame", (3, 75, 5), r"frame\.h5: frame features have 75 rows per video, "
                                                   r"expected a multiple of 10")):
        bad = tmp_path / role
        bad.mkdir()
        for r in ("audio", "frame", "clip"):
            src = tiny["features"] / f"{r}.h5"
            (bad / f"{r}.h5").symlink_to(src)
        (bad / f"{role}.h5").unlink()
        write_store(bad / f"{role}.h5", ids, np.zeros(shape, np.float32), {"role": role, **ATTRS})
        with pytest.raises(InputError, match=msg):
            load_features(bad, ids)
    nan = tmp_path / "nan"
    nan.mkdir()
    for r in ("frame", "clip"):
        (nan / f"{r}.h5").symlink_to(tiny["features"] / f"{r}.h5")
    x = np.zeros((3, T, 6), np.float32)
    x[1, 2, 3] = np.nan
    write_store(nan / "audio.h5", ids, x, {"role": "audio", **ATTRS})
    with pytest.raises(InputError, match=rf"audio\.h5: video '{ids[1]}' has non-finite audio features"):
        load_features(nan, ids)
    with pytest.raises(InputError, match=r"missing\.h5|feature store not found"):
        load_features(tmp_path / "empty", ids)


def test_refined_label_targets(tiny, tmp_path):
    ann = load_annotations(tiny["manifest"])
    assert ann.classes == CLASSES
    ids = ann.split("train")["video_id"].tolist()
    weak = ann.weak(ids)
    r0 = int(np.flatnonzero(weak.sum(1) >= 1)[0])
    c0 = int(np.flatnonzero(weak[r0])[0])
    table = pd.DataFrame({"video_id": [ids[r0]], "class": [CLASSES[c0]], "audio": [0], "visual": [0]})
    path = tmp_path / "labels.parquet"
    table.to_parquet(path)
    t = build_targets(weak, ids, CLASSES, path)
    assert t.audio[r0, c0] == 0 and t.visual[r0, c0] == 0 and t.global_[r0, c0] == 1
    other = weak.copy()
    other[r0, c0] = 0
    # Unlisted pairs keep their weak labels (visual smoothed).
    np.testing.assert_allclose(np.delete(t.visual.numpy().ravel(), r0 * 3 + c0),
                               np.delete((0.9 * weak + 0.05).ravel(), r0 * 3 + c0), rtol=1e-6)
    aliased = build_targets(weak, ids, CLASSES, path, alias_global=True)
    assert aliased.global_[r0, c0] == 0
    bad = table.assign(video_id=["someone_else_0_10"])
    bad.to_parquet(path)
    with pytest.raises(InputError, match=r"labels\.parquet: 1 video\(s\) not in the training set"):
        build_targets(weak, ids, CLASSES, path)
    zero = np.flatnonzero(weak[r0] == 0)
    if zero.size:
        table.assign(**{"class": [CLASSES[int(zero[0])]]}).to_parquet(path)
        with pytest.raises(InputError, match="is not a weak label"):
            build_targets(weak, ids, CLASSES, path)


# ------------------------------------------------------------------------------ settings

@pytest.mark.parametrize("given, message", [
    ({"train": {"epochs": 0}}, r"train\.epochs: 0 is less than the minimum of 1"),
    ({"train": {"lr": -1.0}}, r"train\.lr: -1\.0 is less than or equal to the minimum of 0"),
    ({"train": {"gamma": 1.5}}, r"train\.gamma: 1\.5 is greater than the maximum of 1"),
    ({"train": {"select": "first"}}, r"train\.select: 'first' is not one of \['last', 'best'\]"),
    ({"train": {"batch_size": 2.5}}, r"train\.batch_size: 2\.5 is not of type 'integer'"),
    ({"train": {"contrastive": {"tau": 0}}}, r"train\.contrastive\.tau: 0 is less than or equal to the minimum"),
    ({"train": {"epoch": 3}}, r"unknown setting 'train\.epoch'"),
    ({"train": {"precision": "fp16"}}, r"train\.precision: 'fp16' is not one of \['fp32', 'bf16'\]"),
    ({"model": {"dropout": 1.5}}, r"model\.dropout: 1\.5 is greater than the maximum of 1"),
    ({"optim": {}}, r"unknown settings section\(s\) optim"),
])
def test_bad_settings_are_named(given, message):
    with pytest.raises(ConfigError, match=message):
        train_settings(given)


def test_workflow_config_sections_are_valid_settings():
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    s = train_settings({"model": config["model"], "train": config["train"]})
    assert s["train"]["lr"] == pytest.approx(3e-4)


# ------------------------------------------------------------------------------ training

def test_training_lowers_loss_and_writes_outputs(tiny, tmp_path):
    out = tmp_path / "run" / "model.pt"
    res = run_training(tiny["features"], tiny["manifest"], out, _settings(epochs=6, select="best"),
                       seed=0, progress=False)
    hist = pd.read_parquet(out.parent / "history.parquet")
    assert list(hist["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert hist["loss"].iloc[-1] < hist["loss"].iloc[0]
    assert hist["loss_contrastive"].notna().all()
    assert np.allclose(hist["loss"], hist["loss_global"] + hist["loss_audio"] + hist["loss_visual"]
                       + hist["loss_contrastive"], rtol=1e-5)
    assert {"val_segment_type", "val_event_type", "val_segment_av"} <= set(hist.columns)
    # Best validation segment-level Type@AV, ties to the later epoch.
    scores = hist["val_segment_type"].to_numpy()
    assert res.epoch == int(hist["epoch"][np.flatnonzero(scores == scores.max())[-1]])
    assert (out.parent / "curve.png").stat().st_size > 0
    assert (out.parent / "checkpoints" / "last.pt").exists()
    model, info = load_model(out)
    assert info["classes"] == CLASSES and info["meta"]["epoch"] == res.epoch
    assert info["meta"]["settings"]["train"]["select"] == "best"
    assert _same(model.state_dict(), res.model.state_dict())


def test_same_seed_gives_bitwise_identical_weights(tiny, tmp_path):
    a, b, c = (tmp_path / x / "model.pt" for x in "abc")
    for path, seed in ((a, 5), (b, 5), (c, 6)):
        run_training(tiny["features"], tiny["manifest"], path, _settings(), seed=seed, progress=False)
    assert _same(_weights(a), _weights(b))
    assert not _same(_weights(a), _weights(c))
    assert pd.read_parquet(a.parent / "history.parquet")["loss"].tolist() == \
        pd.read_parquet(b.parent / "history.parquet")["loss"].tolist()


def test_bf16_precision_trains_reproducibly_close_to_fp32(tiny, tmp_path):
    runs = {}
    for name, precision in (("fp32", "fp32"), ("bf16", "bf16"), ("bf16_again", "bf16")):
        out = tmp_path / name / "model.pt"
        run_training(tiny["features"], tiny["manifest"], out, _settings(epochs=4, precision=precision),
                     seed=3, progress=False)
        runs[name] = (pd.read_parquet(out.parent / "history.parquet"), _weights(out))
    fp32, bf16 = runs["fp32"][0]["loss"].to_numpy(), runs["bf16"][0]["loss"].to_numpy()
    assert bf16[-1] < bf16[0]                              # it learns
    assert np.allclose(bf16, fp32, rtol=0.05)              # the same losses, to bfloat16 accuracy
    assert not np.array_equal(bf16, fp32)                  # ... computed with other arithmetic
    assert _same(runs["bf16"][1], runs["bf16_again"][1])   # and reproducible
    assert all(w.dtype == torch.float32 for w in runs["bf16"][1].values())


class _Stop(Exception):
    pass


def test_resume_after_an_exception_matches_uninterrupted(tiny, tmp_path):
    full = tmp_path / "full" / "model.pt"
    run_training(tiny["features"], tiny["manifest"], full, _settings(epochs=4, select="best"), seed=2,
                 progress=False)

    def stop(event, epoch, step):
        if event == "batch" and epoch == 3 and step == 2:
            raise _Stop

    part = tmp_path / "part" / "model.pt"
    with pytest.raises(_Stop):
        run_training(tiny["features"], tiny["manifest"], part, _settings(epochs=4, select="best"), seed=2,
                     progress=False, hook=stop)
    # No output of the run exists before it ends (Snakemake would take it for a finished one);
    # the progress so far is under checkpoints/.
    for name in ("model.pt", "history.parquet", "curve.png"):
        assert not (part.parent / name).exists(), name
    assert pd.read_parquet(part.parent / "checkpoints" / "history.parquet")["epoch"].tolist() == [1, 2]
    seen = []
    run_training(tiny["features"], tiny["manifest"], part, _settings(epochs=4, select="best"), seed=2,
                 progress=False, hook=lambda e, ep, s: seen.append(ep) if e == "epoch" else None)
    assert seen == [3, 4]  # resumed after the last complete epoch
    assert _same(_weights(full), _weights(part))
    pd.testing.assert_frame_equal(pd.read_parquet(full.parent / "history.parquet").drop(columns="seconds"),
                                  pd.read_parquet(part.parent / "history.parquet").drop(columns="seconds"))


def test_resume_after_sigkill_matches_uninterrupted(tiny, tmp_path):
    settings = _settings(epochs=3)
    full = tmp_path / "full" / "model.pt"
    run_training(tiny["features"], tiny["manifest"], full, settings, seed=4, progress=False)
    part = tmp_path / "part" / "model.pt"
    script = textwrap.dedent(f"""
        import os, signal, torch
        torch.set_num_threads({torch.get_num_threads()})  # bitwise equality needs the same threads
        from avvp.stages.train import run_training
        def kill(event, epoch, step):
            if event == "batch" and epoch == 2 and step == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        run_training({str(tiny['features'])!r}, {str(tiny['manifest'])!r}, {str(part)!r},
                     {settings!r}, seed=4, progress=False, hook=kill)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (part.parent / "checkpoints" / "last.pt").exists() and not part.exists()
    run_training(tiny["features"], tiny["manifest"], part, settings, seed=4, progress=False)
    assert _same(_weights(full), _weights(part))


def test_truncated_resume_file_says_how_to_start_afresh(tiny, tmp_path):
    out = tmp_path / "run" / "model.pt"

    def stop(event, epoch, step):
        if event == "epoch" and epoch == 1:
            raise _Stop

    with pytest.raises(_Stop):
        run_training(tiny["features"], tiny["manifest"], out, _settings(epochs=2), seed=1,
                     progress=False, hook=stop)
    last = out.parent / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # a damaged copy, a full disk
    with pytest.raises(InputError) as err:
        run_training(tiny["features"], tiny["manifest"], out, _settings(epochs=2), seed=1,
                     progress=False)
    message = str(err.value)
    assert message.startswith(f"{last}: cannot read as a torch checkpoint")
    assert f"rm {last}" in message and "--restart" in message
    assert cli_main(["train", "--features-dir", str(tiny["features"]), "--manifest",
                     str(tiny["manifest"]), "--out", str(out), "--settings",
                     json.dumps(_settings(epochs=2)), "--seed", "1", "--restart",
                     "--no-progress"]) == 0
    assert out.exists()


def test_changed_settings_do_not_resume(tiny, tmp_path):
    out = tmp_path / "run" / "model.pt"
    run_training(tiny["features"], tiny["manifest"], out, _settings(epochs=2), seed=1, progress=False)
    seen = []
    run_training(tiny["features"], tiny["manifest"], out, _settings(epochs=2, lr=0.001), seed=1,
                 progress=False, hook=lambda e, ep, s: seen.append(ep) if e == "epoch" else None)
    assert seen == [1, 2]


# ------------------------------------------------------------------------- command line

def test_cli_train_with_refined_labels_then_predict(tiny, tmp_path):
    ann = load_annotations(tiny["manifest"])
    ids = ann.split("train")["video_id"].tolist()
    by_id = ann.videos.set_index("video_id")["labels"]
    rows = [(v, c, 1, int(i % 2)) for i, v in enumerate(ids) for c in by_id[v]]
    labels = tmp_path / "labels.parquet"
    pd.DataFrame(rows, columns=["video_id", "class", "audio", "visual"]).to_parquet(labels)
    model = tmp_path / "m" / "model.pt"
    settings = _settings(epochs=2)
    settings["train"]["contrastive"]["enabled"] = False
    rc = cli_main(["train", "--features-dir", str(tiny["features"]), "--manifest", str(tiny["manifest"]),
                   "--out", str(model), "--labels", str(labels), "--settings", json.dumps(settings),
                   "--seed", "3", "--contrastive", "on", "--tau", "0.3", "--no-progress"])
    assert rc == 0
    meta = load_model(model)[1]["meta"]
    assert meta["settings"]["train"]["contrastive"]["enabled"] is True
    assert meta["settings"]["train"]["contrastive"]["tau"] == 0.3
    assert meta["labels"] == str(labels) and meta["seed"] == 3

    pred_path = tmp_path / "p" / "test.npz"
    rc = cli_main(["predict", "--model", str(model), "--features-dir", str(tiny["features"]),
                   "--manifest", str(tiny["manifest"]), "--split", "test", "--out", str(pred_path),
                   "--settings", '{"device": "cpu"}', "--no-progress"])
    assert rc == 0
    pred = Predictions.load(pred_path)
    assert pred.video_ids == ann.split("test")["video_id"].tolist()
    assert pred.classes == CLASSES
    assert pred.frame_prob.shape == (6, T, 2, 3)
    assert np.all((pred.global_prob >= 0) & (pred.global_prob <= 1))


def test_cli_errors_name_the_problem(tiny, tmp_path, capsys):
    rc = cli_main(["train", "--features-dir", str(tiny["features"]), "--manifest", str(tiny["manifest"]),
                   "--out", str(tmp_path / "model.pt"), "--settings", '{"train": {"epochs": -2}}'])
    assert rc == 1
    assert "train.epochs: -2 is less than the minimum of 1" in capsys.readouterr().err
    rc = cli_main(["predict", "--model", str(tmp_path / "none.pt"), "--features-dir", str(tiny["features"]),
                   "--manifest", str(tiny["manifest"]), "--split", "val", "--out", str(tmp_path / "p.npz")])
    assert rc == 1
    assert "none.pt" in capsys.readouterr().err
    # A model for other feature sizes.
    from avvp.core.checkpoint import save_model
    from avvp.core.model import HAN

    other = tmp_path / "other.pt"
    save_model(other, HAN(audio_dim=7, frame_dim=5, clip_dim=4, n_classes=3, d_model=8), CLASSES)
    rc = cli_main(["predict", "--model", str(other), "--features-dir", str(tiny["features"]),
                   "--manifest", str(tiny["manifest"]), "--split", "val", "--out", str(tmp_path / "p.npz"),
                   "--no-progress"])
    assert rc == 1
    assert "audio.h5: audio features are 6-d but the model expects 7-d" in capsys.readouterr().err
    assert not (tmp_path / "p.npz").exists()


def test_avvp_train_completes_its_settings_once(tiny, tmp_path, monkeypatch):
    import avvp.settings as S

    calls = []
    real = S.complete_sections
    monkeypatch.setattr(S, "complete_sections", lambda *a, **k: calls.append(a) or real(*a, **k))
    rc = cli_main(["train", "--features-dir", str(tiny["features"]), "--manifest", str(tiny["manifest"]),
                   "--out", str(tmp_path / "model.pt"), "--no-progress",
                   "--settings", '{"model": {"d_model": 16, "dim_feedforward": 16}, "train": {"epochs": 1}}'])
    assert rc == 0 and len(calls) == 1
