"""Losses against values computed by hand with NumPy (official.md §d, §e2, §e3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avvp.core.losses import (bce_terms, clamped_bce, contrastive_loss, modality_targets, smoothed_cross_entropy,
                         training_loss, visual_smoothing)
from avvp.core.model import HANOutput


def _bce(p, y):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, float(np.float32(1 - 1e-7)))
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


def test_clamped_bce_by_hand():
    p = torch.tensor([[0.0, 1.0, 0.25], [0.5, 0.9, 1.0]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    # By hand: the extremes are clamped to 1e-7 and 1 - 1e-7 (as float32: 1 - 2^-23 rounds it).
    hi = float(np.float32(1 - 1e-7))
    by_hand = (-np.log(1e-7) - np.log(1 - hi) - np.log(0.25) - np.log(0.5) - np.log(0.9) - np.log(hi)) / 6
    assert clamped_bce(p, y).item() == pytest.approx(by_hand, rel=1e-5)
    assert by_hand == pytest.approx(_bce(p.numpy(), y.numpy()))


def _output(g, a, v, b=2, t=3, c=3):
    z = torch.zeros(b, t, 4)
    return HANOutput(torch.tensor(g), torch.tensor(a), torch.tensor(v), torch.zeros(b, t, 2, c), z, z)


def test_bce_terms_default_targets_visual_smoothing_only():
    y = np.array([[1, 0, 0], [0, 1, 1]], dtype=np.float32)
    g = [[0.9, 0.2, 0.1], [0.3, 0.8, 0.6]]
    a = [[0.7, 0.1, 0.05], [0.2, 0.6, 0.4]]
    v = [[0.95, 0.05, 0.3], [0.1, 0.99, 0.5]]
    lg, la, lv = bce_terms(_output(g, a, v), torch.from_numpy(y))
    assert lg.item() == pytest.approx(_bce(g, y), rel=1e-5)
    assert la.item() == pytest.approx(_bce(a, y), rel=1e-5)          # audio: no smoothing
    yv = np.where(y > 0, 0.95, 0.05)                                  # visual: 0.9 y + 0.05
    assert lv.item() == pytest.approx(_bce(v, yv), rel=1e-5)
    np.testing.assert_allclose(visual_smoothing(y), yv, rtol=1e-6)

    # Overridden per-modality targets are used as given.
    ya = np.zeros_like(y)
    _, la2, lv2 = bce_terms(_output(g, a, v), torch.from_numpy(y), y_audio=torch.from_numpy(ya),
                            y_visual=torch.from_numpy(y))
    assert la2.item() == pytest.approx(_bce(a, ya), rel=1e-5)
    assert lv2.item() == pytest.approx(_bce(v, y), rel=1e-5)


def test_modality_targets_refined_and_aliasing():
    y = np.array([[1, 1, 0], [1, 0, 1]], dtype=np.float32)
    audio = np.array([[0, 1, 1], [1, 1, 1]])      # audio label 0 of video 0 dropped
    visual = np.array([[1, 0, 1], [1, 1, 0]])     # visual label 1 of video 0 and 2 of video 1 dropped
    g, a, v = modality_targets(y, audio, visual)
    np.testing.assert_array_equal(g, y)
    np.testing.assert_array_equal(a, [[0, 1, 0], [1, 0, 1]])
    np.testing.assert_allclose(v, [[0.95, 0.0, 0.05], [0.95, 0.05, 0.0]], rtol=1e-6)  # hard 0, not 0.05
    g2, a2, v2 = modality_targets(y, audio, visual, alias_global=True)
    np.testing.assert_array_equal(g2, [[0, 1, 0], [1, 0, 1]])  # official aliasing (§e2)
    np.testing.assert_array_equal(a2, a)
    np.testing.assert_array_equal(v2, v)
    # Weak labels only: the official targets.
    g3, a3, v3 = modality_targets(y)
    np.testing.assert_array_equal(g3, y)
    np.testing.assert_array_equal(a3, y)
    np.testing.assert_allclose(v3, 0.9 * y + 0.05, rtol=1e-6)


def _log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _contrastive_by_hand(a, v, tau, eps):
    """Rows (b, i): cos(a[b, i], v[b, j]) / tau over j; target j = i with 1 - eps, eps / (T - 1) elsewhere."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    b, t, _ = a.shape
    total = 0.0
    for bi in range(b):
        for i in range(t):
            logits = np.array([a[bi, i] @ v[bi, j] for j in range(t)]) / tau
            logp = _log_softmax(logits)
            q = np.full(t, eps / (t - 1))
            q[i] = 1 - eps
            total += -(q * logp).sum()
    return total / (b * t)


def test_contrastive_loss_official_by_hand():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 4, 5))
    v = rng.normal(size=(2, 4, 5))
    got = contrastive_loss(torch.tensor(a), torch.tensor(v), tau=0.2, smoothing=0.1)
    assert got.item() == pytest.approx(_contrastive_by_hand(a, v, 0.2, 0.1), rel=1e-9)
    # A different temperature changes it, and the weights 0.9 / 0.1 / (T-1) are not torch's.
    assert contrastive_loss(torch.tensor(a), torch.tensor(v), tau=0.5).item() == pytest.approx(
        _contrastive_by_hand(a, v, 0.5, 0.1), rel=1e-9)
    logits = torch.tensor(rng.normal(size=(3, 4)))
    target = torch.tensor([0, 2, 3])
    torch_ls = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1)
    assert smoothed_cross_entropy(logits, target, 0.1).item() != pytest.approx(torch_ls.item(), rel=1e-6)
    assert smoothed_cross_entropy(logits, target, 0.0).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target).item(), rel=1e-9)


def test_contrastive_variants_by_hand():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, 3, 4))
    v = rng.normal(size=(2, 3, 4))
    sym = contrastive_loss(torch.tensor(a), torch.tensor(v), tau=0.3, smoothing=0.1, symmetric=True)
    by_hand = 0.5 * (_contrastive_by_hand(a, v, 0.3, 0.1) + _contrastive_by_hand(v, a, 0.3, 0.1))
    assert sym.item() == pytest.approx(by_hand, rel=1e-9)
    # Batch negatives: one "video" holding every segment of the batch.
    batch = contrastive_loss(torch.tensor(a), torch.tensor(v), tau=0.3, smoothing=0.1, negatives="batch")
    flat = _contrastive_by_hand(a.reshape(1, 6, 4), v.reshape(1, 6, 4), 0.3, 0.1)
    assert batch.item() == pytest.approx(flat, rel=1e-9)
    with pytest.raises(ValueError, match="negatives"):
        contrastive_loss(torch.tensor(a), torch.tensor(v), negatives="world")


def test_training_loss_total():
    rng = np.random.default_rng(2)
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    feat = torch.tensor(rng.normal(size=(2, 3, 4)), dtype=torch.float32)
    torch.manual_seed(0)
    probs = [torch.rand(2, 3) for _ in range(3)]
    out = HANOutput(*probs, torch.rand(2, 3, 2, 3), feat, feat.flip(1))
    plain = training_loss(out, y)
    assert plain.contrastive is None
    parts = plain.global_.item() + plain.audio.item() + plain.visual.item()
    assert plain.total.item() == pytest.approx(parts, rel=1e-6)
    c = training_loss(out, y, contrastive={"weight": 0.5, "tau": 0.2, "smoothing": 0.1})
    expected = _contrastive_by_hand(feat.numpy(), feat.flip(1).numpy(), 0.2, 0.1)
    assert c.contrastive.item() == pytest.approx(expected, rel=1e-5)
    assert c.total.item() == pytest.approx(plain.total.item() + 0.5 * expected, rel=1e-5)
    assert np.isnan(plain.as_floats()["loss_contrastive"])
