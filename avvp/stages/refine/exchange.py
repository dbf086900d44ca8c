"""MA's exchange-based modality-aware label refinement, as MA's step 2 does it.

For every training video *i* a partner *j* with a disjoint weak label set is drawn (seeded). The
trained base model, in eval mode, runs three passes:

1. original (A_i, V_i) → video-level modality probabilities p_a, p_v;
2. visual swapped (A_i, V_j) → ``a_vswap``, ``v_vswap``;
3. audio swapped (A_j, V_i) → ``a_aswap``, ``v_aswap``

(V = the frame and clip features together). Per class c, the original pass gives the error rate
err_m[c] = mean_videos 1[(p_m[c] > 0.5) ≠ y[c]] of each modality m, and the *relative* threshold
τ_m[c] = 0.5 · err_m[c] / max_c err_m[c]. For each positive weak label (i, c):

* the **visual** label is dropped when ``v_aswap[c] < τ_v[c]`` and ``a_aswap[c] < τ_v[c]`` (with the
  audio replaced, neither stream still finds c: the event was only audible);
* the **audio** label is dropped when ``a_vswap[c] < τ_a[c]`` and ``v_vswap[c] < τ_a[c]``.

The comparison is strict, so a class with zero error (τ = 0) is never dropped, and when a
modality's maximum error is 0 nothing is dropped for it: the official code divides by zero there
and its NaN/inf comparisons are false, which this reproduces without dividing.

Options beyond the official code (settings, see :func:`refine_settings`): ``partners`` K > 1 partners per
video with the swapped-pass probabilities averaged over them; ``threshold: fixed`` (one threshold
for every class); ``modalities: audio|visual`` (apply only one modality's drops, the paper's
Table 3); ``alias_global`` (the official aliasing by which a dropped audio label also zeroes the
global target; carried to training in the table's ``global`` column). A video
with no disjoint partner is recorded (``n_partners = 0``) and keeps its labels.

The result is a refined-labels table (:mod:`avvp.core.refined_labels`) with one row per positive weak
(video, class) pair, plus MA's own columns; see :func:`build_table`. :mod:`avvp.stages.refine.official`
converts it to and from the official ``need_to_change.pkl``. This is the *static* member of the
label-denoising family (:mod:`avvp.stages.refine`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from avvp.settings import complete_section
from avvp.core.refined_labels import LabelResult, label_table

log = logging.getLogger(__name__)

#: Share of a modality's labels above which ``avvp refine`` warns that the base model looks untrained.
WARN_DROP_SHARE = 0.5
PROB_COLUMNS = ("p_audio", "p_visual", "a_vswap", "v_vswap", "a_aswap", "v_aswap")


def refine_settings(given: Mapping[str, Any] | None = None) -> dict:
    """The ``refine`` settings: ``given`` completed with the defaults of the settings definition
    (:mod:`avvp.settings`) and checked."""
    return complete_section("refine", given)


# --------------------------------------------------------------------------- partner choice

def choose_partners(labels: np.ndarray, k: int = 1, seed: int | Sequence[int] = 0) -> np.ndarray:
    """Draw ``k`` partners per video whose weak labels are disjoint from the video's.

    Each video's partners are drawn uniformly from all other videos with a disjoint label set
    (the distribution of the official rejection sampling), without replacement when there are at
    least ``k`` candidates and with replacement otherwise.

    Args:
        labels: (N, C) multi-hot weak labels.
        k: partners per video.
        seed: an int or a sequence of ints (e.g. ``[refine seed, training seed]``) for
            :func:`numpy.random.default_rng`; the same seed gives the same partners.

    Returns:
        (N, k) int64 row indices; a video with no disjoint partner has a row of -1.
    """
    labels = np.asarray(labels) > 0
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    out = np.full((n, k), -1, dtype=np.int64)
    sets, inverse = np.unique(labels, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    overlap = sets.astype(np.float32) @ labels.T.astype(np.float32)  # (U, N): shared labels (exact)
    for i in range(n):
        candidates = np.flatnonzero(overlap[inverse[i]] == 0)
        candidates = candidates[candidates != i]
        if candidates.size == 0:
            continue
        out[i] = rng.choice(candidates, size=k, replace=candidates.size < k)
    return out


# ------------------------------------------------------------------------- exchange passes

@dataclass
class ExchangeProbs:
    """Video-level modality probabilities (N, C) of the three passes.

    ``a``/``v``: original pass; ``a_vswap``/``v_vswap``: visual track swapped (own audio kept);
    ``a_aswap``/``v_aswap``: audio track swapped (own visual kept). Swapped values are means over
    a video's partners, NaN for a video without one.
    """

    a: np.ndarray
    v: np.ndarray
    a_vswap: np.ndarray
    v_vswap: np.ndarray
    a_aswap: np.ndarray
    v_aswap: np.ndarray


def exchange_probs(model, audio: np.ndarray, frame: np.ndarray, clip: np.ndarray,
                   partners: np.ndarray, batch_size: int = 256, device: str = "auto",
                   progress: bool = True) -> ExchangeProbs:
    """Run the original and the two swapped passes of ``model`` over in-memory features.

    Args:
        model: a :class:`avvp.core.model.HAN` (put in eval mode here; dropout off).
        audio, frame, clip: (N, T_r, D_r) float32 features of the training videos (numpy arrays
            or torch tensors).
        partners: (N, K) partner rows from :func:`choose_partners` (-1: none).
        batch_size: videos per forward pass.
        device: "auto", "cpu", "cuda", ...
        progress: show a tqdm bar.

    Returns:
        The probabilities, averaged over the K partners.
    """
    import torch
    from tqdm import tqdm

    from avvp.infra.device import resolve_device

    dev = resolve_device(device)
    model = model.to(dev).eval()
    n, k = partners.shape
    feats = [x.float() if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
             for x in (audio, frame, clip)]
    out: dict[str, np.ndarray] = {}
    valid = partners >= 0
    safe = np.where(valid, partners, np.arange(n)[:, None])
    steps = range(0, n, batch_size)
    with torch.inference_mode():
        for start in tqdm(steps, desc="refine passes", unit="batch", disable=not progress):
            rows = np.arange(start, min(start + batch_size, n))
            own = [f[rows].to(dev) for f in feats]
            res = model(*own)
            acc = {"a": res.a_prob.float().cpu().numpy(), "v": res.v_prob.float().cpu().numpy()}
            sums = {key: np.zeros_like(acc["a"], dtype=np.float64)
                    for key in ("a_vswap", "v_vswap", "a_aswap", "v_aswap")}
            for j in range(k):
                other = [f[safe[rows, j]].to(dev) for f in feats]
                vs = model(own[0], other[1], other[2])      # visual track swapped
                as_ = model(other[0], own[1], own[2])       # audio track swapped
                sums["a_vswap"] += vs.a_prob.float().cpu().numpy()
                sums["v_vswap"] += vs.v_prob.float().cpu().numpy()
                sums["a_aswap"] += as_.a_prob.float().cpu().numpy()
                sums["v_aswap"] += as_.v_prob.float().cpu().numpy()
            none = ~valid[rows].any(axis=1)
            for key, total in sums.items():
                mean = total / k
                mean[none] = np.nan
                acc[key] = mean
            for key, value in acc.items():
                if key not in out:
                    out[key] = np.empty((n, value.shape[1]), dtype=np.float64)
                out[key][rows] = value
    return ExchangeProbs(**out)


# ---------------------------------------------------------------------- thresholds and drops

def class_errors(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-class error rate (C,): mean over videos of 1[(p > 0.5) ≠ y]."""
    return ((np.asarray(probs) > 0.5) != (np.asarray(labels) > 0)).mean(axis=0)


def relative_thresholds(errors: np.ndarray, scale: float = 0.5) -> np.ndarray:
    """``scale · err / max(err)`` per class; all zeros when the maximum error is 0 (no division)."""
    errors = np.asarray(errors, dtype=np.float64)
    top = errors.max(initial=0.0)
    if top <= 0:
        return np.zeros_like(errors)
    return scale * errors / top


def thresholds(labels: np.ndarray, probs: ExchangeProbs, settings: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-class thresholds of both modalities and the errors behind them.

    Returns:
        ``audio``, ``visual`` (C,) thresholds and ``err_audio``, ``err_visual`` (C,) errors.
    """
    err_a, err_v = class_errors(labels, probs.a), class_errors(labels, probs.v)
    if settings["threshold"] == "fixed":
        fixed = float(settings["fixed_threshold"])
        thr_a, thr_v = np.full_like(err_a, fixed), np.full_like(err_v, fixed)
    else:
        scale = float(settings["relative_scale"])
        thr_a, thr_v = relative_thresholds(err_a, scale), relative_thresholds(err_v, scale)
    return {"audio": thr_a, "visual": thr_v, "err_audio": err_a, "err_visual": err_v}


def drop_masks(labels: np.ndarray, probs: ExchangeProbs, thr_audio: np.ndarray, thr_visual: np.ndarray,
               modalities: str = "both") -> tuple[np.ndarray, np.ndarray]:
    """The two drop rules of MA's step 2 on positive labels; NaN probabilities never drop.

    Returns:
        (drop_audio, drop_visual), (N, C) bool.
    """
    pos = np.asarray(labels) > 0
    with np.errstate(invalid="ignore"):
        drop_v = pos & (probs.v_aswap < thr_visual) & (probs.a_aswap < thr_visual)
        drop_a = pos & (probs.a_vswap < thr_audio) & (probs.v_vswap < thr_audio)
    if modalities == "audio":
        drop_v = np.zeros_like(drop_v)
    elif modalities == "visual":
        drop_a = np.zeros_like(drop_a)
    return drop_a, drop_v


# ------------------------------------------------------------------------------ the table

@dataclass
class RefineResult(LabelResult):
    """MA's refined-labels table plus the per-class thresholds and the partners drawn."""

    thresholds: dict[str, np.ndarray] = field(default_factory=dict)
    partners: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.int64))

    def summary(self) -> dict[str, Any]:
        return {**super().summary(),
                "videos_without_partner": int((self.partners < 0).all(axis=1).sum())}

    def metadata(self) -> dict[str, Any]:
        return {"settings": dict(self.settings), "classes": list(self.classes),
                "thresholds": {k: np.asarray(v).tolist() for k, v in self.thresholds.items()},
                **self.attrs, "summary": self.summary()}


def build_table(video_ids: Sequence[str], classes: Sequence[str], labels: np.ndarray,
                probs: ExchangeProbs, thr: Mapping[str, np.ndarray], drop_a: np.ndarray,
                drop_v: np.ndarray, partners: np.ndarray, alias_global: bool = False) -> pd.DataFrame:
    """One row per positive weak (video, class) pair.

    Columns: those of :func:`avvp.core.refined_labels.label_table` (``global`` is 0 only where
    ``alias_global`` and the audio label is dropped), then the six pass probabilities
    :data:`PROB_COLUMNS`, ``thr_audio``/``thr_visual`` (the class thresholds), ``n_partners`` and
    ``partners`` (the partner ids joined by ``;``).
    """
    n, c = np.asarray(labels).shape
    ids = np.asarray(list(video_ids), dtype=object)
    partner_ids = np.asarray([";".join(ids[p] for p in prow if p >= 0) for prow in partners], dtype=object)
    per_video = lambda x: np.repeat(np.asarray(x)[:, None], c, axis=1)  # noqa: E731
    per_class = lambda x: np.repeat(np.asarray(x)[None, :], n, axis=0)  # noqa: E731
    extra = {
        "p_audio": probs.a, "p_visual": probs.v,
        "a_vswap": probs.a_vswap, "v_vswap": probs.v_vswap,
        "a_aswap": probs.a_aswap, "v_aswap": probs.v_aswap,
        "thr_audio": per_class(thr["audio"]), "thr_visual": per_class(thr["visual"]),
        "n_partners": per_video((partners >= 0).sum(axis=1).astype(np.int64)),
        "partners": per_video(partner_ids),
    }
    table = label_table(video_ids, classes, labels, drop_a, drop_v, drop_a if alias_global else None, extra)
    table["partners"] = table["partners"].astype(str)
    return table


def refine_from_probs(video_ids: Sequence[str], classes: Sequence[str], labels: np.ndarray,
                      probs: ExchangeProbs, partners: np.ndarray,
                      settings: Mapping[str, Any] | None = None) -> RefineResult:
    """Thresholds, drop rules and the table, from the three passes' probabilities."""
    s = refine_settings(settings)
    thr = thresholds(labels, probs, s)
    drop_a, drop_v = drop_masks(labels, probs, thr["audio"], thr["visual"], s["modalities"])
    table = build_table(video_ids, classes, labels, probs, thr, drop_a, drop_v, partners, s["alias_global"])
    return RefineResult(table, list(classes), s, thresholds=thr, partners=partners)


def refine(model, video_ids: Sequence[str], classes: Sequence[str], labels: np.ndarray,
           audio: np.ndarray, frame: np.ndarray, clip: np.ndarray,
           settings: Mapping[str, Any] | None = None, run_seed: int = 0,
           progress: bool = True) -> RefineResult:
    """The whole refinement of a training set with a trained base model.

    Args:
        model: the trained base :class:`avvp.core.model.HAN`.
        video_ids, classes: the training videos (in training-list order) and the class names.
        labels: (N, C) weak labels.
        audio, frame, clip: the videos' features, in memory.
        settings: refine settings (:func:`refine_settings`).
        run_seed: the training seed of the experiment; the partners are drawn with
            ``[settings.seed, run_seed]``, so each seed of an experiment gets its own partners.
        progress: show progress bars.
    """
    s = refine_settings(settings)
    labels = np.asarray(labels, dtype=np.float32)
    if labels.shape != (len(video_ids), len(classes)):
        raise ValueError(f"labels have shape {labels.shape}, expected ({len(video_ids)}, {len(classes)})")
    partners = choose_partners(labels, int(s["partners"]), [int(s["seed"]), int(run_seed)])
    missing = int((partners < 0).all(axis=1).sum())
    if missing:
        log.warning("%d of %d videos have no partner with disjoint labels; their labels are kept",
                    missing, len(video_ids))
    probs = exchange_probs(model, audio, frame, clip, partners, int(s["batch_size"]), s["device"], progress)
    return refine_from_probs(video_ids, classes, labels, probs, partners, s)


def diagnose(result: RefineResult) -> list[str]:
    """Warnings about a refinement whose base model looks unfit for it.

    * more than :data:`WARN_DROP_SHARE` of a modality's labels dropped: the base model has
      probably not learned (its probabilities are low everywhere);
    * relative thresholds of 0 (the class had no training error) for most classes of a modality:
      the base model fits the training labels, so those classes can never be refined (typical of
      a small data set; ``threshold: fixed`` avoids it).
    """
    out = []
    table, s = result.table, result.settings
    for modality in ("audio", "visual"):
        share = float((table[modality] == 0).mean()) if len(table) else 0.0
        errors = np.round(np.asarray(result.thresholds[f"err_{modality}"]), 3).tolist()
        if share > WARN_DROP_SHARE:
            out.append(f"{100 * share:.0f}% of the {modality} labels were dropped: the base model may not "
                       f"have learned (its training error per class: {errors})")
        zero = int((np.asarray(result.thresholds[modality]) <= 0).sum())
        if s["threshold"] == "relative" and zero > len(result.classes) / 2:
            out.append(f"{zero} of {len(result.classes)} classes have a {modality} threshold of 0 because the "
                       f"base model has no training error on them, so their {modality} labels are never "
                       "dropped; the base model fits the training labels (small data set?); "
                       "threshold: fixed avoids this")
    return out
