"""Training losses: the three BCE terms of HAN and MA's contrastive loss.

BCE: the outputs are clamped to [1e-7, 1 - 1e-7], then ``BCE(p, y_g) + BCE(p_a, y_a) +
BCE(p_v, y_v)``, each averaged over batch × classes. By default the targets come from the weak
label y: ``y_g = y_a = y`` and ``y_v = 0.9·y + 0.05`` (visual-only smoothing). MA retraining
overrides the per-modality targets (:func:`modality_targets`).

Contrastive: post-HAN audio segment t against the pre-HAN visual segments of the same video,
L2-normalised, cosine / τ, cross entropy to j = t with label smoothing ε spread over the other
T − 1 segments (0.9 on the target, 0.1/9 on each other for T = 10).

JoMoLD's contrastive term differs in two points, both options of
:func:`contrastive_loss`: the visual features are taken **after** the HAN layer (``visual:
post``), and the loss is ``−log Σ_j q_j σ_j``, the log of the smoothed target mass (``loss: nce``,
:func:`smoothed_nce`), not the smoothed cross entropy ``−Σ_j q_j log σ_j`` (``loss: ce``). Its
stage-3 loss also weighs the audio term twice: :func:`training_loss` takes per-term
``weights``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avvp.core.model import HANOutput

EPS = 1e-7
VISUAL_SCALE, VISUAL_SHIFT = 0.9, 0.05
NEGATIVES = ("video", "batch")
#: Which visual features the contrastive loss reads: pre-HAN (MA) or post-HAN (JoMoLD).
CONTRASTIVE_VISUAL = ("pre", "post")
#: The contrastive loss form: smoothed cross entropy (MA) or JoMoLD's log of the smoothed mass.
CONTRASTIVE_LOSSES = ("ce", "nce")
#: The BCE terms :func:`training_loss` may weigh.
LOSS_TERMS = ("global", "audio", "visual")


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
        alias_global: reproduce the official aliasing (MA's retraining): a dropped audio label
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


def _smoothed_target(logp: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """``q``: ``1 - smoothing`` on the target and ``smoothing / (K - 1)`` on each other class."""
    q = torch.full_like(logp, smoothing / (logp.shape[-1] - 1))
    return q.scatter_(-1, target[:, None], 1.0 - smoothing)


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross entropy with ``1 - smoothing`` on the target and ``smoothing / (K - 1)`` on each other class.

    This is the official form (PyTorch's ``label_smoothing`` instead spreads ε over all K classes).
    """
    k = logits.shape[-1]
    logp = torch.log_softmax(logits, dim=-1)
    if k == 1 or smoothing == 0:
        return -logp.gather(-1, target[:, None]).mean()
    q = _smoothed_target(logp, target, smoothing)
    return -(q * logp).sum(dim=-1).mean()


def smoothed_nce(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """JoMoLD's ``LabelSmoothingNCELoss``: ``−mean_rows log Σ_j q_j σ_j``.

    σ = softmax over the K columns, q as in :func:`smoothed_cross_entropy`. The log of the smoothed
    target mass, computed as ``logsumexp(log σ + log q)``; by Jensen it is at most the smoothed
    cross entropy of the same logits, and equal to it without smoothing.
    """
    k = logits.shape[-1]
    logp = torch.log_softmax(logits, dim=-1)
    if k == 1 or smoothing == 0:
        return -logp.gather(-1, target[:, None]).mean()
    q = _smoothed_target(logp, target, smoothing)
    return -torch.logsumexp(logp + torch.log(q), dim=-1).mean()


def contrastive_loss(a_feat: torch.Tensor, v_feat: torch.Tensor, tau: float = 0.2, smoothing: float = 0.1,
                     negatives: str = "video", symmetric: bool = False, loss: str = "ce") -> torch.Tensor:
    """The segment-level audio-visual contrastive loss of MA (and, with ``loss="nce"``, JoMoLD's).

    Args:
        a_feat: (B, T, d) audio features (post-HAN in the official losses).
        v_feat: (B, T, d) visual features (pre-HAN in MA's loss, post-HAN in JoMoLD's).
        tau: temperature.
        smoothing: label smoothing ε (0.1 official).
        negatives: "video" (official: the other segments of the same video) or "batch" (every
            other segment of every video in the batch).
        symmetric: also add the visual→audio direction and average the two.
        loss: "ce" (MA: :func:`smoothed_cross_entropy`) or "nce" (JoMoLD: :func:`smoothed_nce`).

    Returns:
        The scalar loss.
    """
    if negatives not in NEGATIVES:
        raise ValueError(f"contrastive negatives = {negatives!r} (known: {', '.join(NEGATIVES)})")
    if loss not in CONTRASTIVE_LOSSES:
        raise ValueError(f"contrastive loss = {loss!r} (known: {', '.join(CONTRASTIVE_LOSSES)})")
    form = smoothed_cross_entropy if loss == "ce" else smoothed_nce
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
    value = form(logits, target, smoothing)
    if symmetric:
        value = 0.5 * (value + form(logits_t, target, smoothing))
    return value


def training_loss(out: HANOutput, y: torch.Tensor, y_global: torch.Tensor | None = None,
                  y_audio: torch.Tensor | None = None, y_visual: torch.Tensor | None = None,
                  contrastive: dict | None = None, weights: dict | None = None) -> LossTerms:
    """The full training loss of one batch.

    Args:
        out: the model output.
        y: weak labels (B, C).
        y_global, y_audio, y_visual: target overrides (see :func:`bce_terms`).
        contrastive: None or a dict with ``weight``, ``tau``, ``smoothing``, optionally
            ``negatives``, ``symmetric``, ``visual`` (``pre``: MA, ``post``: JoMoLD) and ``loss``
            (``ce``: MA, ``nce``: JoMoLD); adds ``weight · contrastive_loss``.
        weights: weights of the ``global``, ``audio`` and ``visual`` BCE terms (default 1 each;
            JoMoLD's stage 3 weighs audio 2). A weight of 1 multiplies nothing,
            so the default loss is bit for bit the plain sum.
    """
    g, a, v = bce_terms(out, y, y_audio, y_visual, y_global)
    total = None
    for term, value in zip(LOSS_TERMS, (g, a, v)):
        w = float((weights or {}).get(term, 1.0))
        value = value if w == 1.0 else w * value
        total = value if total is None else total + value
    c = None
    if contrastive is not None:
        # train.contrastive, completed by avvp.settings in a run; a library caller may leave keys out,
        # which then take the official values: contrastive_loss's own, and these two
        visual = contrastive.get("visual", "pre")  # settings: library default (the official value)
        if visual not in CONTRASTIVE_VISUAL:
            raise ValueError(f"contrastive visual = {visual!r} (known: {', '.join(CONTRASTIVE_VISUAL)})")
        v_feat = out.v_feat_pre if visual == "pre" else out.v_feat
        given = {k: contrastive[k] for k in ("tau", "smoothing", "negatives", "symmetric", "loss") if k in contrastive}
        c = contrastive_loss(out.a_feat, v_feat, **given)
        total = total + contrastive.get("weight", 1.0) * c  # settings: library default (official)
    return LossTerms(total, g, a, v, c)
