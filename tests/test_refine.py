"""MA label refinement (the static member of avvp.stages.refine): partners, passes, thresholds, drop rules,
the shared table, the official pkl and the quality report."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from avvp.stages.refine import exchange as R
from avvp.stages.refine import official as O
from avvp.stages.refine import quality as Q
from avvp.core import refined_labels as T
from avvp.infra.errors import ConfigError, InputError

CLASSES = ["a", "b", "c"]


#: The official code's relative thresholds (the settings' default is the paper's fixed rule, the demo's).
RELATIVE = {"threshold": "relative"}


def probs_of(**arrays) -> R.ExchangeProbs:
    shape = next(iter(arrays.values())).shape
    full = {k: np.asarray(arrays.get(k, np.full(shape, 0.9)), dtype=np.float64)
            for k in ("a", "v", "a_vswap", "v_vswap", "a_aswap", "v_aswap")}
    return R.ExchangeProbs(**full)


# ------------------------------------------------------------------------ thresholds / drops

def test_relative_thresholds_follow_the_class_errors():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 1]], dtype=np.float32)
    # audio errors per class: a: 2/4, b: 1/4, c: 0 -> thresholds 0.5, 0.25, 0
    a = np.array([[0.1, 0.0, 0.0], [0.0, 0.9, 0.0], [0.2, 0.0, 0.9], [0.0, 0.7, 0.8]])
    thr = R.thresholds(labels, probs_of(a=a, v=labels * 0.9), R.refine_settings(RELATIVE))
    np.testing.assert_allclose(thr["err_audio"], [0.5, 0.25, 0.0])
    np.testing.assert_allclose(thr["audio"], [0.5, 0.25, 0.0])
    np.testing.assert_allclose(thr["visual"], [0.0, 0.0, 0.0])  # visual is perfect: max error 0


def test_drop_rules_on_hand_made_probabilities():
    labels = np.array([[1, 1, 0], [1, 0, 1]], dtype=np.float32)
    thr_a = np.array([0.5, 0.3, 0.0])      # class c has zero error: threshold 0
    thr_v = np.array([0.4, 0.5, 0.0])
    p = probs_of(
        # visual swapped pass (own audio kept) decides the audio drop
        a_vswap=np.array([[0.2, 0.2, 0.0], [0.6, 0.0, 0.0]]),
        v_vswap=np.array([[0.1, 0.4, 0.0], [0.1, 0.0, 0.0]]),
        # audio swapped pass (own visual kept) decides the visual drop
        a_aswap=np.array([[0.3, 0.45, 0.0], [0.39, 0.0, 0.0]]),
        v_aswap=np.array([[0.5, 0.1, 0.0], [0.1, 0.0, 0.0]]),
    )
    drop_a, drop_v = R.drop_masks(labels, p, thr_a, thr_v)
    # (0,a): 0.2<0.5 and 0.1<0.5 -> audio dropped; (0,b): 0.4 >= 0.3 -> kept;
    # (1,a): 0.6 >= 0.5 -> kept; (1,c): zero-error class, probabilities 0 -> never dropped
    np.testing.assert_array_equal(drop_a, [[True, False, False], [False, False, False]])
    # (0,a): v 0.5 >= 0.4 -> kept; (0,b): 0.1, 0.45 < 0.5 -> dropped; (1,a): 0.1, 0.39 < 0.4 -> dropped
    np.testing.assert_array_equal(drop_v, [[False, True, False], [True, False, False]])
    # negatives are never dropped even with tiny probabilities
    assert not drop_a[0, 2] and not drop_v[0, 2]


def test_zero_error_class_does_not_divide_by_zero():
    labels = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=np.float32)
    perfect = labels * 0.9  # every class right in the original pass: maximum error 0
    p = probs_of(a=perfect, v=perfect, a_vswap=np.zeros((3, 3)), v_vswap=np.zeros((3, 3)),
                 a_aswap=np.zeros((3, 3)), v_aswap=np.zeros((3, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a division by zero would warn
        result = R.refine_from_probs(["v0", "v1", "v2"], CLASSES, labels, p,
                                     np.array([[1], [0], [0]]), RELATIVE)
    assert np.isfinite(result.table[["thr_audio", "thr_visual"]].to_numpy()).all()
    assert (result.table["audio"] == 1).all() and (result.table["visual"] == 1).all()


def test_one_zero_error_class_among_others_is_never_dropped():
    labels = np.array([[1, 1], [1, 0], [0, 1]], dtype=np.float32)
    a = np.array([[0.9, 0.2], [0.9, 0.1], [0.1, 0.8]])  # class 0 right everywhere, class 1 wrong once
    p = probs_of(a=a, v=a, a_vswap=np.zeros((3, 2)), v_vswap=np.zeros((3, 2)),
                 a_aswap=np.zeros((3, 2)), v_aswap=np.zeros((3, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = R.refine_from_probs(["v0", "v1", "v2"], ["x", "y"], labels, p, np.array([[2], [2], [1]]),
                                     RELATIVE)
    t = result.table.set_index(["video_id", "class"])
    assert t.loc[("v0", "x"), "thr_audio"] == 0.0
    assert t.loc[("v0", "x"), "audio"] == 1 and t.loc[("v1", "x"), "visual"] == 1
    assert t.loc[("v0", "y"), "audio"] == 0 and t.loc[("v2", "y"), "visual"] == 0


def test_diagnose_warns_about_unfit_base_models():
    labels = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], dtype=np.float32)
    ids, partners = ["v0", "v1", "v2"], np.array([[1], [0], [0]])
    fitted = probs_of(a=labels * 0.9, v=labels * 0.9)  # zero training error: thresholds 0
    msgs = R.diagnose(R.refine_from_probs(ids, CLASSES, labels, fitted, partners, RELATIVE))
    assert any("threshold of 0" in m and "audio" in m for m in msgs)
    assert not R.diagnose(R.refine_from_probs(ids, CLASSES, labels, fitted, partners, {"threshold": "fixed"}))
    low = np.full((3, 3), 0.01)
    untrained = probs_of(a=low, v=low, a_vswap=low, v_vswap=low, a_aswap=low, v_aswap=low)
    msgs = R.diagnose(R.refine_from_probs(ids, CLASSES, labels, untrained, partners, RELATIVE))
    assert any("100% of the audio labels were dropped" in m for m in msgs)


def test_nan_probabilities_of_a_video_without_partner_keep_its_labels():
    labels = np.array([[1, 0], [0, 1]], dtype=np.float32)
    nan = np.full((2, 2), np.nan)
    p = probs_of(a=np.array([[0.1, 0.9], [0.9, 0.1]]), v=np.array([[0.1, 0.9], [0.9, 0.1]]),
                 a_vswap=nan, v_vswap=nan, a_aswap=nan, v_aswap=nan)
    result = R.refine_from_probs(["v0", "v1"], ["x", "y"], labels, p, np.full((2, 1), -1))
    assert (result.table[["audio", "visual"]] == 1).all().all()
    assert (result.table["n_partners"] == 0).all()
    assert result.summary()["videos_without_partner"] == 2


def _two_video_case():
    labels = np.array([[1, 1], [1, 0], [0, 1]], dtype=np.float32)
    orig = np.array([[0.2, 0.9], [0.9, 0.6], [0.3, 0.9]])  # errors per class: 1/3, 1/3
    low = np.full((3, 2), 0.05)
    return labels, probs_of(a=orig, v=orig, a_vswap=low, v_vswap=low, a_aswap=low, v_aswap=low)


def test_audio_only_and_visual_only():
    labels, p = _two_video_case()
    ids, partners = ["v0", "v1", "v2"], np.array([[2], [2], [1]])
    both = R.refine_from_probs(ids, ["x", "y"], labels, p, partners).table
    audio = R.refine_from_probs(ids, ["x", "y"], labels, p, partners, {"modalities": "audio"}).table
    visual = R.refine_from_probs(ids, ["x", "y"], labels, p, partners, {"modalities": "visual"}).table
    assert (both["audio"] == 0).all() and (both["visual"] == 0).all()
    assert (audio["audio"] == 0).all() and (audio["visual"] == 1).all()
    assert (visual["audio"] == 1).all() and (visual["visual"] == 0).all()


def test_fixed_threshold():
    labels = np.array([[1, 1], [1, 1]], dtype=np.float32)
    perfect = labels * 0.9  # relative thresholds would all be 0
    sw = np.array([[0.2, 0.4], [0.35, 0.1]])
    p = probs_of(a=perfect, v=perfect, a_vswap=sw, v_vswap=sw, a_aswap=sw, v_aswap=sw)
    ids, partners = ["v0", "v1"], np.array([[1], [0]])
    relative = R.refine_from_probs(ids, ["x", "y"], labels, p, partners, RELATIVE).table
    assert (relative["audio"] == 1).all()
    fixed = R.refine_from_probs(ids, ["x", "y"], labels, p, partners,
                                {"threshold": "fixed", "fixed_threshold": 0.3}).table
    np.testing.assert_array_equal(fixed["audio"].to_numpy(), [1 - (v < 0.3) for v in sw.ravel()])
    assert (fixed["thr_audio"] == 0.3).all() and (fixed["thr_visual"] == 0.3).all()


def test_alias_global_zeroes_the_global_target_of_audio_drops_only():
    labels, p = _two_video_case()
    ids, partners = ["v0", "v1", "v2"], np.array([[2], [2], [1]])
    plain = R.refine_from_probs(ids, ["x", "y"], labels, p, partners, {"modalities": "visual"}).table
    assert (plain["global"] == 1).all()
    aliased = R.refine_from_probs(ids, ["x", "y"], labels, p, partners, {"alias_global": True}).table
    np.testing.assert_array_equal(aliased["global"], aliased["audio"])


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="modalities"):
        R.refine_settings({"modalities": "both_ways"})
    with pytest.raises(ConfigError, match="refine.treshold"):
        R.refine_settings({"treshold": "fixed"})


# ---------------------------------------------------------------------------- partners

def _random_labels(n=60, c=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, c), dtype=np.float32)
    for i in range(n):
        labels[i, rng.choice(c, size=rng.integers(1, 3), replace=False)] = 1
    return labels


def test_partners_are_disjoint_deterministic_and_seed_dependent():
    labels = _random_labels()
    p1 = R.choose_partners(labels, 1, [2, 1])
    assert (p1 >= 0).all()
    for i, j in enumerate(p1[:, 0]):
        assert j != i and not (labels[i] * labels[j]).any()
    np.testing.assert_array_equal(p1, R.choose_partners(labels, 1, [2, 1]))
    assert (p1 != R.choose_partners(labels, 1, [2, 2])).any()


def test_k_partners_are_distinct_when_possible():
    labels = _random_labels()
    p = R.choose_partners(labels, 3, 5)
    assert p.shape == (60, 3)
    for i, row in enumerate(p):
        assert len(set(row)) == 3
        assert not (labels[row] * labels[i]).any()


def test_video_without_disjoint_partner_gets_minus_one():
    labels = np.array([[1, 1], [1, 0], [0, 1], [1, 1]], dtype=np.float32)  # all share a class with v0
    p = R.choose_partners(labels, 2, 0)
    assert (p[0] == -1).all() and (p[3] == -1).all()
    assert set(p[1]) == {2} and set(p[2]) == {1}  # one candidate: drawn with replacement


# ------------------------------------------------------------------------------- passes

class StandIn(torch.nn.Module):
    """A deterministic 'model': audio prob from the audio input, visual prob from frame+clip."""

    def __init__(self, c: int):
        super().__init__()
        self.c = c
        self.training_seen = []

    def forward(self, audio, frame, clip):
        self.training_seen.append(self.training)
        a = torch.sigmoid(audio.mean(dim=1)[:, : self.c])
        v = torch.sigmoid(frame.mean(dim=1)[:, : self.c] + clip.mean(dim=1)[:, : self.c])
        return type("Out", (), {"a_prob": a, "v_prob": v})()


def test_exchange_passes_swap_the_right_tracks_and_average_k_partners():
    rng = np.random.default_rng(0)
    n, c = 7, 3
    audio, frame, clip = (rng.normal(size=(n, 4, c)).astype(np.float32) for _ in range(3))
    partners = np.array([[1, 2], [0, 3], [4, 5], [6, 0], [1, 1], [2, 3], [-1, -1]])
    model = StandIn(c).train()
    out = R.exchange_probs(model, audio, frame, clip, partners, batch_size=3, device="cpu", progress=False)
    assert not any(model.training_seen)  # eval mode

    def a_of(i):
        return 1 / (1 + np.exp(-audio[i].mean(0)))

    def v_of(i):
        return 1 / (1 + np.exp(-(frame[i].mean(0) + clip[i].mean(0))))

    for i in range(n - 1):
        js = partners[i]
        np.testing.assert_allclose(out.a[i], a_of(i), rtol=1e-5)
        np.testing.assert_allclose(out.v_vswap[i], np.mean([v_of(j) for j in js], 0), rtol=1e-5)
        np.testing.assert_allclose(out.a_vswap[i], a_of(i), rtol=1e-5)
        np.testing.assert_allclose(out.a_aswap[i], np.mean([a_of(j) for j in js], 0), rtol=1e-5)
        np.testing.assert_allclose(out.v_aswap[i], v_of(i), rtol=1e-5)
    assert np.isnan(out.a_vswap[n - 1]).all() and np.isfinite(out.a[n - 1]).all()


def tiny_han(c: int = 4):
    from avvp.core.model import HAN

    torch.manual_seed(0)
    return HAN(audio_dim=6, frame_dim=5, clip_dim=3, n_classes=c, d_model=8, nhead=1, dim_feedforward=8)


def tiny_data(n: int = 24, c: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = _random_labels(n, c, seed)
    audio = rng.normal(size=(n, 10, 6)).astype(np.float32)
    frame = rng.normal(size=(n, 10, 5)).astype(np.float32)
    clip = rng.normal(size=(n, 10, 3)).astype(np.float32)
    ids = [f"vid{i:08d}_0_10" for i in range(n)]
    return ids, [f"k{i}" for i in range(c)], labels, audio, frame, clip


def test_refine_with_a_real_han_is_deterministic_and_complete():
    ids, classes, labels, audio, frame, clip = tiny_data()
    model = tiny_han()
    r1 = R.refine(model, ids, classes, labels, audio, frame, clip, {"batch_size": 5}, run_seed=1, progress=False)
    r2 = R.refine(model, ids, classes, labels, audio, frame, clip, {"batch_size": 7}, run_seed=1, progress=False)
    t = r1.table
    assert len(t) == int(labels.sum())
    assert set(t.columns) >= {"video_id", "class", "audio", "visual", "global", *R.PROB_COLUMNS,
                              "thr_audio", "thr_visual", "partners", "n_partners"}
    pd.testing.assert_frame_equal(t, r2.table, rtol=1e-5)
    # the thresholds reproduce the rules on the stored columns
    redo_v = (t["v_aswap"] < t["thr_visual"]) & (t["a_aswap"] < t["thr_visual"])
    redo_a = (t["a_vswap"] < t["thr_audio"]) & (t["v_vswap"] < t["thr_audio"])
    np.testing.assert_array_equal(t["visual"] == 0, redo_v)
    np.testing.assert_array_equal(t["audio"] == 0, redo_a)


# --------------------------------------------------------------------- files / training

def _result_with_drops():
    ids, classes, labels, *_ = tiny_data(12, 4, 3)
    rng = np.random.default_rng(1)
    sw = {k: rng.uniform(0, 0.6, size=labels.shape) for k in ("a_vswap", "v_vswap", "a_aswap", "v_aswap")}
    p = probs_of(a=rng.uniform(size=labels.shape), v=rng.uniform(size=labels.shape), **sw)
    partners = R.choose_partners(labels, 1, 0)
    res = R.refine_from_probs(ids, classes, labels, p, partners, {"threshold": "fixed", "fixed_threshold": 0.3})
    assert (res.table["audio"] == 0).any() and (res.table["visual"] == 0).any()
    return ids, classes, labels, res


def test_table_round_trips_through_the_official_pkl(tmp_path):
    ids, classes, labels, res = _result_with_drops()
    path = tmp_path / "need_to_change.pkl"
    O.write_need_to_change(path, res.table, ids, classes)
    with open(path, "rb") as fh:
        need_v, need_a = pickle.load(fh)
    assert len(need_v) == len(classes) == len(need_a)
    flat = [x for lst in need_v + need_a for x in lst]
    assert flat and all(isinstance(x, torch.Tensor) and x.dim() == 0 and x.dtype == torch.int64 for x in flat)
    dropped_v = res.table[res.table["visual"] == 0]
    expect = sorted((ids.index(v), classes.index(c)) for v, c in zip(dropped_v["video_id"], dropped_v["class"]))
    assert sorted((int(r), c) for c, lst in enumerate(need_v) for r in lst) == expect
    back = O.read_need_to_change(path, ids, classes, labels)
    cols = ["video_id", "class", "audio", "visual", "global"]
    pd.testing.assert_frame_equal(back[cols], res.table[cols])


def test_pkl_reader_accepts_plain_ints_and_names_bad_rows(tmp_path):
    ids, classes, labels, _ = _result_with_drops()
    r = int(np.flatnonzero(labels[:, 1])[0])
    path = tmp_path / "ints.pkl"
    with open(path, "wb") as fh:
        pickle.dump([[[], [r], [], []], [[], [], [], []]], fh)
    t = O.read_need_to_change(path, ids, classes, labels).set_index(["video_id", "class"])
    assert t.loc[(ids[r], classes[1]), "visual"] == 0
    assert (t["audio"] == 1).all() and (t["visual"] == 0).sum() == 1
    with open(path, "wb") as fh:
        pickle.dump([[[], [99], [], []], [[], [], [], []]], fh)
    with pytest.raises(InputError, match="row 99"):
        O.read_need_to_change(path, ids, classes, labels)


def test_parquet_round_trip_and_training_targets(tmp_path):
    ids, classes, labels, res = _result_with_drops()
    path = tmp_path / "labels.parquet"
    T.write_table(path, res, {"base_model": "m.pt"})
    table = T.read_table(path)
    assert table.attrs["settings"]["threshold"] == "fixed" and table.attrs["base_model"] == "m.pt"
    t = T.modality_targets(table, ids, classes, path)
    np.testing.assert_array_equal(t["weak"], labels)
    for _, row in table.iterrows():
        i, c = ids.index(row["video_id"]), classes.index(row["class"])
        assert t["audio"][i, c] == row["audio"] and t["visual"][i, c] == row["visual"]
    assert (t["audio"][labels == 0] == 0).all()


def test_read_table_rejects_bad_values(tmp_path):
    path = tmp_path / "bad.parquet"
    pd.DataFrame({"video_id": ["v"], "class": ["x"], "audio": [2], "visual": [1]}).to_parquet(path)
    with pytest.raises(InputError, match="audio"):
        T.read_table(path)
    pd.DataFrame({"video_id": ["v"], "class": ["x"], "audio": [1]}).to_parquet(path)
    with pytest.raises(InputError, match="visual"):
        T.read_table(path)


# ------------------------------------------------------------------------------ quality

def test_quality_precision_and_recall():
    table = pd.DataFrame({
        "video_id": ["v0", "v0", "v1", "v2"],
        "class": ["x", "y", "x", "y"],
        "audio": [0, 1, 0, 1],
        "visual": [1, 0, 1, 0],
    })
    ev = lambda rows: pd.DataFrame(rows, columns=["video_id", "class", "onset", "offset"])  # noqa: E731
    truth_audio = ev([("v0", "y", 0, 3), ("v1", "x", 2, 5), ("v2", "y", 0, 10)])  # v0/x truly silent
    truth_visual = ev([("v0", "x", 0, 3), ("v1", "x", 0, 2)])  # v0/y and v2/y truly invisible
    q = Q.quality(table, truth_audio, truth_visual, ["x", "y"]).set_index(["modality", "class"])
    assert q.loc[("audio", "x"), "dropped"] == 2 and q.loc[("audio", "x"), "correct"] == 1
    assert q.loc[("audio", "x"), "precision"] == 0.5 and q.loc[("audio", "x"), "recall"] == 1.0
    assert np.isnan(q.loc[("audio", "y"), "precision"]) and np.isnan(q.loc[("audio", "y"), "recall"])
    assert q.loc[("visual", "all"), "precision"] == 1.0 and q.loc[("visual", "all"), "recall"] == 1.0
    assert q.loc[("visual", "y"), "absent"] == 2


def test_quality_report_files(tmp_path):
    table = pd.DataFrame({"video_id": ["v0", "v1"], "class": ["x", "x"], "audio": [0, 1], "visual": [1, 1]})
    empty = pd.DataFrame(columns=["video_id", "class", "onset", "offset"])
    q = Q.quality(table, empty, empty)
    Q.write_report(q, tmp_path / "q.parquet", tmp_path / "q.md", tmp_path / "q.png")
    assert pd.read_parquet(tmp_path / "q.parquet").shape == q.shape
    assert "Per class" in (tmp_path / "q.md").read_text()
    assert (tmp_path / "q.png").stat().st_size > 1000


# ------------------------------------------------------------------------ the command

def _tiny_dataset(tmp_path, n=16, c=4):
    """A manifest (with classes.txt and train truth beside it), feature stores and a model file."""
    from avvp.core.checkpoint import save_model
    from avvp.core.feature_store import write_store

    ids, classes, labels, audio, frame, clip = tiny_data(n, c, 7)
    frame8 = np.repeat(frame, 8, axis=1)  # 8 rows per segment: pooled on read
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "classes.txt").write_text("".join(f"{k}\n" for k in classes))
    names = [[classes[j] for j in np.flatnonzero(row)] for row in labels]
    pd.DataFrame({"video_id": ids, "youtube_id": [v[:11] for v in ids], "start": 0.0, "end": 10.0,
                  "split": "train", "labels": names, "path": None}).to_parquet(tmp_path / "manifest.parquet")
    # truth: every label audible, the first label of each video invisible
    events = [(v, k, 0, 10) for v, ks in zip(ids, names) for k in ks]
    pd.DataFrame(events, columns=["video_id", "class", "onset", "offset"]).to_parquet(
        tmp_path / "dense_train_audio.parquet")
    pd.DataFrame([e for e in events if e[1] != names[ids.index(e[0])][0]],
                 columns=["video_id", "class", "onset", "offset"]).to_parquet(tmp_path / "dense_train_visual.parquet")
    feats = tmp_path / "features"
    for role, x in (("audio", audio), ("frame", frame8), ("clip", clip)):
        write_store(feats / f"{role}.h5", ids, x, {"role": role, "extractor": "test", "settings": "{}",
                                                   "weights": "random:0"})
    save_model(tmp_path / "model.pt", tiny_han(c), classes)
    return ids, classes, labels


def test_avvp_refine_command_writes_table_quality_and_pkl(tmp_path):
    from avvp.cli import main

    ids, classes, labels = _tiny_dataset(tmp_path)
    out = tmp_path / "refine" / "labels.parquet"
    args = ["refine", "--model", str(tmp_path / "model.pt"), "--features", str(tmp_path / "features"),
            "--manifest", str(tmp_path / "manifest.parquet"), "--out", str(out), "--run-seed", "3",
            "--settings", '{"threshold": "fixed", "fixed_threshold": 0.6, "batch_size": 4}',
            "--pkl", str(tmp_path / "ntc.pkl"), "--quality-dir", str(out.parent), "--no-progress"]
    assert main(args) == 0
    table = T.read_table(out)
    assert len(table) == int(labels.sum()) and table.attrs["run_seed"] == 3
    assert table.attrs["settings"]["fixed_threshold"] == 0.6
    back = O.read_need_to_change(tmp_path / "ntc.pkl", ids, classes, labels)
    np.testing.assert_array_equal(back["visual"], table["visual"])
    q = pd.read_parquet(out.parent / "quality.parquet")
    assert set(q["modality"]) == {"audio", "visual"}
    pooled = q[(q["class"] == "all")].set_index("modality")
    assert pooled.loc["audio", "absent"] == 0 and pooled.loc["visual", "absent"] == len(ids)
    assert (out.parent / "quality.png").exists() and (out.parent / "quality.md").exists()
    # conversion back from the pkl, and the pkl-only export
    imported = tmp_path / "imported.parquet"
    assert main(["refine", "--from-pkl", str(tmp_path / "ntc.pkl"), "--manifest",
                 str(tmp_path / "manifest.parquet"), "--out", str(imported)]) == 0
    np.testing.assert_array_equal(T.read_table(imported)["audio"], table["audio"])
    assert main(["refine", "--to-pkl", str(out), "--manifest", str(tmp_path / "manifest.parquet"),
                 "--pkl", str(tmp_path / "again.pkl")]) == 0
    def contents(path):
        with open(path, "rb") as fh:
            return [[[int(r) for r in lst] for lst in part] for part in pickle.load(fh)]

    assert contents(tmp_path / "again.pkl") == contents(tmp_path / "ntc.pkl")


def test_refine_command_names_a_missing_store(tmp_path):
    from avvp.cli import main

    _tiny_dataset(tmp_path)
    (tmp_path / "features" / "clip.h5").unlink()
    args = ["refine", "--model", str(tmp_path / "model.pt"), "--features", str(tmp_path / "features"),
            "--manifest", str(tmp_path / "manifest.parquet"), "--out", str(tmp_path / "l.parquet")]
    assert main(args) == 1
    assert not (tmp_path / "l.parquet").exists()


def test_training_targets_from_a_refined_table(tmp_path):
    """Retraining consumes the refined labels: pa = 0 / pv = 0 where dropped (avvp.core.data.build_targets)."""
    from avvp.core.data import build_targets

    ids, classes, labels, res = _result_with_drops()
    path = tmp_path / "labels.parquet"
    T.write_table(path, res)
    t = build_targets(labels, ids, classes, labels=path)
    pa, pv, g = t.audio.numpy(), t.visual.numpy(), t.global_.numpy()
    for _, row in res.table.iterrows():
        i, c = ids.index(row["video_id"]), classes.index(row["class"])
        assert pa[i, c] == (1.0 if row["audio"] else 0.0)
        assert pv[i, c] == pytest.approx(0.95 if row["visual"] else 0.0)
        assert g[i, c] == 1.0
    assert np.allclose(pv[labels == 0], 0.05) and (pa[labels == 0] == 0).all()
    # with the official aliasing carried in the table, an audio drop also zeroes the global target
    aliased = R.refine_from_probs(ids, classes, labels, _probs_of_result(res), res.partners,
                                  {**res.settings, "alias_global": True})
    T.write_table(path, aliased)
    g2 = build_targets(labels, ids, classes, labels=path).global_.numpy()
    dropped = aliased.table[aliased.table["audio"] == 0]
    assert dropped.size and all(g2[ids.index(v), classes.index(c)] == 0
                                for v, c in zip(dropped["video_id"], dropped["class"]))


def _probs_of_result(res):
    """Rebuild ExchangeProbs from a result's table (positive pairs only; others unused)."""
    shape = (int(res.table["row"].max()) + 1, len(res.classes))
    arrays = {k: np.full(shape, 0.9) for k in ("a", "v", "a_vswap", "v_vswap", "a_aswap", "v_aswap")}
    cols = {"a": "p_audio", "v": "p_visual", "a_vswap": "a_vswap", "v_vswap": "v_vswap",
            "a_aswap": "a_aswap", "v_aswap": "v_aswap"}
    for k, col in cols.items():
        arrays[k][res.table["row"], res.table["class_index"]] = res.table[col]
    return R.ExchangeProbs(**arrays)


class _RunsCode:
    """A pickle payload that would create a file when unpickled by a plain ``pickle.load``."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pkl_reader_refuses_objects_that_run_code(tmp_path):
    ids, classes, labels, _ = _result_with_drops()
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as fh:
        pickle.dump([[[_RunsCode(marker)], [], [], []], [[], [], [], []]], fh)
    with pytest.raises(InputError, match="refers to .*open.*refused"):
        O.read_need_to_change(path, ids, classes, labels)
    assert not marker.exists()
