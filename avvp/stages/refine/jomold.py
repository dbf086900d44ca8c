"""JoMoLD's joint-modal label denoising (Cheng et al., ECCV 2022), exactly as its code does it.

The *dynamic* member of the label-denoising family (:mod:`avvp.stages.refine`). Three stages:

1. a **noise estimator**, HAN without cross-modal attention: the ``jomold_ne``
   experiment variant, an ordinary ``avvp train`` run (``model.cross_attention: false``);
2. **noise ratios**, :func:`estimate_ratios`: one eval-mode pass of the estimator, without
   cross-attention, over the training set in shuffled batches of 128. Class means over *all*
   training videos, taken as the **mean of the batch means** (the last, smaller batch weighs as
   much as a full one); for every positive label, *visual noisy* iff ``Pv·p^v / m^v < v_thres``
   (1.8) and *audio noisy* iff ``Pa·p^a / m^a < a_thres`` (0.6), with the targets Pa = y,
   Pv = 0.9y + 0.05 and a strict ``<``; ratio = noisy count / n_c;
3. **training with joint-modal denoising**, :class:`JointModalDenoiser`, the batch hook of
   :func:`avvp.stages.train.run_epoch`: before every step, the ratios ρ follow the warm-up schedule
   (:func:`schedule_step`: as coded, no label is dropped in epoch 1 and the full ratios apply
   from epoch 2; a linear ramp is an option); a **loss-ranking pass** of the model being trained,
   in train mode (dropout on), **without** cross-attention, under ``no_grad``, gives per-entry BCE
   losses ℓ^a, ℓ^v against Pa and the *smoothed* Pv; then, per class (:func:`joint_modal_drops`):
   with S the batch's positives, n = |S|, k = ⌊ρ·n⌋ (float64 truncation), the **visual** label of
   b is dropped when b is among the k^v smallest audio losses *and* the k^v largest visual losses,
   the **audio** label when among the k^a largest audio losses *and* the k^a smallest visual
   losses. A dropped label becomes a **hard 0 target** (not masked; 0, not the 0.05 of
   negatives); the global target y is never changed; nothing persists across batches.

The training step then runs with cross-attention and the loss 2·BCE(p^a, Pa′) + BCE(p^v, Pv′) +
BCE(p, y) + L_nce (the variant's recipe, :mod:`avvp.experiments`).

Ties: the official code sorts with the unstable ``torch.sort``, so exact ties fall in an
unspecified order; here the sort is stable (ties in batch order).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from avvp.infra.errors import ConfigError
from avvp.core.losses import EPS, visual_smoothing
from avvp.settings import complete_section
from avvp.stages.refine.drops import DropRecorder
from avvp.stages.refine.ratios import NoiseRatios, ratios_from_masks

SCHEDULES = ("coded", "linear")


def ratio_settings(given: Mapping[str, Any] | None = None) -> dict:
    """The noise-ratio pass's settings (config ``ratios``): ``given`` completed with the defaults of
    the settings definition (:mod:`avvp.settings`; the official values) and checked."""
    return complete_section("ratios", given)


def denoise_settings(given: Mapping[str, Any] | None = None) -> dict:
    """The dynamic denoising's settings (config ``train.denoise``): ``given`` completed with the
    defaults of the settings definition and checked, ``method`` against the registered methods."""
    from avvp.stages.refine import dynamic_method_names

    s = complete_section("train.denoise", given)
    methods = ("none", *dynamic_method_names())
    if s["method"] not in methods:
        raise ConfigError(f"train.denoise.method = {s['method']!r} (known: {', '.join(methods)})")
    return s


# ------------------------------------------------------------------ stage 2: noise ratios

def mean_of_batch_means(probs: np.ndarray, order: np.ndarray, batch_size: int) -> np.ndarray:
    """(C,) class means as the official pass takes them: the mean over batches (in ``order``) of
    each batch's mean over its videos, so a short last batch weighs as much as a full one."""
    probs = np.asarray(probs, dtype=np.float64)
    means = [probs[order[i:i + batch_size]].mean(axis=0) for i in range(0, len(order), batch_size)]
    return np.mean(means, axis=0)


def noisy_masks(p_a: np.ndarray, p_v: np.ndarray, labels: np.ndarray, m_a: np.ndarray, m_v: np.ndarray,
                a_thres: float = 0.6, v_thres: float = 1.8) -> tuple[np.ndarray, np.ndarray]:
    """(noisy_audio, noisy_visual), (N, C) bool, for the positive labels.

    The probabilities are first multiplied by their targets (Pa = y, Pv = 0.9y + 0.05): visual
    noisy iff ``Pv·p^v / m^v < v_thres``, audio noisy iff ``Pa·p^a / m^a < a_thres``; strict.
    A 0/0 (a class mean of 0) compares false, as NumPy's NaN does in the official code.
    """
    y = np.asarray(labels, dtype=np.float64)
    pos = y > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        score_v = visual_smoothing(y) * np.asarray(p_v, dtype=np.float64) / np.asarray(m_v, dtype=np.float64)
        score_a = y * np.asarray(p_a, dtype=np.float64) / np.asarray(m_a, dtype=np.float64)
        noisy_v = pos & (score_v < v_thres)
        noisy_a = pos & (score_a < a_thres)
    return noisy_a, noisy_v


def ratios_from_probs(p_a: np.ndarray, p_v: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                      order: np.ndarray, settings: Mapping[str, Any] | None = None) -> NoiseRatios:
    """Noise ratios from the estimator's eval-mode probabilities over the training set.

    Args:
        p_a, p_v: (N, C) video-level audio / visual probabilities (no cross-attention).
        labels: (N, C) weak labels.
        classes: class names.
        order: the pass's shuffled order of the N videos (batches of ``batch_size`` in it).
        settings: :func:`ratio_settings` overrides.
    """
    s = ratio_settings(settings)
    m_a = mean_of_batch_means(p_a, order, int(s["batch_size"]))
    m_v = mean_of_batch_means(p_v, order, int(s["batch_size"]))
    noisy_a, noisy_v = noisy_masks(p_a, p_v, labels, m_a, m_v, float(s["a_thres"]), float(s["v_thres"]))
    return ratios_from_masks(noisy_a, noisy_v, labels, classes, "estimator",
                             {"settings": dict(s), "mean_audio": m_a.tolist(), "mean_visual": m_v.tolist()})


def estimator_probs(model, audio: torch.Tensor, frame: torch.Tensor, clip: torch.Tensor, order: np.ndarray,
                    batch_size: int, device: str = "auto", progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(p_a, p_v), (N, C): the model in eval mode, **without** cross-attention, batches in ``order``."""
    from tqdm import tqdm

    from avvp.infra.device import resolve_device

    dev = resolve_device(device)
    model = model.to(dev).eval()
    n = len(order)
    p_a = np.empty((n, model.config.n_classes), dtype=np.float32)
    p_v = np.empty_like(p_a)
    with torch.inference_mode():
        for start in tqdm(range(0, n, batch_size), desc="noise ratios", unit="batch", disable=not progress):
            rows = torch.as_tensor(order[start:start + batch_size])
            out = model(audio[rows].to(dev), frame[rows].to(dev), clip[rows].to(dev), with_ca=False)
            p_a[rows.numpy()] = out.a_prob.float().cpu().numpy()
            p_v[rows.numpy()] = out.v_prob.float().cpu().numpy()
    return p_a, p_v


def estimate_ratios(model, video_ids: Sequence[str], classes: Sequence[str], labels: np.ndarray,
                    audio: torch.Tensor, frame: torch.Tensor, clip: torch.Tensor,
                    settings: Mapping[str, Any] | None = None, run_seed: int = 0,
                    progress: bool = False) -> NoiseRatios:
    """JoMoLD's stage 2: the noise ratios of a trained noise estimator over the training set.

    The pass's shuffle is drawn from ``[settings.seed, run_seed]``; it changes the class means
    slightly (mean of batch means), as the official shuffled loader does.
    """
    s = ratio_settings(settings)
    labels = np.asarray(labels, dtype=np.float32)
    if labels.shape != (len(video_ids), len(classes)):
        raise ValueError(f"labels have shape {labels.shape}, expected ({len(video_ids)}, {len(classes)})")
    order = np.random.default_rng([int(s["seed"]), int(run_seed)]).permutation(len(video_ids))
    p_a, p_v = estimator_probs(model, audio, frame, clip, order, int(s["batch_size"]), s["device"], progress)
    ratios = ratios_from_probs(p_a, p_v, labels, classes, order, s)
    ratios.attrs["run_seed"] = int(run_seed)
    return ratios


# ------------------------------------------------------------------------ the ratio schedule

def schedule_step(current: np.ndarray, ratios: np.ndarray, epoch: int, step: int, n_batches: int,
                  warm_up_epoch: float = 0.9, schedule: str = "coded") -> np.ndarray:
    """The ratios ρ used for batch ``step`` (0-based) of ``epoch`` (1-based), as coded.

    t = ((epoch − 1)·I + step) / (W·I) with I = ``n_batches``. ``coded`` (the official code): ρ ←
    min(ρ, ρ·t), compounding on the already-reduced ``current`` (reset to the file's ratios at
    every epoch start by the caller), so with W = 0.9 epoch 1 drops nothing (t₀ = 0) and every later
    epoch uses the full ratios. ``linear``: ρ = r·min(1, t), a ramp over W epochs.
    """
    t = ((epoch - 1) * n_batches + step) / (warm_up_epoch * n_batches)
    if schedule == "coded":
        return np.minimum(current, current * t)
    if schedule == "linear":
        return np.asarray(ratios, dtype=np.float64) * min(1.0, t)
    raise ValueError(f"unknown schedule {schedule!r} (known: {', '.join(SCHEDULES)})")


# ----------------------------------------------------------------------- the joint-modal rule

def entry_losses(p_a: torch.Tensor, p_v: torch.Tensor, y_a: torch.Tensor, y_v: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-entry BCE (B, C) of the clamped probabilities against Pa and the smoothed Pv."""
    loss_a = F.binary_cross_entropy(p_a.clamp(EPS, 1.0 - EPS), y_a, reduction="none")
    loss_v = F.binary_cross_entropy(p_v.clamp(EPS, 1.0 - EPS), y_v, reduction="none")
    return loss_a, loss_v


def joint_modal_drops(loss_a: torch.Tensor, loss_v: torch.Tensor, positive: torch.Tensor,
                      rho_a: Sequence[float], rho_v: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The joint-modal rule: which labels of a batch lose a modality.

    Args:
        loss_a, loss_v: (B, C) per-entry losses of the ranking pass.
        positive: (B, C) bool, the weak labels.
        rho_a, rho_v: (C,) the current ratios.

    Returns:
        (drop_audio, drop_visual), (B, C) bool. For class c with positives S (n = |S|),
        k = ⌊ρ_c·n⌋ in float64: visual dropped for A_low(k^v) ∩ V_high(k^v), audio dropped for
        A_high(k^a) ∩ V_low(k^a), the sets taken among S by the two losses. Nothing when k = 0.
    """
    b, c = loss_a.shape
    drop_a = torch.zeros((b, c), dtype=torch.bool, device=loss_a.device)
    drop_v = torch.zeros_like(drop_a)
    for k in range(c):
        members = torch.nonzero(positive[:, k], as_tuple=False).flatten()
        n = int(members.numel())
        k_v = int(math.floor(float(rho_v[k]) * n))
        k_a = int(math.floor(float(rho_a[k]) * n))
        if n == 0 or (k_v <= 0 and k_a <= 0):
            continue
        by_a = members[torch.argsort(loss_a[members, k], stable=True)]  # ascending audio loss
        by_v = members[torch.argsort(loss_v[members, k], stable=True)]  # ascending visual loss
        if k_v > 0:
            drop_v[:, k] = _member_mask(by_a[:k_v], b, loss_a.device) & _member_mask(by_v[n - k_v:], b, loss_a.device)
        if k_a > 0:
            drop_a[:, k] = _member_mask(by_a[n - k_a:], b, loss_a.device) & _member_mask(by_v[:k_a], b, loss_a.device)
    return drop_a, drop_v


def _member_mask(rows: torch.Tensor, size: int, device) -> torch.Tensor:
    mask = torch.zeros(size, dtype=torch.bool, device=device)
    mask[rows] = True
    return mask


def denoised_targets(y_a: torch.Tensor, y_v: torch.Tensor, drop_a: torch.Tensor, drop_v: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Pa′, Pv′: the dropped entries set to a hard 0 (new tensors; the inputs are not changed)."""
    return y_a.masked_fill(drop_a, 0.0), y_v.masked_fill(drop_v, 0.0)


# -------------------------------------------------------------------- the training hook

class JointModalDenoiser:
    """JoMoLD's per-batch denoising, called by :func:`avvp.stages.train.run_epoch` before every step.

    Args:
        ratios: the noise ratios (the file of stage 2, or another source).
        n_classes: the model's classes (must match the ratios).
        settings: ``train.denoise`` (:func:`denoise_settings`).
    """

    name = "jomold"

    def __init__(self, ratios: NoiseRatios, n_classes: int, settings: Mapping[str, Any] | None = None):
        self.settings = denoise_settings(settings)
        if len(ratios.classes) != n_classes:
            raise ConfigError(f"the noise ratios have {len(ratios.classes)} classes, the model {n_classes}")
        self.ratios = ratios
        self.recorder = DropRecorder()
        self._epoch = 0
        self._n_batches = 1
        self._rho_a = self._rho_v = np.zeros(n_classes)
        self._sums: dict[str, float] = {}

    def fingerprint(self) -> bytes:
        """Identity of the ratios and settings (part of a training run's identity)."""
        return self.ratios.fingerprint() + repr(sorted(self.settings.items())).encode()

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        """Reset ρ to the file's ratios (the official re-reads its file at every epoch start)."""
        self._epoch, self._n_batches = int(epoch), int(n_batches)
        self._rho_a = self.ratios.audio.astype(np.float64).copy()
        self._rho_v = self.ratios.visual.astype(np.float64).copy()
        self._sums = {"batches": 0.0, "rho_audio": 0.0, "rho_visual": 0.0, "drops_audio": 0.0,
                      "drops_visual": 0.0, "active": 0.0}

    def __call__(self, model, features: tuple[torch.Tensor, ...], rows: torch.Tensor, weak: torch.Tensor,
                 y_a: torch.Tensor, y_v: torch.Tensor, step: int, precision: str = "fp32"
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pa′, Pv′ of one batch (the global target is not touched)."""
        from avvp.infra.precision import autocast

        s = self.settings
        self._rho_a = schedule_step(self._rho_a, self.ratios.audio, self._epoch, step, self._n_batches,
                                    float(s["warm_up_epoch"]), s["schedule"])
        self._rho_v = schedule_step(self._rho_v, self.ratios.visual, self._epoch, step, self._n_batches,
                                    float(s["warm_up_epoch"]), s["schedule"])
        device = weak.device
        with torch.no_grad():
            with autocast(device, precision):
                ranking = model(*features, with_ca=False)  # train mode: dropout on
            loss_a, loss_v = entry_losses(ranking.a_prob.float(), ranking.v_prob.float(), y_a, y_v)
            drop_a, drop_v = joint_modal_drops(loss_a, loss_v, weak > 0, self._rho_a, self._rho_v)
        self.recorder.add(self._epoch, rows, drop_a, drop_v)
        sums = self._sums
        sums["batches"] += 1
        sums["rho_audio"] += float(self._rho_a.mean())
        sums["rho_visual"] += float(self._rho_v.mean())
        sums["drops_audio"] += float(drop_a.sum())
        sums["drops_visual"] += float(drop_v.sum())
        sums["active"] = max(sums["active"], float((self._rho_a > 0).any() or (self._rho_v > 0).any()))
        return denoised_targets(y_a, y_v, drop_a, drop_v)

    def end_epoch(self) -> dict[str, float]:
        """The epoch's summary for the history: mean ratios, drops per modality."""
        s, n = self._sums, max(self._sums.get("batches", 0.0), 1.0)
        summary = {"denoise_rho_audio": s["rho_audio"] / n, "denoise_rho_visual": s["rho_visual"] / n,
                   "denoise_drops_audio": s["drops_audio"], "denoise_drops_visual": s["drops_visual"]}
        self.recorder.end_epoch({"epoch": self._epoch, "active": bool(s["active"]), **summary})
        return summary

    def state(self) -> dict[str, Any]:
        return self.recorder.state()

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.recorder.load_state(dict(state))

    def write(self, path, video_ids: Sequence[str], classes: Sequence[str]) -> None:
        """Write ``drops.parquet``."""
        self.recorder.write(path, video_ids, classes, {"method": self.name, "settings": dict(self.settings),
                                                       "ratios_source": self.ratios.source})
