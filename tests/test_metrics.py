"""The LLP evaluation protocol on small hand-computed cases, and against a plain loop reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avvp.core.metrics import (METRICS, binarize, evaluate_arrays, event_counts, label_runs, score_binary,
                          segment_counts, segment_type_at_av, video_scores)
from avvp.core.metrics_reference import event_counts as ref_event_counts
from avvp.core.metrics_reference import reference_scores as reference


def seq(*bits: int) -> np.ndarray:
    return np.array(bits, dtype=np.uint8)


def one(pred_a, gt_a, pred_v=None, gt_v=None) -> dict:
    """Score a single video with one class: audio given, visual defaults to empty."""
    t = len(pred_a)
    z = np.zeros(t, dtype=np.uint8)
    arrs = [np.asarray(a if a is not None else z, dtype=np.uint8)[None, None]
            for a in (pred_a, pred_v, gt_a, gt_v)]
    return score_binary(*arrs).overall


# ---------------------------------------------------------------- binarization and gates

def _probs():
    # one video, two classes, T = 3
    frame = np.zeros((1, 3, 2, 2), dtype=np.float32)
    frame[0, :, 0, 0] = [0.5, 0.49, 0.9]   # audio, class 0
    frame[0, :, 1, 0] = [0.7, 0.7, 0.1]    # visual, class 0
    frame[0, :, 0, 1] = [0.9, 0.9, 0.9]    # audio, class 1
    frame[0, :, 1, 1] = [0.9, 0.0, 0.9]    # visual, class 1
    return {
        "global_prob": np.array([[0.5, 0.2]], np.float32),
        "a_prob": np.array([[0.1, 0.8]], np.float32),
        "v_prob": np.array([[0.6, 0.3]], np.float32),
        "frame_prob": frame,
    }


def test_binarize_han_gate_uses_global_prob_and_is_inclusive():
    a, v = binarize(_probs(), gate="han")
    assert a.dtype == np.uint8 and a.shape == (1, 2, 3)
    assert a[0, 0].tolist() == [1, 0, 1]   # 0.5 ≥ 0.5 counts, 0.49 does not; global 0.5 passes
    assert v[0, 0].tolist() == [1, 1, 0]
    assert a[0, 1].tolist() == [0, 0, 0]   # global 0.2 closes class 1 in both modalities
    assert v[0, 1].tolist() == [0, 0, 0]


def test_binarize_ma_gate_uses_each_modality_prob():
    a, v = binarize(_probs(), gate="ma")
    assert a[0, 0].tolist() == [0, 0, 0]   # a_prob 0.1 closes audio class 0
    assert v[0, 0].tolist() == [1, 1, 0]   # v_prob 0.6 opens visual class 0
    assert a[0, 1].tolist() == [1, 1, 1]   # a_prob 0.8 opens audio class 1
    assert v[0, 1].tolist() == [0, 0, 0]   # v_prob 0.3 closes visual class 1


def test_binarize_accepts_objects_and_rejects_bad_gate():
    class P:
        pass
    p = P()
    for k, val in _probs().items():
        setattr(p, k, val)
    assert binarize(p)[0].sum() == 2
    with pytest.raises(ValueError, match="unknown gate"):
        binarize(p, gate="xyz")


# ---------------------------------------------------------------- segment level

def test_segment_counts_and_f1():
    tp, fp, fn = segment_counts(seq(1, 1, 0, 0, 1)[None], seq(1, 0, 0, 1, 1)[None])
    assert (tp[0], fp[0], fn[0]) == (2, 1, 1)
    assert one([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])["segment_audio"] == pytest.approx(4 / 6)


def test_empty_truth_and_no_prediction_scores_one():
    r = one([0, 0, 0], [0, 0, 0])
    assert r["segment_audio"] == 1.0 and r["event_audio"] == 1.0
    assert r["segment_av"] == 1.0 and r["segment_event"] == 1.0


def test_prediction_without_truth_scores_zero():
    r = one([0, 1, 0], [0, 0, 0])
    assert r["segment_audio"] == 0.0 and r["event_audio"] == 0.0
    assert r["segment_visual"] == 1.0


def test_skipped_classes_do_not_enter_the_mean():
    # class 0 perfect, class 1 half right, class 2 absent and never predicted (skipped)
    pred = np.array([[[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]], np.uint8)
    gt = np.array([[[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]], np.uint8)
    z = np.zeros_like(pred)
    r = score_binary(pred, z, gt, z)
    assert r.overall["segment_audio"] == pytest.approx((1 + 0.5) / 2)
    assert r.per_video["segment_visual"].tolist() == [1.0]


def test_means_over_videos_not_pooled_counts():
    pred = np.array([[[1, 1, 1, 1]], [[1, 0, 0, 0]]], np.uint8)
    gt = np.array([[[1, 1, 1, 1]], [[0, 0, 0, 1]]], np.uint8)
    z = np.zeros_like(pred)
    r = score_binary(pred, z, gt, z, video_ids=["a", "b"], classes=["k"])
    assert r.per_video.set_index("video_id")["segment_audio"].to_dict() == {"a": 1.0, "b": 0.0}
    assert r.overall["segment_audio"] == 0.5
    row = r.per_class.query("level == 'segment' and stream == 'audio'").iloc[0]
    assert (row.tp, row.fp, row.fn) == (4, 1, 1)
    assert row.f1_pooled == pytest.approx(8 / 10)          # pooled over videos: not official
    assert row.f1_video_mean == pytest.approx(0.5) and row.n_videos == 2


def test_audio_visual_is_and_of_both_and_type_is_mean():
    pa, pv = seq(1, 1, 1, 0), seq(0, 1, 1, 1)
    ga, gv = seq(1, 1, 0, 0), seq(0, 1, 1, 0)
    r = one(pa, ga, pv, gv)
    # AV: pred [0,1,1,0], truth [0,1,0,0] -> TP 1, FP 1 -> 2/3
    assert r["segment_av"] == pytest.approx(2 / 3)
    assert r["segment_audio"] == pytest.approx(4 / 5)
    assert r["segment_visual"] == pytest.approx(4 / 5)
    assert r["segment_type"] == pytest.approx((4 / 5 + 4 / 5 + 2 / 3) / 3)


def test_event_at_av_pools_audio_and_visual_counts_per_class():
    # audio TP 1 FP 0 FN 0 ; visual TP 0 FP 2 FN 1 -> pooled 2/(2+3)
    r = one(seq(1, 0, 0, 0), seq(1, 0, 0, 0), seq(0, 1, 1, 0), seq(0, 0, 0, 1))
    assert r["segment_event"] == pytest.approx(2 / 5)
    assert r["segment_event"] != pytest.approx((r["segment_audio"] + r["segment_visual"]) / 2)


# ---------------------------------------------------------------- event level

def test_label_runs():
    labels, lengths, rows = label_runs(np.array([[1, 1, 0, 1], [1, 0, 0, 1]], bool))
    assert labels.tolist() == [[1, 1, 0, 2], [3, 0, 0, 4]]
    assert lengths[1:].tolist() == [2, 1, 1, 1]
    assert rows[1:].tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("pred, gt, counts", [
    # IoU exactly 0.5 counts (inclusive): [0,2) vs [0,4)
    ([1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], (1, 0, 0)),
    # shifted by one: [0,3) vs [1,4): ∩ 2, ∪ 4 -> 0.5
    ([1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 0, 0], (1, 0, 0)),
    # just under: [0,1) vs [0,3): 1/3
    ([1, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], (0, 1, 1)),
    # [0,3) vs [2,4): ∩ 1, ∪ 4
    ([1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0], (0, 1, 1)),
    # a split prediction against one long truth event: each part 2/5
    ([1, 1, 0, 1, 1, 0], [1, 1, 1, 1, 1, 0], (0, 2, 1)),
    # one long prediction covering two truth events: 2/5 and 2/5
    ([1, 1, 1, 1, 1, 0], [1, 1, 0, 1, 1, 0], (0, 1, 2)),
    # one prediction matches the first of two truth events
    ([1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 1, 0], (1, 0, 1)),
    # runs touching the last segment
    ([0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], (1, 0, 0)),
    # no truth
    ([0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], (0, 2, 0)),
    # no prediction
    ([0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 0, 1], (0, 0, 3)),
])
def test_event_counts_hand_cases(pred, gt, counts):
    tp, fp, fn = event_counts(seq(*pred)[None], seq(*gt)[None])
    assert (int(tp[0]), int(fp[0]), int(fn[0])) == counts
    assert counts == ref_event_counts(pred, gt)


def test_touching_truth_rows_are_one_event(tmp_path):
    """Touching same-class rows merge when read; a gap makes two events."""
    from avvp.core.annotations import dense_matrix, read_dense
    path = tmp_path / "dense.csv"
    path.write_text("filename\tonset\toffset\tevent_labels\n"
                    "v\t0\t2\tA\nv\t2\t4\tA\nv\t5\t7\tA\nv\t6\t8\tA\n")
    events = read_dense(path, ["A"], ["v"])
    assert events[["onset", "offset"]].values.tolist() == [[0, 4], [5, 8]]
    gt = dense_matrix(events, ["v"], ["A"], 10)
    tp, fp, fn = event_counts(seq(1, 1, 1, 1, 0, 1, 1, 1, 0, 0)[None], gt[0])
    assert (tp[0], fp[0], fn[0]) == (2, 0, 0)
    tp, fp, fn = event_counts(seq(1, 1, 0, 0, 0, 0, 0, 0, 0, 0)[None], gt[0])
    assert (tp[0], fp[0], fn[0]) == (1, 0, 1)


def test_general_number_of_segments_and_lengths():
    t = 23
    pred = np.zeros((1, 1, t), np.uint8)
    pred[0, 0, 15:22] = 1
    gt = pred.copy()
    r = one(pred[0, 0], gt[0, 0])
    assert r["event_audio"] == 1.0
    # the same video padded to 30 segments with a prediction inside the padding
    frame = np.zeros((1, 30, 2, 1), np.float32)
    frame[0, 15:22, 0, 0] = 1
    frame[0, 25:27, 0, 0] = 1
    gt30 = np.zeros((1, 1, 30), np.uint8)
    gt30[0, 0, 15:22] = 1
    z = np.zeros((1, 1, 30), np.uint8)
    ones = np.ones((1, 1), np.float32)
    args = (ones, ones, ones, frame, gt30, z)
    assert evaluate_arrays(*args).overall["event_audio"] == pytest.approx(2 / 3)
    assert evaluate_arrays(*args, lengths=[t]).overall["event_audio"] == 1.0


# ---------------------------------------------------------------- against the reference

@pytest.mark.parametrize("t, density", [(10, 0.3), (10, 0.6), (13, 0.5)])
def test_matches_loop_reference_on_random_inputs(t, density):
    rng = np.random.default_rng(t + int(density * 10))
    shape = (40, 4, t)
    pa, pv, ga, gv = ((rng.random(shape) < density).astype(np.uint8) for _ in range(4))
    ga[:5] = 0   # some videos without audio truth
    pa[:3] = 0   # and some of those without audio predictions
    got = score_binary(pa, pv, ga, gv).overall
    want = reference(pa, pv, ga, gv)
    for key in METRICS:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_evaluate_arrays_end_to_end_and_model_selection_number():
    rng = np.random.default_rng(0)
    n, c, t = 6, 3, 10
    frame = rng.random((n, t, 2, c)).astype(np.float32)
    glob, ap, vp = (rng.random((n, c)).astype(np.float32) for _ in range(3))
    ga, gv = ((rng.random((n, c, t)) < 0.4).astype(np.uint8) for _ in range(2))
    for gate in ("han", "ma"):
        r = evaluate_arrays(glob, ap, vp, frame, ga, gv, gate=gate)
        pa, pv = binarize({"global_prob": glob, "a_prob": ap, "v_prob": vp, "frame_prob": frame}, gate)
        want = reference(pa.astype(bool), pv.astype(bool), ga.astype(bool), gv.astype(bool))
        assert r.overall == pytest.approx(want)
        assert r.meta["gate"] == gate and r.meta["threshold"] == 0.5
        assert segment_type_at_av(r) == r.overall["segment_type"]
        assert isinstance(r.per_video, pd.DataFrame) and len(r.per_video) == n
        assert r.per_video["segment_type"].mean() == pytest.approx(r.overall["segment_type"])
        assert set(r.per_class["stream"]) == {"audio", "visual", "av", "event"}
        assert len(r.per_class) == 2 * 4 * c


def test_video_scores_one_rule():
    z = np.zeros((2, 3), int)
    tp = np.array([[0, 0, 0], [1, 0, 0]])
    assert video_scores(tp, z, z).tolist() == [1.0, 1.0]


def test_shape_errors_name_the_array():
    n, c, t = 2, 3, 10
    g = np.zeros((n, c, t), np.uint8)
    p = np.zeros((n, c), np.float32)
    with pytest.raises(ValueError, match="frame_prob"):
        evaluate_arrays(p, p, p, np.zeros((n, t, 2, c + 1)), g, g)
    with pytest.raises(ValueError, match="a_prob"):
        evaluate_arrays(p, p[:1], p, np.zeros((n, t, 2, c)), g, g)
    with pytest.raises(ValueError, match="gt_visual"):
        score_binary(g, g, g, g[:, :, :5])
