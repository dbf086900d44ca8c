"""JoMoLD (jomold.md): the joint-modal rule, the ratio schedule, the noise ratios, the model and
loss changes, the official file formats and checkpoints, and the training hook."""

from __future__ import annotations

import math
import pickle
import random

import numpy as np
import pandas as pd
import pytest
import torch

from avvp.infra.errors import ConfigError, InputError
from avvp.core.losses import contrastive_loss, smoothed_cross_entropy, smoothed_nce, training_loss
from avvp.core.model import HAN, HANOutput
from avvp.stages.refine import jomold as J
from avvp.stages.refine import official as O
from avvp.stages.refine import quality as Q
from avvp.stages.refine.drops import DropRecorder, drop_counts, epoch_tables
from avvp.stages.refine.ratios import NoiseRatios, ratios_from_table, read_ratios, true_ratios, write_ratios
from avvp.core.refined_labels import label_table

pytestmark = pytest.mark.usefixtures("one_thread")


def _drops(loss_a, loss_v, positive, rho_a, rho_v):
    t = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    drop_a, drop_v = J.joint_modal_drops(t(loss_a), t(loss_v), torch.tensor(positive, dtype=torch.bool),
                                         rho_a, rho_v)
    return drop_a.numpy(), drop_v.numpy()


# ------------------------------------------------------------------------------- §6.3 rule

def test_worked_example_of_the_method_figure():
    """jomold.md §6.3: six positives, ρ^v = 0.5 (k = 3), ρ^a = 0.18 (k = 1): I^v = {id2, id4}, I^a = {id6}."""
    loss_v = [1.1, 0.8, 0.4, 0.5, 0.3, 0.1]
    loss_a = [0.6, 0.2, 0.45, 0.15, 0.7, 0.9]
    col = lambda x: [[v] for v in x]  # noqa: E731
    drop_a, drop_v = _drops(col(loss_a), col(loss_v), [[True]] * 6, [0.18], [0.5])
    assert [i + 1 for i in np.flatnonzero(drop_v[:, 0])] == [2, 4]
    assert [i + 1 for i in np.flatnonzero(drop_a[:, 0])] == [6]


def test_rule_only_among_positives_and_per_class():
    """Negatives never drop and are not ranked; each class has its own k and its own sets."""
    # class 0: positives rows 0-3 (rows 4, 5 negative with extreme losses); class 1: rows 2-5
    loss_a = [[0.1, 0.9], [0.2, 0.8], [0.9, 0.1], [0.8, 0.2], [0.0, 0.5], [0.0, 0.6]]
    loss_v = [[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.7], [9.0, 0.4], [9.0, 0.3]]
    pos = [[1, 0], [1, 0], [1, 1], [1, 1], [0, 1], [0, 1]]
    drop_a, drop_v = _drops(loss_a, loss_v, pos, [0.5, 0.0], [0.5, 0.25])
    # class 0, k = 2: A_low = {0, 1}, V_high = {0, 1} -> visual of rows 0, 1; A_high = {2, 3} = V_low
    np.testing.assert_array_equal(drop_v[:, 0], [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(drop_a[:, 0], [0, 0, 1, 1, 0, 0])
    # class 1, k^v = floor(0.25 * 4) = 1: A_low(1) = {2}, V_high(1) = {2}; k^a = 0: no audio drop
    np.testing.assert_array_equal(drop_v[:, 1], [0, 0, 1, 0, 0, 0])
    assert not drop_a[:, 1].any()
    assert not (drop_a | drop_v)[~np.asarray(pos, dtype=bool)].any()


def test_k_is_a_float64_truncation_and_small_classes_are_never_denoised():
    n = 100
    loss_a = [[i / n] for i in range(n)]          # ascending audio loss
    loss_v = [[1 - i / n] for i in range(n)]      # descending visual loss: A_low = V_high
    drop_a, drop_v = _drops(loss_a, loss_v, [[True]] * n, [0.0], [0.29])
    assert drop_v.sum() == math.floor(0.29 * 100) == 28  # 0.29 * 100 = 28.999999999999996
    # n < 1/ρ: k = 0, nothing happens even with extreme losses
    drop_a, drop_v = _drops([[0.0], [5.0], [0.1]], [[5.0], [0.0], [4.0]], [[True]] * 3, [0.3], [0.3])
    assert not drop_a.any() and not drop_v.any()


def test_a_label_may_lose_both_modalities():
    """k^a + k^v > n: the two sets come from the same losses and may share a member."""
    loss_a = [[0.1], [0.5], [0.9]]
    loss_v = [[0.5], [0.1], [0.9]]
    drop_a, drop_v = _drops(loss_a, loss_v, [[True]] * 3, [0.7], [0.7])  # k = 2 each
    # visual: A_low(2) = {0, 1} ∩ V_high(2) = {0, 2} -> {0}; audio: A_high(2) = {1, 2} ∩ V_low(2) = {1, 0} -> {1}
    np.testing.assert_array_equal(drop_v[:, 0], [1, 0, 0])
    np.testing.assert_array_equal(drop_a[:, 0], [0, 1, 0])
    drop_a, drop_v = _drops([[0.1], [0.2], [0.9]], [[0.9], [0.1], [0.2]], [[True]] * 3, [1.0], [1.0])
    assert drop_a[:, 0].all() and drop_v[:, 0].all()  # k = n: everything goes


def test_dropped_labels_become_hard_zeros_and_targets_are_new_tensors():
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    y_a, y_v = y.clone(), 0.9 * y + 0.05
    drop_a = torch.tensor([[True, False], [False, False]])
    drop_v = torch.tensor([[False, False], [False, True]])
    pa, pv = J.denoised_targets(y_a, y_v, drop_a, drop_v)
    assert pa.tolist() == [[0.0, 0.0], [1.0, 1.0]]
    np.testing.assert_allclose(pv.numpy(), [[0.95, 0.05], [0.95, 0.0]])  # 0, not the negatives' 0.05
    assert y_a[0, 0] == 1 and y_v[1, 1] == pytest.approx(0.95)  # inputs unchanged


def test_entry_losses_rank_visual_positives_against_the_smoothed_target():
    """ℓ^v is the BCE against 0.95, so it is smallest at p = 0.95 and not monotone in p."""
    p = torch.tensor([[0.5], [0.95], [0.9999999]])
    y = torch.ones(3, 1)
    loss_a, loss_v = J.entry_losses(p, p, y, 0.9 * y + 0.05)
    assert loss_a[2] < loss_a[1] < loss_a[0]
    assert loss_v[1] < loss_v[2] and loss_v[1] < loss_v[0]


# -------------------------------------------------------------------------- §6.2 schedule

def _run_schedule(r, epochs, n_batches, w=0.9, schedule="coded"):
    out = []
    for epoch in range(1, epochs + 1):
        rho = np.asarray(r, dtype=np.float64)  # reset at every epoch start
        for step in range(n_batches):
            rho = J.schedule_step(rho, r, epoch, step, n_batches, w, schedule)
            out.append(rho.copy())
    return np.array(out)


def test_coded_schedule_drops_nothing_in_epoch_one_and_everything_after():
    r = np.array([0.3, 0.05])
    rho = _run_schedule(r, 3, 79)
    assert (rho[:79] == 0).all()
    np.testing.assert_array_equal(rho[79:], np.tile(r, (2 * 79, 1)))


def test_coded_schedule_compounds_and_linear_ramps():
    r = np.array([0.4])
    # W = 2 epochs: in epoch 2 every t < 1 and the reductions compound (ρ_j = r Π t_j')
    rho = _run_schedule(r, 2, 4, w=2.0)
    t = [(4 + j) / 8 for j in range(4)]
    np.testing.assert_allclose(rho[4:, 0], 0.4 * np.cumprod(t))
    lin = _run_schedule(r, 2, 4, w=2.0, schedule="linear")
    np.testing.assert_allclose(lin[:, 0], [0.4 * min(1.0, j / 8) for j in range(8)])
    with pytest.raises(ValueError, match="schedule"):
        J.schedule_step(r, r, 1, 0, 4, 0.9, "cosine")


# ------------------------------------------------------------------------------ §5 ratios

def test_class_means_are_the_mean_of_the_batch_means():
    probs = np.array([[0.1], [0.1], [0.1], [0.9]])
    order = np.array([0, 1, 2, 3])
    # batches of 3: (0.1, 0.1, 0.1) and (0.9): (0.1 + 0.9) / 2 = 0.5, not the plain mean 0.3
    np.testing.assert_allclose(J.mean_of_batch_means(probs, order, 3), [0.5])
    shuffled = np.array([3, 0, 1, 2])  # batches (0.9, 0.1, 0.1) and (0.1)
    np.testing.assert_allclose(J.mean_of_batch_means(probs, shuffled, 3), [((0.9 + 0.1 + 0.1) / 3 + 0.1) / 2])
    np.testing.assert_allclose(J.mean_of_batch_means(probs, order, 4), [0.3])


def test_noisy_tests_are_strict_and_use_the_targets():
    labels = np.array([[1.0], [1.0], [1.0], [0.0]])
    m = np.array([0.5])
    # audio: p/m < 0.6 <=> p < 0.3; exactly 0.3 is not noisy (strict <)
    p_a = np.array([[0.25], [0.3], [0.9], [0.0]])
    # visual: 0.95 p / m < 1.8 <=> p < 0.947368...; p = 1.8 * 0.5 / 0.95 is not noisy
    edge = 1.8 * 0.5 / 0.95
    p_v = np.array([[0.9], [edge], [0.99], [0.0]])
    noisy_a, noisy_v = J.noisy_masks(p_a, p_v, labels, m, m)
    np.testing.assert_array_equal(noisy_a[:, 0], [True, False, False, False])
    assert noisy_v[0, 0] and not noisy_v[2, 0] and not noisy_v[3, 0]
    # without the 0.95 factor 0.9 / 0.5 = 1.8 would not be noisy: the target multiplies first
    assert 0.9 / 0.5 >= 1.8 and noisy_v[0, 0]


def test_ratios_from_hand_built_probabilities():
    """Five training videos, two classes; the last batch (of 2) weighs as much as the first (of 3),
    which decides one audio label."""
    labels = np.array([[1, 0], [1, 1], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    p_a = np.array([[0.9, 0.0], [0.21, 0.8], [0.0, 0.7], [0.6, 0.0], [0.05, 0.1]])
    p_v = np.array([[0.4, 0.0], [0.9, 0.9], [0.0, 0.9], [0.1, 0.1], [0.9, 0.1]])
    order = np.array([0, 1, 2, 3, 4])
    r = J.ratios_from_probs(p_a, p_v, labels, ["x", "y"], order, {"batch_size": 3})
    m_a = np.array([(1.11 / 3 + 0.65 / 2) / 2, (1.5 / 3 + 0.1 / 2) / 2])
    m_v = np.array([(1.3 / 3 + 1.0 / 2) / 2, (1.8 / 3 + 0.2 / 2) / 2])
    np.testing.assert_allclose(r.attrs["mean_audio"], m_a)
    np.testing.assert_allclose(r.attrs["mean_visual"], m_v)
    assert list(r.labels) == [4, 3]
    # class x (rows 0, 1, 3, 4): audio p/m = 2.59, 0.604, 1.73, 0.14 -> row 4 noisy only (row 1:
    # 0.21 / 0.3475 >= 0.6; with the plain mean 0.352 it would be 0.597 < 0.6, noisy);
    # visual 0.95 p / m = 0.81, 1.83, 0.20, 1.83 -> rows 0 and 3
    assert (r.noisy_audio[0], r.noisy_visual[0]) == (1, 2)
    assert r.audio[0] == 0.25 and r.visual[0] == 0.5
    # class y (rows 1, 2, 4): audio 0.8 / 0.275, 0.7 / 0.275, 0.1 / 0.275 -> row 4;
    # visual 0.95 * (0.9, 0.9, 0.1) / 0.35 = 2.44, 2.44, 0.27 -> row 4
    assert (r.noisy_audio[1], r.noisy_visual[1]) == (1, 1)
    assert r.audio[1] == pytest.approx(1 / 3) and r.visual[1] == pytest.approx(1 / 3)
    plain = J.ratios_from_probs(p_a, p_v, labels, ["x", "y"], order, {"batch_size": 5})
    assert plain.noisy_audio[0] == 2


def test_estimate_ratios_runs_without_cross_attention_in_eval_mode():
    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"n_classes": 2})()
            self.calls = []

        def forward(self, audio, frame, clip, with_ca=None):
            self.calls.append((self.training, with_ca))
            a = torch.sigmoid(audio.mean(dim=(1, 2)))[:, None].repeat(1, 2)
            return HANOutput(a, a, a, None, None, None)

    labels = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [0, 1]], dtype=np.float32)
    feats = torch.randn(5, 10, 3)
    probe = Probe().train()
    r = J.estimate_ratios(probe, [f"v{i}" for i in range(5)], ["x", "y"], labels, feats, feats, feats,
                          {"batch_size": 2, "device": "cpu"}, run_seed=1)
    assert probe.calls and all(c == (False, False) for c in probe.calls)
    assert r.source == "estimator" and r.attrs["settings"]["batch_size"] == 2 and list(r.labels) == [3, 3]


# ------------------------------------------------------------ ratio tables and files

def _ratios(audio=(0.1, 0.2), visual=(0.3, 0.4), classes=("x", "y")):
    n = np.array([10, 5])
    return NoiseRatios(list(classes), np.array(audio), np.array(visual), n, np.array([1, 1]),
                       np.array([3, 2]), "estimator", {"mean_audio": [0.1, 0.2]})


def test_npz_round_trip_in_the_official_layout(tmp_path):
    path = tmp_path / "noise_ratios.npz"
    O.write_noise_ratios_npz(path, [0.1, 0.2], [0.3, 0.4])
    with np.load(path) as data:
        assert sorted(data.files) == ["audio", "visual"]
        assert data["audio"].dtype == np.float64 and data["audio"].shape == (2,)
    r = read_ratios(path, ["x", "y"])
    np.testing.assert_array_equal(r.visual, [0.3, 0.4])
    assert r.source == "npz" and (r.labels == -1).all()


@pytest.mark.parametrize("arrays, message", [
    ({"audio": np.zeros(2)}, "missing key.*visual"),
    ({"audio": np.zeros(2), "visual": np.zeros(2), "extra": np.zeros(2)}, "unexpected key.*extra"),
    ({"audio": np.zeros((2, 1)), "visual": np.zeros(2)}, r"audio ratios have shape \(2, 1\)"),
    ({"audio": np.zeros(3), "visual": np.zeros(3)}, "given for 3 classes, the data set has 2"),
    ({"audio": np.array([0.1, 1.5]), "visual": np.zeros(2)}, "audio ratio of class 1 is 1.5, outside"),
    ({"audio": np.zeros(2), "visual": np.array([np.nan, 0.1])}, "visual ratio of class 0 is nan"),
    ({"audio": np.array(["a", "b"]), "visual": np.zeros(2)}, "dtype"),
])
def test_bad_npz_files_are_named(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=message) as info:
        read_ratios(path, ["x", "y"])
    assert "bad.npz" in str(info.value)


def test_npz_with_objects_is_not_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, audio=np.array([{"a": 1}, None], dtype=object), visual=np.zeros(2))
    with pytest.raises(InputError, match="objects.npz"):
        read_ratios(path, ["x", "y"])


def test_parquet_ratio_table_round_trip_and_errors(tmp_path):
    path = tmp_path / "ratios.parquet"
    write_ratios(path, _ratios())
    r = read_ratios(path, ["x", "y"])
    np.testing.assert_array_equal(r.audio, [0.1, 0.2])
    assert r.source == "estimator" and r.attrs["mean_audio"] == [0.1, 0.2] and list(r.noisy_visual) == [3, 2]
    with pytest.raises(InputError, match="class 1 is 'y', the data set's is 'z'"):
        read_ratios(path, ["x", "z"])
    with pytest.raises(InputError, match="2 classes, the data set has 3"):
        read_ratios(path, ["x", "y", "z"])
    write_ratios(path, _ratios(visual=(0.3, -0.1)))
    with pytest.raises(InputError, match="visual ratio of class 1"):
        read_ratios(path, ["x", "y"])


def test_ratios_from_ma_drops_and_from_the_truth():
    ids, classes = ["v0", "v1", "v2", "v3"], ["x", "y"]
    labels = np.array([[1, 0], [1, 1], [1, 0], [0, 1]], dtype=np.float32)
    drop_a = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=bool)
    drop_v = np.array([[0, 0], [1, 1], [1, 0], [0, 0]], dtype=bool)
    r = ratios_from_table(label_table(ids, classes, labels, drop_a, drop_v), ids, classes, labels)
    np.testing.assert_allclose(r.audio, [1 / 3, 1 / 2])
    np.testing.assert_allclose(r.visual, [2 / 3, 1 / 2])
    assert r.source == "exchange"
    ev = lambda rows: pd.DataFrame(rows, columns=["video_id", "class", "onset", "offset"])  # noqa: E731
    truth_a = ev([("v0", "x", 0, 2), ("v1", "x", 0, 2), ("v3", "y", 1, 4)])  # v2/x and v1/y silent
    truth_v = ev([("v0", "x", 0, 2), ("v1", "y", 0, 2), ("v2", "x", 0, 9), ("v3", "y", 0, 1)])  # v1/x invisible
    t = true_ratios(labels, ids, classes, truth_a, truth_v)
    np.testing.assert_allclose(t.audio, [1 / 3, 1 / 2])
    np.testing.assert_allclose(t.visual, [1 / 3, 0.0])
    cmp = Q.ratio_comparison(r, t).set_index(["modality", "class"])
    assert cmp.loc[("visual", "x"), "error"] == pytest.approx(1 / 3)
    assert cmp.loc[("visual", "all"), "error"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert cmp.loc[("audio", "all"), "true"] == pytest.approx((1 + 1) / 5)  # weighted by labels per class


# ------------------------------------------------------------------ model and losses

def _tiny_han(**kw):
    torch.manual_seed(0)
    return HAN(audio_dim=6, frame_dim=5, clip_dim=4, n_classes=3, d_model=8, nhead=1, dim_feedforward=8, **kw)


def test_without_cross_attention_audio_depends_on_audio_only():
    model = _tiny_han().eval()
    a, f, c = torch.randn(2, 10, 6), torch.randn(2, 10, 5), torch.randn(2, 10, 4)
    f2, c2 = torch.randn(2, 10, 5), torch.randn(2, 10, 4)
    with torch.no_grad():
        one, two = model(a, f, c, with_ca=False), model(a, f2, c2, with_ca=False)
        both = model(a, f2, c2)
    torch.testing.assert_close(one.a_prob, two.a_prob)
    torch.testing.assert_close(one.a_feat, two.a_feat)
    assert not torch.allclose(one.v_prob, two.v_prob)
    assert not torch.allclose(one.global_prob, two.global_prob)  # the modality attention mixes both
    assert not torch.allclose(both.a_prob, two.a_prob)  # with cross-attention the visual matters
    estimator = _tiny_han(cross_attention=False).eval()
    estimator.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(estimator(a, f, c).a_prob, one.a_prob)  # the config's default


def test_visual_dropout_acts_on_the_visual_heads_in_training_only():
    base, jomold = _tiny_han(), _tiny_han(visual_dropout=0.5)
    assert base.state_dict().keys() == jomold.state_dict().keys()  # no parameters added
    assert not hasattr(base, "dropout") and jomold.dropout.p == 0.5
    a, f, c = torch.randn(2, 10, 6), torch.randn(2, 10, 5), torch.randn(2, 10, 4)
    jomold.load_state_dict(base.state_dict())
    base.eval(), jomold.eval()
    with torch.no_grad():
        torch.testing.assert_close(base(a, f, c).v_prob, jomold(a, f, c).v_prob)
        base.han.train(), jomold.han.train()  # HAN's own dropout on, the same draws
        torch.manual_seed(3)
        out_b = base(a, f, c)
        jomold.train()
        torch.manual_seed(3)
        out_j = jomold(a, f, c)
    torch.testing.assert_close(out_b.a_prob, out_j.a_prob)       # the audio stream is untouched
    torch.testing.assert_close(out_b.v_feat, out_j.v_feat)       # the contrastive features: before it
    assert not torch.allclose(out_b.v_prob, out_j.v_prob)


def test_nce_form_by_hand_and_against_the_smoothed_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    target = torch.tensor([0, 2])
    sigma = torch.softmax(logits, dim=-1)
    q = torch.full((2, 3), 0.1 / 2)
    q[0, 0], q[1, 2] = 0.9, 0.9
    expected = -torch.log((q * sigma).sum(-1)).mean()
    torch.testing.assert_close(smoothed_nce(logits, target, 0.1), expected)
    assert smoothed_nce(logits, target, 0.1) < smoothed_cross_entropy(logits, target, 0.1)  # Jensen
    torch.testing.assert_close(smoothed_nce(logits, target, 0.0), smoothed_cross_entropy(logits, target, 0.0))


def test_jomold_contrastive_term_uses_post_han_visual_and_loss_weights():
    b, t, c, d = 2, 4, 3, 5
    torch.manual_seed(1)
    probs = [torch.rand(b, c).clamp(0.1, 0.9) for _ in range(3)]
    a_feat, pre, post = torch.randn(b, t, d), torch.randn(b, t, d), torch.randn(b, t, d)
    out = HANOutput(*probs, torch.rand(b, t, 2, c), a_feat, pre, post)
    y = (torch.rand(b, c) > 0.5).float()
    cfg = {"weight": 1.0, "tau": 0.2, "smoothing": 0.1, "visual": "post", "loss": "nce"}
    terms = training_loss(out, y, contrastive=cfg, weights={"audio": 2.0})
    expected_c = contrastive_loss(a_feat, post, 0.2, 0.1, loss="nce")
    torch.testing.assert_close(terms.contrastive, expected_c)
    torch.testing.assert_close(terms.total, terms.global_ + 2 * terms.audio + terms.visual + expected_c)
    ma = training_loss(out, y, contrastive={**cfg, "visual": "pre", "loss": "ce"})
    torch.testing.assert_close(ma.contrastive, contrastive_loss(a_feat, pre, 0.2, 0.1))
    plain = training_loss(out, y)
    assert torch.equal(plain.total, plain.global_ + plain.audio + plain.visual)  # weights 1: the plain sum


# --------------------------------------------------------------------- the training hook

class RankingProbe(torch.nn.Module):
    """A stand-in model: records how it is called; audio/visual probs from the first features."""

    def __init__(self, p_a, p_v):
        super().__init__()
        self.p_a, self.p_v, self.calls = p_a, p_v, []

    def forward(self, audio, frame, clip, with_ca=None):
        self.calls.append((self.training, with_ca, torch.is_grad_enabled()))
        rows = audio[:, 0, 0].long()
        return HANOutput(self.p_a[rows], self.p_a[rows], self.p_v[rows], None, None, None)


def test_denoiser_hook_ranks_in_train_mode_without_ca_and_records_drops():
    y = torch.tensor([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4)
    p_a = torch.tensor([[0.9, 0.1], [0.8, 0.1], [0.1, 0.1], [0.2, 0.1]] + [[0.1, 0.9]] * 4)
    p_v = torch.tensor([[0.1, 0.1], [0.2, 0.1], [0.9, 0.1], [0.95, 0.1]] + [[0.1, 0.9]] * 4)
    model = RankingProbe(p_a, p_v).train()
    feats = torch.arange(8.0)[:, None, None].repeat(1, 10, 1)
    ratios = NoiseRatios(["x", "y"], np.array([0.5, 0.0]), np.array([0.5, 0.0]), np.array([4, 4]),
                         np.array([2, 0]), np.array([2, 0]), "estimator")
    hook = J.JointModalDenoiser(ratios, 2, {"method": "jomold"})
    rows = torch.arange(8)
    y_a, y_v = y.clone(), 0.9 * y + 0.05
    for epoch in (1, 2):
        hook.start_epoch(epoch, 1)
        pa, pv = hook(model, (feats, feats, feats), rows, y, y_a, y_v, 0)
        summary = hook.end_epoch()
        if epoch == 1:  # coded warm-up: nothing in epoch 1
            assert torch.equal(pa, y_a) and torch.equal(pv, y_v) and summary["denoise_drops_audio"] == 0
    assert all(call == (True, False, False) for call in model.calls)
    # class x, k = 2: rows 0, 1 heard and not seen -> visual dropped; rows 2, 3 seen, not heard -> audio
    assert pv[:, 0].tolist()[:4] == [0.0, 0.0, pytest.approx(0.95), pytest.approx(0.95)]
    assert pa[:, 0].tolist()[:4] == [1.0, 1.0, 0.0, 0.0]
    assert torch.equal(pa[:, 1], y_a[:, 1]) and torch.equal(pv[:, 1], y_v[:, 1])
    drops = hook.recorder.frame([f"v{i}" for i in range(8)], ["x", "y"])
    assert sorted(zip(drops["video_id"], drops["modality"])) == [("v0", "visual"), ("v1", "visual"),
                                                                 ("v2", "audio"), ("v3", "audio")]
    assert (drops["epoch"] == 2).all()
    assert [e["active"] for e in drops.attrs["epochs"]] == [False, True]
    # the resume state round-trips
    other = J.JointModalDenoiser(ratios, 2, {"method": "jomold"})
    other.load_state(hook.state())
    pd.testing.assert_frame_equal(other.recorder.frame([f"v{i}" for i in range(8)], ["x", "y"]), drops)


def test_drop_quality_per_epoch_and_pooled():
    ids, classes = ["v0", "v1", "v2"], ["x"]
    labels = np.ones((3, 1), dtype=np.float32)
    rec = DropRecorder()
    rec.end_epoch({"epoch": 1, "active": False})
    rec.add(2, np.array([0, 1]), np.zeros((2, 1), bool), np.array([[True], [True]]))
    rec.end_epoch({"epoch": 2, "active": True})
    rec.add(3, np.array([0]), np.zeros((1, 1), bool), np.array([[True]]))
    rec.end_epoch({"epoch": 3, "active": True})
    drops = rec.frame(ids, classes)
    ev = lambda rows: pd.DataFrame(rows, columns=["video_id", "class", "onset", "offset"])  # noqa: E731
    truth_a = ev([(v, "x", 0, 3) for v in ids])
    truth_v = ev([("v1", "x", 0, 3), ("v2", "x", 0, 3)])  # v0/x is truly invisible
    tables = epoch_tables(drops, ids, classes, labels, [1, 2, 3])
    per_epoch, pooled = Q.epoch_quality(tables, [2, 3], truth_a, truth_v, classes)
    v = pooled.set_index(["modality", "class"]).loc[("visual", "all")]
    assert (v["dropped"], v["correct"], v["absent"]) == (3, 2, 2)  # epoch 1 not pooled
    assert v["precision"] == pytest.approx(2 / 3) and v["recall"] == pytest.approx(1.0)
    e2 = per_epoch[(per_epoch["epoch"] == 2) & (per_epoch["modality"] == "visual")
                   & (per_epoch["class"] == "all")].iloc[0]
    assert e2["precision"] == 0.5 and e2["recall"] == 1.0
    counts = drop_counts(drops).set_index(["video_id", "modality"])["times"]
    assert counts[("v0", "visual")] == 2 and counts[("v1", "visual")] == 1


def test_denoise_settings_are_checked():
    assert J.denoise_settings({"method": "jomold"})["schedule"] == "coded"
    with pytest.raises(ConfigError, match="train.denoise.method: 'coteaching' is not one of"):
        J.denoise_settings({"method": "coteaching"})
    with pytest.raises(ConfigError, match="schedule"):
        J.denoise_settings({"schedule": "cosine"})
    with pytest.raises(ConfigError, match="warm_up_epoch"):
        J.denoise_settings({"warm_up_epoch": 0})
    with pytest.raises(ConfigError, match="ratios.batch_size"):
        J.ratio_settings({"batch_size": 0})


def test_registry_members_implement_their_interface():
    from avvp.stages.refine import METHODS, get_method

    assert {m.kind for m in METHODS.values()} == {"static", "dynamic"}
    for method in METHODS.values():
        impl = method.load()
        if method.kind == "dynamic":
            for name in ("start_epoch", "__call__", "end_epoch", "state", "load_state", "write", "fingerprint"):
                assert callable(getattr(impl, name)), (method.name, name)
        else:
            assert callable(impl)
    with pytest.raises(ConfigError, match="unknown dynamic label-denoising method 'exchange'"):
        get_method("exchange", "dynamic")


# ------------------------------------------------------------ official JoMoLD checkpoints

def _jomold_state_dict(model: HAN) -> dict[str, torch.Tensor]:
    """The 34 keys of an official JoMoLD state dict (jomold.md §3.1): ours, renamed, plus the
    Encoder's unused norms."""
    state = {("hat_encoder.layers.0." + k[4:] if k.startswith("han.") else k): v.clone()
             for k, v in model.state_dict().items()}
    d = model.config.d_model
    for norm in ("norm1", "norm2"):
        state[f"hat_encoder.{norm}.weight"] = torch.ones(d)
        state[f"hat_encoder.{norm}.bias"] = torch.zeros(d)
    return state


def _official_checkpoint(model: HAN) -> dict:
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    model(torch.randn(2, 10, 6), torch.randn(2, 10, 5), torch.randn(2, 10, 4)).global_prob.sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 6, 0.25)
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": [], "random_rng": random.getstate(),
            "numpy_rng": np.random.get_state(), "model": _jomold_state_dict(model),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epochs": 17}


def test_official_jomold_checkpoint_loads_without_unpickling_objects(tmp_path):
    from avvp.core.checkpoint import load_model

    model = _tiny_han(visual_dropout=0.5)
    ckpt = _official_checkpoint(model)
    assert len(ckpt["model"]) == len(model.state_dict()) + 4
    path = tmp_path / "JoMoLD.pt"
    torch.save(ckpt, path)
    loaded, info = load_model(path)
    assert info["official"] and info["meta"] == {"jomold_epochs": 17}
    assert loaded.config.visual_dropout == 0.5 and loaded.config.cross_attention
    a, f, c = torch.randn(3, 10, 6), torch.randn(3, 10, 5), torch.randn(3, 10, 4)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(a, f, c).global_prob, model(a, f, c).global_prob)


class Exploit:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (print, ("unpickled an arbitrary object",))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path, capsys):
    from avvp.core.checkpoint import load_model

    ckpt = _official_checkpoint(_tiny_han())
    ckpt["random_rng"] = Exploit()
    path = tmp_path / "evil.pt"
    torch.save(ckpt, path)
    with pytest.raises(InputError, match="evil.pt.*cannot read as a torch checkpoint"):
        load_model(path)
    assert "unpickled" not in capsys.readouterr().out
    # a plain pickle (not a torch file) of the same content is refused too
    with open(tmp_path / "plain.pt", "wb") as fh:
        pickle.dump({"model": Exploit()}, fh, protocol=2)
    with pytest.raises(InputError, match="plain.pt"):
        load_model(tmp_path / "plain.pt")
    assert "unpickled" not in capsys.readouterr().out


def test_jomold_checkpoint_of_another_architecture_is_named(tmp_path):
    from avvp.core.checkpoint import load_model

    ckpt = _official_checkpoint(_tiny_han())
    ckpt["model"]["extra_head.weight"] = torch.zeros(3, 3)
    path = tmp_path / "other.pt"
    torch.save(ckpt, path)
    with pytest.raises(InputError, match="unexpected key.*extra_head.weight"):
        load_model(path)
    del ckpt["model"]["extra_head.weight"], ckpt["model"]["fc_prob.weight"]
    torch.save(ckpt, path)
    with pytest.raises(InputError, match="missing key.*fc_prob.weight"):
        load_model(path)
    ckpt = _official_checkpoint(_tiny_han())
    ckpt["model"]["fc_a.weight"] = torch.zeros(8, 7, 2)
    torch.save(ckpt, path)
    with pytest.raises(InputError, match="fc_a.weight"):
        load_model(path)
    torch.save({"model": _jomold_state_dict(_tiny_han()), "trainer": 1}, path)
    with pytest.raises(InputError, match="nor an official JoMoLD checkpoint.*trainer"):
        load_model(path)


# ------------------------------------------------------------------ the stages end to end

TINY_JOMOLD = {
    "model": {"d_model": 8, "nhead": 1, "dim_feedforward": 8, "visual_dropout": 0.5},
    "train": {"epochs": 3, "batch_size": 8, "lr": 0.003, "device": "cpu", "select": "last",
              "loss_weights": {"audio": 2.0}, "denoise": {"method": "jomold"},
              "contrastive": {"enabled": True, "visual": "post", "loss": "nce"}},
}


@pytest.fixture()
def tiny_set(tmp_path):
    from test_refine import _tiny_dataset

    ids, classes, labels = _tiny_dataset(tmp_path, n=24, c=4)
    for modality in ("audio", "visual"):  # no val/test videos: empty dense truth
        empty = pd.DataFrame(columns=["video_id", "class", "onset", "offset"])
        empty.to_parquet(tmp_path / f"dense_{modality}.parquet")
    return tmp_path, ids, classes, labels


def _cli(*args):
    from avvp.cli import main

    return main([str(a) for a in args])


def test_noise_ratio_stage_from_every_source(tiny_set):
    root, ids, classes, labels = tiny_set
    m = root / "manifest.parquet"
    assert _cli("noise-ratios", "--manifest", m, "--truth", "--out", root / "t.parquet", "--npz", root / "t.npz",
                "--quality-dir", root / "tq") == 0
    truth = read_ratios(root / "t.parquet", classes)
    assert truth.source == "truth" and (truth.audio == 0).all()  # every label audible in this truth
    firsts = np.bincount([int(np.flatnonzero(row)[0]) for row in labels], minlength=4)
    np.testing.assert_allclose(truth.visual, firsts / labels.sum(axis=0))  # each video's first label invisible
    assert (pd.read_parquet(root / "tq" / "quality.parquet")["error"] == 0).all()
    assert _cli("noise-ratios", "--manifest", m, "--from-npz", root / "t.npz", "--out", root / "n.parquet") == 0
    np.testing.assert_array_equal(read_ratios(root / "n.parquet", classes).visual, truth.visual)
    assert _cli("noise-ratios", "--manifest", m, "--model", root / "model.pt", "--features", root / "features",
                "--out", root / "e.parquet", "--settings", '{"batch_size": 5}', "--run-seed", "2",
                "--quality-dir", root / "eq", "--no-progress") == 0
    est = read_ratios(root / "e.parquet", classes)
    assert est.source == "estimator" and len(est.attrs["mean_audio"]) == 4 and est.attrs["run_seed"] == 2
    assert (root / "eq" / "quality.md").read_text().count("| audio |") >= 4
    assert _cli("noise-ratios", "--manifest", m, "--to-npz", root / "e.parquet", "--npz", root / "e.npz") == 0
    np.testing.assert_array_equal(read_ratios(root / "e.npz", classes).audio, est.audio)
    assert _cli("noise-ratios", "--manifest", m, "--out", root / "x.parquet") == 1  # no source: named error


def test_training_with_joint_modal_denoising_records_and_scores_drops(tiny_set):
    from avvp.core.checkpoint import load_model
    from avvp.stages.train import run_training

    root, ids, classes, labels = tiny_set
    m, feats = root / "manifest.parquet", root / "features"
    O.write_noise_ratios_npz(root / "r.npz", [0.5] * 4, [0.5] * 4)
    result = run_training(feats, m, root / "a" / "model.pt", TINY_JOMOLD, seed=1, ratios=root / "r.npz",
                          progress=False)
    drops = pd.read_parquet(root / "a" / "drops.parquet")
    assert drops["epoch"].min() == 2 and set(drops["modality"]) == {"audio", "visual"}
    assert [e["active"] for e in drops.attrs["epochs"]] == [False, True, True]
    assert list(result.history["denoise_drops_visual"] > 0) == [False, True, True]
    pos = {(ids[r], classes[c]) for r, c in zip(*np.nonzero(labels))}
    assert set(zip(drops["video_id"], drops["class"])) <= pos  # only weak labels are dropped
    assert load_model(root / "a" / "model.pt")[1]["meta"]["ratios"] == str(root / "r.npz")
    assert _cli("drop-quality", "--drops", root / "a" / "drops.parquet", "--manifest", m,
                "--out-dir", root / "a" / "q") == 0
    pooled = pd.read_parquet(root / "a" / "q" / "quality.parquet").set_index(["modality", "class"])
    assert pooled.loc[("visual", "all"), "dropped"] == int((drops["modality"] == "visual").sum())
    assert (root / "a" / "q" / "quality_epochs.parquet").exists()
    counts = pd.read_parquet(root / "a" / "q" / "drop_counts.parquet")
    assert counts["times"].sum() == len(drops) and counts["times"].max() <= 2
    firsts = {(v, classes[int(np.flatnonzero(labels[ids.index(v)])[0])]) for v in ids}  # truly invisible
    visual = counts[counts["modality"] == "visual"]
    assert list(visual["absent"]) == [(v, c) in firsts for v, c in zip(visual["video_id"], visual["class"])]
    assert not counts[counts["modality"] == "audio"]["absent"].any()  # every label is audible
    assert "Per epoch" in (root / "a" / "q" / "quality.md").read_text()

    # an interrupted run resumes to the same weights and the same drops
    def stop(event, epoch, step):
        if event == "epoch" and epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(feats, m, root / "b" / "model.pt", TINY_JOMOLD, seed=1, ratios=root / "r.npz",
                     progress=False, hook=stop)
    run_training(feats, m, root / "b" / "model.pt", TINY_JOMOLD, seed=1, ratios=root / "r.npz", progress=False)
    a, b = load_model(root / "a" / "model.pt")[0].state_dict(), load_model(root / "b" / "model.pt")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(pd.read_parquet(root / "b" / "drops.parquet"), drops)


def test_training_refuses_missing_or_unwanted_ratios(tiny_set):
    from avvp.stages.train import run_training

    root, ids, classes, labels = tiny_set
    m, feats = root / "manifest.parquet", root / "features"
    with pytest.raises(ConfigError, match="needs a noise-ratio file"):
        run_training(feats, m, root / "m.pt", TINY_JOMOLD, progress=False)
    O.write_noise_ratios_npz(root / "r.npz", [0.5] * 4, [0.5] * 4)
    plain = {**TINY_JOMOLD, "train": {**TINY_JOMOLD["train"], "denoise": {"method": "none"}}}
    with pytest.raises(ConfigError, match="method is 'none'"):
        run_training(feats, m, root / "m.pt", plain, ratios=root / "r.npz", progress=False)
    O.write_noise_ratios_npz(root / "r3.npz", [0.5] * 3, [0.5] * 3)
    with pytest.raises(InputError, match="r3.npz.*3 classes, the data set has 4"):
        run_training(feats, m, root / "m.pt", TINY_JOMOLD, ratios=root / "r3.npz", progress=False)
    assert not (root / "m.pt").exists()


def test_no_import_circle_between_data_and_label_denoising():
    """avvp.core.data reads refined labels through avvp.core.refined_labels, which imports no stage module;
    the stages (avvp.stages.refine.stages) import avvp.core.data, never the other way round."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "avvp"

    def imports(path: Path) -> set[str]:
        package = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        if path.name == "__init__.py":
            package = package.rsplit(".", 1)[0] + "." + "__init__"
        base = package.rsplit(".", 1)[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                parts = base.split(".")
                mod = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else node.module or ""
                out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
        return {m for m in out if m.startswith("avvp")}

    graph = {".".join(p.relative_to(root.parent).with_suffix("").parts).replace(".__init__", ""): imports(p)
             for p in root.rglob("*.py")}
    modules = set(graph)
    graph = {k: {m for m in v if m in modules and m != k} for k, v in graph.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for nxt in graph.get(node, ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    assert reaches("avvp.stages.refine.stages", "avvp.core.data") and reaches("avvp.core.data", "avvp.core.refined_labels")
    for module in [m for m in modules if m.startswith("avvp.stages.refine")]:
        assert not (reaches("avvp.core.data", module) and reaches(module, "avvp.core.data")), module


def test_schema_denoise_methods_are_the_registry_dynamic_methods():
    """config train.denoise.method allows exactly the registry's dynamic methods (and none)."""
    from avvp.settings import node
    from avvp.stages.refine import dynamic_method_names

    denoise = node("train.denoise.method")
    assert set(denoise["enum"]) == {"none", *dynamic_method_names()}
