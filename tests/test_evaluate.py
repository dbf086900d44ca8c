"""``avvp evaluate``: input checks, outputs, the command line, and the real LLP test annotations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avvp.core.annotations import read_llp
from avvp.cli import main
from avvp.infra.errors import InputError
from avvp.stages.evaluate import OUTPUT_FILES, evaluate_predictions, write_outputs
from avvp.core.metrics import METRICS
from avvp.core.plots import plot_training_curve
from avvp.core.prediction_file import Predictions

CLASSES = ["Dog", "Cat", "Car"]
TEST_IDS = ["aaaaaaaaaaa_0_10", "bbbbbbbbbbb_5_15", "ccccccccccc_0_10"]


def write_folder(folder: Path) -> Path:
    """A tiny LLP-format folder: 3 classes, 1 train, 1 val, 3 test videos."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (folder / "AVVP_train.csv").write_text("filename\tevent_labels\nttttttttttt_0_10\tDog\n")
    (folder / "AVVP_val_pd.csv").write_text("filename\tevent_labels\nvvvvvvvvvvv_0_10\tCat\n")
    (folder / "AVVP_test_pd.csv").write_text(
        "filename\tevent_labels\n" + "".join(f"{v}\tDog,Cat\n" for v in TEST_IDS))
    (folder / "AVVP_eval_audio.csv").write_text(
        "filename\tonset\toffset\tevent_labels\n"
        "aaaaaaaaaaa_0_10\t0\t4\tDog\nbbbbbbbbbbb_5_15\t2\t6\tCat\nvvvvvvvvvvv_0_10\t0\t3\tCat\n")
    (folder / "AVVP_eval_visual.csv").write_text(
        "filename\tonset\toffset\tevent_labels\n"
        "aaaaaaaaaaa_0_10\t1\t5\tDog\nccccccccccc_0_10\t5\t10\tCar\n")
    return folder


@pytest.fixture
def tiny(tmp_path):
    return read_llp(write_folder(tmp_path / "ann"))


def truth_predictions(ann, ids, classes=None) -> Predictions:
    """Predictions equal to the truth (probabilities 0/1)."""
    ga, gv = ann.dense("audio", ids).astype(np.float32), ann.dense("visual", ids).astype(np.float32)
    frame = np.stack([ga, gv], axis=1).transpose(0, 3, 1, 2)  # (N, T, 2, C)
    return Predictions(list(ids), list(classes or ann.classes), np.maximum(ga, gv).max(-1),
                       ga.max(-1), gv.max(-1), np.ascontiguousarray(frame))


# ---------------------------------------------------------------- evaluation and checks

def test_truth_scores_one_in_any_order(tiny):
    pred = truth_predictions(tiny, TEST_IDS[::-1])
    for gate in ("han", "ma"):
        r = evaluate_predictions(pred, tiny, "test", gate=gate)
        assert all(v == 1.0 for v in r.overall.values())
        assert r.per_video["video_id"].tolist() == TEST_IDS   # split file order
        assert r.meta["annotation_version"] == "current" and r.meta["gate"] == gate


def test_zero_predictions_on_tiny(tiny):
    pred = truth_predictions(tiny, TEST_IDS)
    pred.frame_prob[:] = 0
    r = evaluate_predictions(pred, tiny, "test")
    # audio truth empty in video c, visual truth empty in video b, AV empty in b and c
    assert r.overall["segment_audio"] == pytest.approx(1 / 3)
    assert r.overall["segment_visual"] == pytest.approx(1 / 3)
    assert r.overall["segment_av"] == pytest.approx(2 / 3)


def test_unknown_ids_are_refused(tiny):
    pred = truth_predictions(tiny, TEST_IDS)
    pred.video_ids[1] = "zzzzzzzzzzz_0_10"
    with pytest.raises(InputError, match="not in the test split.*zzzzzzzzzzz_0_10"):
        evaluate_predictions(pred, tiny, "test", source="p.npz")


def test_ids_of_another_split_are_named(tiny):
    pred = truth_predictions(tiny, TEST_IDS)
    pred.video_ids[0] = "vvvvvvvvvvv_0_10"
    with pytest.raises(InputError, match="another split.*val"):
        evaluate_predictions(pred, tiny, "test")


def test_missing_videos_are_refused(tiny):
    pred = truth_predictions(tiny, TEST_IDS[:2])
    msg = r"p.npz: 1 of the 3 test videos have no prediction: 'ccccccccccc_0_10'"
    with pytest.raises(InputError, match=msg):
        evaluate_predictions(pred, tiny, "test", source="p.npz")


def test_duplicated_ids_are_refused(tiny):
    pred = truth_predictions(tiny, TEST_IDS + TEST_IDS[:1])
    with pytest.raises(InputError, match="listed twice.*aaaaaaaaaaa_0_10"):
        evaluate_predictions(pred, tiny, "test")


def test_class_order_is_refused(tiny):
    pred = truth_predictions(tiny, TEST_IDS, classes=["Cat", "Dog", "Car"])
    with pytest.raises(InputError, match="another order.*position 0 is 'Cat'.*'Dog'"):
        evaluate_predictions(pred, tiny, "test")


def test_other_classes_are_refused(tiny):
    pred = truth_predictions(tiny, TEST_IDS, classes=["Dog", "Cat", "Cow"])
    with pytest.raises(InputError, match="unknown class.*'Cow'.*missing class.*'Car'"):
        evaluate_predictions(pred, tiny, "test")


def test_wrong_shapes_and_nan_are_refused(tiny):
    pred = truth_predictions(tiny, TEST_IDS)
    short = Predictions(pred.video_ids, pred.classes, pred.global_prob, pred.a_prob, pred.v_prob,
                        pred.frame_prob[:, :9])
    with pytest.raises(InputError, match=r"frame_prob has shape \(3, 9, 2, 3\), expected \(3, 10, 2, 3\)"):
        evaluate_predictions(short, tiny, "test")
    pred.v_prob = pred.v_prob[:, :2]
    with pytest.raises(InputError, match="v_prob has shape"):
        evaluate_predictions(pred, tiny, "test")
    pred = truth_predictions(tiny, TEST_IDS)
    pred.frame_prob[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="frame_prob holds 1 non-finite"):
        evaluate_predictions(pred, tiny, "test")


def test_empty_split_is_refused(tmp_path):
    folder = write_folder(tmp_path / "ann")
    (folder / "AVVP_val_pd.csv").write_text("filename\tevent_labels\n")
    ann = read_llp(folder)
    with pytest.raises(InputError, match="split 'val' has no videos"):
        evaluate_predictions(truth_predictions(ann, TEST_IDS), ann, "val")


# ---------------------------------------------------------------- outputs and command line

def test_write_outputs(tiny, tmp_path):
    pred = truth_predictions(tiny, TEST_IDS)
    pred.frame_prob[1] = 0
    r = evaluate_predictions(pred, tiny, "test", gate="ma")
    paths = write_outputs(r, tmp_path / "out", tiny, pred, timeline_videos=2,
                          meta={"variant": "ma", "seed": 1})
    assert set(paths) == set(OUTPUT_FILES)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    data = json.loads(paths["metrics"].read_text())
    assert data["meta"]["annotation_version"] == "current" and data["meta"]["variant"] == "ma"
    assert data["overall"] == pytest.approx(r.overall)
    assert data["per_video"]["video_id"] == TEST_IDS
    overall = pd.read_parquet(paths["metrics_parquet"])
    assert overall["metric"].tolist() == list(METRICS)
    assert set(overall["annotation_version"]) == {"current"}
    per_class = pd.read_parquet(paths["per_class"])
    assert len(per_class) == 2 * 4 * len(CLASSES)
    table = pd.read_csv(paths["table_csv"])
    assert table["metric"].tolist() == ["audio", "visual", "audio-visual", "Type@AV", "Event@AV"]
    assert table["Segment-level"].iloc[0] == pytest.approx(r.overall["segment_audio"] * 100, abs=0.01)
    md = paths["table_md"].read_text()
    assert "| Type@AV |" in md and "Event-level" in md and "current annotations" in md
    assert paths["timeline"].read_bytes()[:4] == b"\x89PNG"


def test_write_outputs_refuses_unknown_timeline_video(tiny, tmp_path):
    pred = truth_predictions(tiny, TEST_IDS)
    r = evaluate_predictions(pred, tiny, "test")
    with pytest.raises(InputError, match="timeline"):
        write_outputs(r, tmp_path / "out", tiny, pred, timeline_ids=["nope"])
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_cli(tmp_path, capsys):
    folder = write_folder(tmp_path / "ann")
    ann = read_llp(folder, version="pre2024")
    truth_predictions(ann, TEST_IDS).save(tmp_path / "p.npz")
    out = tmp_path / "eval"
    rc = main(["evaluate", "--predictions", str(tmp_path / "p.npz"), "--annotations", str(folder),
               "--split", "test", "--gate", "ma", "--version", "pre2024", "--out", str(out),
               "--timeline-videos", "1", "--meta", "variant=ma"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "Type@AV" in text and "100.0" in text and "pre2024" in text
    assert json.loads((out / "metrics.json").read_text())["meta"]["annotation_version"] == "pre2024"
    # bad input: exit status 1 and a message naming the file and the problem
    rc = main(["evaluate", "--predictions", str(tmp_path / "p.npz"), "--annotations", str(folder),
               "--split", "val", "--out", str(tmp_path / "e2")])
    err = capsys.readouterr().err
    assert rc == 1 and "p.npz" in err and "not in the val split" in err


def test_plot_training_curve(tmp_path):
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.8, 0.7], "loss_contrastive": [2.0, 1.5, 1.2],
                            "lr": [3e-4] * 3, "val_segment_type": [0.3, np.nan, 0.5]})
    path = plot_training_curve(history, tmp_path / "curve.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="epoch"):
        plot_training_curve(history.drop(columns="epoch"), tmp_path / "x.png")


# ---------------------------------------------------------------- the real LLP test annotations

@pytest.fixture(scope="module")
def llp(llp_dir):
    return read_llp(llp_dir)


@pytest.mark.parametrize("gate", ["han", "ma"])
def test_llp_truth_scores_100(llp, gate):
    ids = list(llp.split("test")["video_id"])
    r = evaluate_predictions(truth_predictions(llp, ids), llp, "test", gate=gate)
    assert len(r.per_video) == 1200
    assert all(v == 1.0 for v in r.overall.values())


def test_llp_all_zero_predictions(llp):
    ids = list(llp.split("test")["video_id"])
    pred = truth_predictions(llp, ids)
    pred.frame_prob[:] = 0
    r = evaluate_predictions(pred, llp, "test")
    got = {k: round(r.overall[f"segment_{k}"] * 100, 2) for k in ("audio", "visual", "av")}
    assert got == {"audio": 0.50, "visual": 10.08, "av": 14.50}


def test_llp_pre2024_version_drops_three_audio_events(llp_dir, llp):
    old = read_llp(llp_dir, version="pre2024")
    ids = list(llp.split("test")["video_id"])
    r = evaluate_predictions(truth_predictions(llp, ids), old, "test")
    assert r.meta["annotation_version"] == "pre2024"
    assert round(r.overall["segment_audio"] * 100, 3) == 99.955   # official.md §g.9
    assert r.overall["segment_visual"] == 1.0
