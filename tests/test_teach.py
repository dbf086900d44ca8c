"""VALOR's pseudo labels: thresholding, the .npy layout, the release import, scoring, the stand-in
teachers and the drift report."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from avvp.core.annotations import read_llp
from avvp.core.classes import LLP_CLASSES
from avvp.stages.drift import compare_arrays, compare_stores, write_report
from avvp.infra.errors import ConfigError, InputError
from avvp.core.feature_store import read_store, write_store
from avvp.stages.synth.classes import class_names
from avvp.stages.synth.plan import write_annotations
from avvp.core.pseudo_labels import PseudoLabels, read_pseudo_labels
from avvp.stages.teachers.npy import export_npy, import_npy
from avvp.stages.teachers.pseudo import resolve_thresholds, teach, threshold_scores
from avvp.stages.teachers.release import import_release
from avvp.stages.teachers.score import score_split
from avvp.stages.teachers.standin import choose_thresholds, run_standin, teacher_scores, train_teacher

CLASSES = class_names(8)
A, B = CLASSES[0], CLASSES[1]


def _event(name, audio=None, visual=None):
    return {"class": name, "audio": audio, "visual": visual}


def _folder(tmp_path, videos):
    """An LLP-format annotation folder of hand-made videos: (id, split, events)."""
    plan = {"format": "avvp-synth-plan", "version": 1, "settings": {}, "classes": CLASSES,
            "videos": [{"video_id": f"{v}_0_10", "youtube_id": v, "split": s, "events": e}
                       for v, s, e in videos]}
    folder = tmp_path / "annotations"
    write_annotations(plan, folder)
    return read_llp(folder)


def _ann(tmp_path):
    return _folder(tmp_path, [
        ("T0000000001", "train", [_event(A, [0, 4], None), _event(B, None, [5, 10])]),
        ("V0000000001", "val", [_event(B, [0, 10], [0, 10])]),
        ("X0000000001", "test", [_event(A, [0, 5], None), _event(B, [2, 4], [2, 4])]),
    ])


def test_threshold_is_strict_and_keeps_weak_labels_only():
    scores = np.array([[[1.0, 2.0, 3.0], [0.5, 2.5, 9.0]]])  # (1, 2, 3)
    weak = np.array([[1, 1, 0]])
    labels = threshold_scores(scores, [1.0, 2.0, 0.0], weak)
    # class 0: 1.0 is not > 1.0; class 1: both above; class 2: above but not a weak label
    np.testing.assert_array_equal(labels, [[[0, 0, 0], [0, 1, 0]]])
    assert labels.dtype == np.uint8
    with pytest.raises(ValueError, match="do not fit"):
        threshold_scores(scores, [1.0, 2.0], weak)


def _score_store(path, ids, scores, **attrs):
    with h5py.File(path, "w") as h5:
        h5.attrs.update(attrs)
        h5.create_dataset("video_ids", data=ids, dtype=h5py.string_dtype())
        h5.create_dataset("features", data=np.zeros((len(ids), 10, 4), np.float32))
        h5.create_dataset("scores", data=scores.astype(np.float32))


def test_teach_thresholds_official_recorded_or_given(tmp_path):
    ids = ["aaaaaaaaaaa_0_10", "bbbbbbbbbbb_0_10"]
    scores = np.full((2, 10, 25), 15.0, np.float32)
    scores[:, 5:, 0] = 20.5  # Speech: CLIP threshold 20
    weak = np.zeros((2, 25))
    weak[0, [0, 1]] = 1
    _score_store(tmp_path / "clip_image.h5", ids, scores, role="clip_image")
    labels = teach("visual", tmp_path / "clip_image.h5", ids[::-1], LLP_CLASSES, weak[::-1])
    assert labels.video_ids == ids[::-1] and labels.source["thresholds"][:2] == [20.0, 15.0]
    np.testing.assert_array_equal(labels.labels[1, :, 0], [0] * 5 + [1] * 5)  # Speech
    assert labels.labels[1, :, 1].sum() == 0          # Car: 15 is not > 15
    assert labels.labels[0].sum() == 0                # no weak labels
    with pytest.raises(InputError, match="not the official audio teacher"):
        teach("audio", tmp_path / "clip_image.h5", ids, LLP_CLASSES, weak)
    assert resolve_thresholds("audio", "abc", {"thresholds": "[1, 2, 3]"}) == [1.0, 2.0, 3.0]
    assert resolve_thresholds("audio", "abc", {}, [0, 1, 2.5]) == [0.0, 1.0, 2.5]
    with pytest.raises(ConfigError, match="3 numbers"):
        resolve_thresholds("audio", "abc", {}, [0, 1])
    with pytest.raises(InputError, match="no teacher scores"):
        teach("visual", tmp_path / "clip_image.h5", ["ccccccccccc_0_10"], LLP_CLASSES, weak[:1])
    write_store(tmp_path / "plain.h5", ids, np.zeros((2, 10, 4)),
                {"role": "clip_image", "extractor": "x", "settings": "{}", "weights": "x"})
    with pytest.raises(InputError, match="plain.h5.*no 'scores'"):
        teach("visual", tmp_path / "plain.h5", ids, LLP_CLASSES, weak)


def _labels(ids, seed=0, modality="visual"):
    rng = np.random.default_rng(seed)
    return PseudoLabels(modality, ids, CLASSES, (rng.random((len(ids), 10, 8)) > 0.6).astype(np.uint8))


def test_npy_round_trip_and_every_broken_file_in_the_failure_table(tmp_path):
    ids = [f"{c * 11}_0_10" for c in "abcdefgh"]
    labels = _labels(ids)
    folder = export_npy(labels, tmp_path / "CLIP")
    assert folder.name == "segment_pseudo_labels" and len(list(folder.glob("*.npy"))) == 8
    saved = np.load(folder / "aaaaaaaaaaa.npy")
    assert saved.dtype == np.int64 and saved.shape == (10, 8)
    back, failures = import_npy(tmp_path / "CLIP", "visual", ids, CLASSES)
    np.testing.assert_array_equal(back.labels, labels.labels)
    assert back.video_ids == ids and failures.empty

    np.save(folder / "bbbbbbbbbbb.npy", np.zeros((10, 7), np.int64))
    np.save(folder / "ccccccccccc.npy", np.zeros((10, 8), np.int32))
    np.save(folder / "ddddddddddd.npy", np.full((10, 8), 2, np.int64))
    (folder / "eeeeeeeeeee.npy").write_text("not numpy")
    np.save(folder / "fffffffffff.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "ggggggggggg.npy").unlink()
    back, failures = import_npy(folder, "visual", ids, CLASSES)
    assert back.video_ids == [ids[0], ids[7]]
    np.testing.assert_array_equal(back.labels, labels.labels[[0, 7]])
    stages = dict(zip(failures["video_id"], failures["stage"]))
    assert stages == {ids[1]: "shape", ids[2]: "dtype", ids[3]: "values", ids[4]: "unreadable",
                      ids[5]: "unreadable", ids[6]: "missing"}
    for vid, path, reason in zip(failures["video_id"], failures["path"], failures["reason"]):
        assert path.endswith(f"{vid[:11]}.npy") and path in reason
    assert "outside {0, 1}" in failures.set_index("video_id").loc[ids[3], "reason"]
    for name in ("a", "h"):
        (folder / f"{name * 11}.npy").unlink()
    with pytest.raises(InputError, match="no visual pseudo-label file could be read"):
        import_npy(folder, "visual", [ids[0], ids[1]], CLASSES)


def test_release_import_features_labels_and_failures(tmp_path):
    ids = [f"{c * 11}_0_10" for c in "abc"]
    rng = np.random.default_rng(1)
    release = tmp_path / "release"
    for name, shape, modality in (("CLIP", (10, 768), "visual"), ("CLAP", (64, 768), "audio")):
        feats = release / name / "features"
        feats.mkdir(parents=True)
        for c in "abc":
            np.save(feats / f"{c * 11}.npy", rng.standard_normal(shape).astype(np.float32))
        export_npy(_labels(ids, 2, modality), release / name)
    np.save(release / "CLIP" / "features" / "bbbbbbbbbbb.npy", np.zeros((10, 768), np.float64))
    np.save(release / "CLAP" / "features" / "ccccccccccc.npy", np.zeros((10, 768), np.float32))
    np.save(release / "CLAP" / "segment_pseudo_labels" / "aaaaaaaaaaa.npy", np.full((10, 8), 3, np.int64))
    weak = np.ones((3, 8))
    rep = import_release(release, ids, CLASSES, weak, tmp_path / "features", tmp_path / "pseudo",
                         tmp_path / "failures.parquet")
    assert rep.features == {"clap_audio": 2, "clip_image": 2} and rep.labels == {"audio": 2, "visual": 3}
    got_ids, clip, attrs = read_store(tmp_path / "features" / "clip_image.h5")
    assert got_ids == [ids[0], ids[2]] and clip.shape == (2, 10, 768) and attrs["role"] == "clip_image"
    np.testing.assert_array_equal(clip[1], np.load(release / "CLIP" / "features" / "ccccccccccc.npy"))
    assert read_store(tmp_path / "features" / "clap_audio.h5")[1].shape == (2, 64, 768)
    table = pd.read_parquet(tmp_path / "failures.parquet")
    rows = {(r.modality, r.kind, r.video_id): r for r in table.itertuples()}
    assert set(rows) == {("visual", "features", ids[1]), ("audio", "features", ids[2]), ("audio", "labels", ids[0])}
    assert rows["visual", "features", ids[1]].stage == "dtype"
    assert "bbbbbbbbbbb.npy" in rows["visual", "features", ids[1]].reason
    assert rows["audio", "features", ids[2]].stage == "shape"
    assert rows["audio", "labels", ids[0]].stage == "values"
    audio = read_pseudo_labels(tmp_path / "pseudo" / "audio.parquet", "audio", CLASSES)
    assert audio.video_ids == ids[1:]


def test_scores_as_predictions_hand_computed(tmp_path):
    ann = _ann(tmp_path)
    ids = list(ann.videos["video_id"])
    audio = np.zeros((3, 10, 8), np.uint8)
    visual = np.zeros((3, 10, 8), np.uint8)
    audio[2, 0:2, 0] = 1          # test: A audible 0-5, predicted 0-2
    audio[2, 2:4, 1] = 1          # B audible 2-4, exact
    visual[2, 2:6, 1] = 1         # B visible 2-4, predicted 2-6
    audio[0, 0:2, 0] = 1          # train: A audible 0-4, predicted 0-2
    visual[0, 4:10, 1] = 1        # B visible 5-10, predicted 4-10
    pa, pv = PseudoLabels("audio", ids, CLASSES, audio), PseudoLabels("visual", ids, CLASSES, visual)
    result = score_split(pa, pv, ann, "test", tmp_path / "test")
    o = result.overall
    assert o["segment_audio"] == pytest.approx((4 / 7 + 1) / 2)
    assert o["segment_visual"] == pytest.approx(2 / 3)
    assert o["segment_av"] == pytest.approx(1.0)
    assert o["segment_type"] == pytest.approx((11 / 14 + 2 / 3 + 1) / 3)
    assert o["event_audio"] == pytest.approx(0.5)  # A: IoU 2/5 < 0.5
    assert (tmp_path / "test" / "table.md").exists() and (tmp_path / "test" / "per_class.png").exists()
    score_split(pa, pv, ann, "train", tmp_path / "train")
    q = pd.read_parquet(tmp_path / "train" / "quality.parquet").set_index(["modality", "class"])
    assert q.loc[("audio", A), "precision"] == 1.0 and q.loc[("audio", A), "recall"] == 0.5
    assert q.loc[("visual", B), "precision"] == pytest.approx(5 / 6) and q.loc[("visual", B), "recall"] == 1.0
    assert q.loc[("visual", "all"), "tp"] == 5
    assert "audio precision" in (tmp_path / "train" / "quality.md").read_text()


def test_choose_thresholds_and_a_teacher_that_learns(one_thread):
    scores = np.array([0.1, 0.4, 0.6, 0.9, 5.0])[None, :, None]  # (1, T=5, C=1)
    labels = np.array([0, 0, 1, 1, 1])[None, :, None]
    assert choose_thresholds(scores, labels, np.ones((1, 1))) == [0.5]
    assert choose_thresholds(scores, labels * 0, np.ones((1, 1))) == [0.0]  # no positive: 0
    # scores outside the weak labels do not count
    assert choose_thresholds(scores, labels, np.zeros((1, 1))) == [0.0]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 10, 6)).astype(np.float32)
    y = (x[..., :3] > 0.3).astype(np.uint8)
    model = train_teacher(x[:40], y[:40], {"hidden": 16, "epochs": 200, "lr": 0.02, "weight_decay": 0.0, "seed": 0})
    held = teacher_scores(model, x[40:])
    thresholds = choose_thresholds(held, y[40:], np.ones((20, 3)))
    pred = held > np.asarray(thresholds)
    assert (pred == (y[40:] > 0)).mean() > 0.9


def test_drift_numbers(tmp_path):
    b = np.arange(1, 7, dtype=np.float64).reshape(1, 2, 3)
    orth = np.array([[[1.0, 0, 0], [0, 0, 0]]])
    rel, cos = compare_arrays(np.concatenate([b, 2 * b, -b, orth[:, ::-1, ::-1]]), np.concatenate([b, b, b, orth]))
    np.testing.assert_allclose(rel, [0, 1, 2, np.sqrt(2)])
    np.testing.assert_allclose(cos, [1, 1, -1, 0], atol=1e-12)
    attrs = {"role": "clip_image", "extractor": "x", "settings": "{}", "weights": "x"}
    ids = [f"{c * 11}_0_10" for c in "abc"]
    feats = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    write_store(tmp_path / "ours" / "clip_image.h5", ids, feats, attrs)
    write_store(tmp_path / "theirs" / "clip_image.h5", ids[1:][::-1], feats[1:][::-1] * 1.5, attrs)
    table = compare_stores(tmp_path / "ours" / "clip_image.h5", tmp_path / "theirs" / "clip_image.h5", "clip_image")
    assert list(table["video_id"]) == ids[1:]
    np.testing.assert_allclose(table["relative_error"], 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(table["cosine"], 1, rtol=1e-6)
    paths = write_report(table, tmp_path / "drift")
    assert all(p.exists() for p in paths.values())
    assert "clip_image" in paths["markdown"].read_text()


def _stores(folder, ann, noise, seed):
    """Feature stores whose segment features encode the true labels (audio: audio truth, clip: visual)."""
    from avvp.stages.teachers.standin import truth

    attrs = {"extractor": "test", "settings": "{}", "weights": "random:0"}
    ids = list(ann.videos["video_id"])
    rng = np.random.default_rng(seed)
    for role, modality, rows in (("audio", "audio", 10), ("clip", "visual", 10), ("frame", "visual", 20)):
        y = truth(ann, modality, ids, 10).astype(np.float32)
        x = np.repeat(y, rows // 10, axis=1) + noise * rng.standard_normal((len(ids), rows, 8))
        write_store(folder / f"{role}.h5", ids, x.astype(np.float32), {"role": role, **attrs})


def test_standin_teacher_on_a_disjoint_pool(tmp_path, one_thread):
    from avvp.stages.synth import make_plan, resolve

    pool = tmp_path / "pool"
    plan = make_plan(resolve({"seed": 5, "n_train": 24, "n_val": 8, "n_test": 4, "n_classes": 8}), "P")
    write_annotations(plan, pool / "annotations")
    pool_ann = read_llp(pool / "annotations")
    assert all(v.startswith("P") for v in pool_ann.videos["video_id"])
    _stores(pool / "features", pool_ann, 0.2, 0)
    ann = _ann(tmp_path)
    _stores(tmp_path / "features", ann, 0.2, 1)
    ids = list(ann.videos["video_id"])
    teacher = {"hidden": 16, "epochs": 150, "lr": 0.02}
    info = run_standin("visual", pool, tmp_path / "features", ids, CLASSES, tmp_path / "v.pt",
                       tmp_path / "v.h5", teacher)
    assert info["pool_train"] == 24 and info["pool_held_out"] == 12 and len(info["thresholds"]) == 8
    labels = teach("visual", tmp_path / "v.h5", ids, CLASSES, ann.weak(ids))
    assert labels.source["thresholds"] == info["thresholds"]
    from avvp.stages.teachers.standin import truth

    np.testing.assert_array_equal(labels.labels, truth(ann, "visual", ids, 10))
    with pytest.raises(InputError, match="shares videos"):
        run_standin("audio", pool, pool / "features", list(pool_ann.videos["video_id"])[:2], CLASSES,
                    tmp_path / "a.pt", tmp_path / "a.h5", teacher)
    with pytest.raises(InputError, match="classes"):
        run_standin("audio", pool, tmp_path / "features", ids, CLASSES[::-1], tmp_path / "a.pt",
                    tmp_path / "a.h5", teacher)


def _dry_run(tmp_path, patch):
    import subprocess
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "config.yaml").read_text())
    for section, values in patch.items():
        config[section] = {**config[section], **values}
    tmp_path.mkdir()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(["snakemake", "-s", str(repo / "Snakefile"), "--directory", str(tmp_path),
                           "--configfile", "config.yaml", "--workflow-profile", "none", "-n", "pseudo"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    return proc.stdout


@pytest.mark.slow
def test_dry_run_of_the_pseudo_target(tmp_path):
    demo = _dry_run(tmp_path / "demo", {})
    for rule in ("standin_pool_plan", "standin_pool_render", "standin_pool_features", "standin_teacher",
                 "teach_audio", "teach_visual", "score_pseudo", "synth_render", "pool_frames"):
        assert f"rule {rule}:" in demo, rule
    for split in ("train", "val", "test"):
        assert f"eval/pseudo/{split}/table.md" in demo
    release = _dry_run(tmp_path / "release", {"pseudo": {"release": "/somewhere/valor"}})
    assert "rule teach_release:" in release and "rule standin_teacher:" not in release
    assert "rule extract:" not in release  # the released labels need no features of ours
