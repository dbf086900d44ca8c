"""Training losses: the three BCE terms of HAN (official.md §d) and MA's contrastive loss (§e3).

BCE: the outputs are clamped to [1e-7, 1 - 1e-7], then ``BCE(p, y_g) + BCE(p_a, y_a) +
BCE(p_v, y_v)``, each averaged over batch × classes. By default the targets come from the weak
label y: ``y_g = y_a = y`` and ``y_v = 0.9·y + 0.05`` (visual-only smoothing). MA retraining
overrides the per-modality targets (:func:`modality_targets`).

Contrastive: post-HAN audio segment t against the pre-HAN visual segments of the same video,
L2-normalised, cosine / τ, cross entropy to j = t with label smoothing ε spread over the other
T − 1 segments (0.9 on the target, 0.1/9 on each other for T = 10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .model import HANOutput

EPS = 1e-7
VISUAL_SCALE, VISUAL_SHIFT = 0.9, 0.05
NEGATIVES = ("video", "batch")


def visual_smoothing(y):
    """The official visual target ``0.9·y + 0.05`` (works on arrays and tensors)."""
    return VISUAL_SCALE * y + VISUAL_SHIFT


def modality_targets(y: np.ndarray, audio: np.ndarray | None = None, visual: np.ndarray | None = None,
                     alias_global: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Global, audio and visual targets (each (N, C) float32) from weak labels and refined labels.

    Args:
        y: weak labels (N, C), 0/1.
        audio: refined audio labels (N, C), 0/1, or None for ``audio = y``. Only positives of y
            can be dropped: ``y_a = y · audio``.
        visual: refined visual labels (N, C), 0/1, or None. ``y_v = 0.9·y + 0.05``, then set to a
            hard 0 where a positive of y was dropped.
        alias_global: reproduce the official aliasing (official.md §e2): a dropped audio label
            also zeroes the global target.

    Returns:
        (y_global, y_audio, y_visual).
    """
    y = np.asarray(y, dtype=np.float32)
    pa = y.copy()
    pv = visual_smoothing(y).astype(np.float32)
    g = y.copy()
    if audio is not None:
        dropped_a = (y > 0) & (np.asarray(audio) <= 0)
        pa[dropped_a] = 0.0
        if alias_global:
            g[dropped_a] = 0.0
    if visual is not None:
        pv[(y > 0) & (np.asarray(visual) <= 0)] = 0.0
    return g, pa, pv


@dataclass
class LossTerms:
    """The loss of one batch and its parts (all scalar tensors)."""

    total: torch.Tensor
    global_: torch.Tensor
    audio: torch.Tensor
    visual: torch.Tensor
    contrastive: torch.Tensor | None = None

    def as_floats(self) -> dict[str, float]:
        out = {"loss": self.total.item(), "loss_global": self.global_.item(),
               "loss_audio": self.audio.item(), "loss_visual": self.visual.item()}
        out["loss_contrastive"] = float("nan") if self.contrastive is None else self.contrastive.item()
        return out


def clamped_bce(prob: torch.Tensor, target: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Mean binary cross entropy after clamping ``prob`` to [eps, 1 - eps] (official)."""
    return F.binary_cross_entropy(prob.clamp(eps, 1.0 - eps), target)


def bce_terms(out: HANOutput, y: torch.Tensor, y_audio: torch.Tensor | None = None,
              y_visual: torch.Tensor | None = None, y_global: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three BCE terms (global, audio, visual).

    Args:
        out: the model output.
        y: weak labels (B, C).
        y_audio, y_visual, y_global: target overrides; defaults ``y``, ``0.9·y + 0.05`` and ``y``.
    """
    y_audio = y if y_audio is None else y_audio
    y_visual = visual_smoothing(y) if y_visual is None else y_visual
    y_global = y if y_global is None else y_global
    return (clamped_bce(out.global_prob, y_global), clamped_bce(out.a_prob, y_audio),
            clamped_bce(out.v_prob, y_visual))


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross entropy with ``1 - smoothing`` on the target and ``smoothing / (K - 1)`` on each other class.

    This is the official form (PyTorch's ``label_smoothing`` instead spreads ε over all K classes).
    """
    k = logits.shape[-1]
    logp = torch.log_softmax(logits, dim=-1)
    if k == 1 or smoothing == 0:
        return -logp.gather(-1, target[:, None]).mean()
    q = torch.full_like(logp, smoothing / (k - 1))
    q.scatter_(-1, target[:, None], 1.0 - smoothing)
    return -(q * logp).sum(dim=-1).mean()


def contrastive_loss(a_feat: torch.Tensor, v_feat: torch.Tensor, tau: float = 0.2, smoothing: float = 0.1,
                     negatives: str = "video", symmetric: bool = False) -> torch.Tensor:
    """MA's segment-level audio-visual contrastive loss.

    Args:
        a_feat: (B, T, d) audio features (post-HAN in the official loss).
        v_feat: (B, T, d) visual features (pre-HAN in the official loss).
        tau: temperature.
        smoothing: label smoothing ε (0.1 official).
        negatives: "video" (official: the other segments of the same video) or "batch" (every
            other segment of every video in the batch).
        symmetric: also add the visual→audio direction and average the two.

    Returns:
        The scalar loss.
    """
    if negatives not in NEGATIVES:
        raise ValueError(f"contrastive negatives = {negatives!r} (known: {', '.join(NEGATIVES)})")
    b, t, _ = a_feat.shape
    a = F.normalize(a_feat, dim=-1)
    v = F.normalize(v_feat, dim=-1)
    if negatives == "video":
        sims = torch.bmm(a, v.transpose(1, 2)) / tau  # (B, T, T)
        logits = sims.reshape(b * t, t)
        target = torch.arange(t, device=a.device).repeat(b)
        logits_t = sims.transpose(1, 2).reshape(b * t, t)
    else:
        flat_a, flat_v = a.reshape(b * t, -1), v.reshape(b * t, -1)
        logits = flat_a @ flat_v.T / tau
        target = torch.arange(b * t, device=a.device)
        logits_t = logits.T
    loss = smoothed_cross_entropy(logits, target, smoothing)
    if symmetric:
        loss = 0.5 * (loss + smoothed_cross_entropy(logits_t, target, smoothing))
    return loss


def training_loss(out: HANOutput, y: torch.Tensor, y_global: torch.Tensor | None = None,
                  y_audio: torch.Tensor | None = None, y_visual: torch.Tensor | None = None,
                  contrastive: dict | None = None) -> LossTerms:
    """The full training loss of one batch.

    Args:
        out: the model output.
        y: weak labels (B, C).
        y_global, y_audio, y_visual: target overrides (see :func:`bce_terms`).
        contrastive: None or a dict with ``weight``, ``tau``, ``smoothing``, optionally
            ``negatives`` and ``symmetric``; adds ``weight · contrastive_loss``.
    """
    g, a, v = bce_terms(out, y, y_audio, y_visual, y_global)
    total = g + a + v
    c = None
    if contrastive is not None:
        c = contrastive_loss(out.a_feat, out.v_feat_pre, tau=contrastive.get("tau", 0.2),
                             smoothing=contrastive.get("smoothing", 0.1),
                             negatives=contrastive.get("negatives", "video"),
                             symmetric=contrastive.get("symmetric", False))
        total = total + contrastive.get("weight", 1.0) * c
    return LossTerms(total, g, a, v, c)
