"""MA's exchange-based modality-aware label refinement (official.md §e1).

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

Options beyond the official code (settings, see :data:`DEFAULTS`): ``partners`` K > 1 partners per
video with the swapped-pass probabilities averaged over them; ``threshold: fixed`` (one threshold
for every class); ``modalities: audio|visual`` (apply only one modality's drops, the paper's
Table 3); ``alias_global`` (the official aliasing by which a dropped audio label also zeroes the
global target, official.md §e2; carried to training in the table's ``global`` column). A video
with no disjoint partner is recorded (``n_partners = 0``) and keeps its labels.

The result is a table with one row per positive weak (video, class) pair; see :func:`build_table`.
:func:`write_need_to_change` / :func:`read_need_to_change` convert it to and from the official
``need_to_change.pkl``.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from . import parquet
from .annotations import EVENT_COLUMNS
from .errors import ConfigError, InputError
from .settings import merge_settings, require_range

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "seed": 2,                 # partner-choice seed, combined with the run (training) seed
    "partners": 1,             # K partners per video; swapped-pass probabilities averaged
    "threshold": "relative",   # relative: scale x normalised class error; fixed: fixed_threshold
    "relative_scale": 0.5,     # the official 0.5
    "fixed_threshold": 0.5,
    "modalities": "both",      # both | audio | visual: which modality's labels may be dropped
    "alias_global": False,     # official aliasing: an audio drop also zeroes the global target
    "batch_size": 256,
    "device": "auto",
}
THRESHOLDS = ("relative", "fixed")
#: Share of a modality's labels above which ``avvp refine`` warns that the base model looks untrained.
WARN_DROP_SHARE = 0.5
MODALITIES = ("both", "audio", "visual")
#: Columns of the refined-labels table that training needs.
LABEL_COLUMNS = ("video_id", "class", "audio", "visual")
PROB_COLUMNS = ("p_audio", "p_visual", "a_vswap", "v_vswap", "a_aswap", "v_aswap")


def refine_settings(given: Mapping[str, Any] | None = None) -> dict:
    """``given`` merged over :data:`DEFAULTS` and checked."""
    s = merge_settings(DEFAULTS, given or {}, "refine")
    if s["threshold"] not in THRESHOLDS:
        raise ConfigError(f"refine.threshold = {s['threshold']!r} (known: {', '.join(THRESHOLDS)})")
    if s["modalities"] not in MODALITIES:
        raise ConfigError(f"refine.modalities = {s['modalities']!r} (known: {', '.join(MODALITIES)})")
    require_range("refine.partners", int(s["partners"]), 1)
    require_range("refine.batch_size", int(s["batch_size"]), 1)
    require_range("refine.fixed_threshold", float(s["fixed_threshold"]), 0.0, 1.0)
    require_range("refine.relative_scale", float(s["relative_scale"]), 0.0, 1.0)
    return s


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
        model: a :class:`avvp.model.HAN` (put in eval mode here; dropout off).
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

    from .device import resolve_device

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
    """The two drop rules (official.md §e1) on positive labels; NaN probabilities never drop.

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
class RefineResult:
    """The refined-labels table plus the per-class thresholds and the partners drawn."""

    table: pd.DataFrame
    classes: list[str]
    thresholds: dict[str, np.ndarray]
    partners: np.ndarray
    settings: dict

    def summary(self) -> dict[str, Any]:
        t = self.table
        return {
            "labels": int(len(t)),
            "dropped_audio": int((t["audio"] == 0).sum()),
            "dropped_visual": int((t["visual"] == 0).sum()),
            "dropped_both": int(((t["audio"] == 0) & (t["visual"] == 0)).sum()),
            "videos_without_partner": int((self.partners < 0).all(axis=1).sum()),
        }


def build_table(video_ids: Sequence[str], classes: Sequence[str], labels: np.ndarray,
                probs: ExchangeProbs, thr: Mapping[str, np.ndarray], drop_a: np.ndarray,
                drop_v: np.ndarray, partners: np.ndarray, alias_global: bool = False) -> pd.DataFrame:
    """One row per positive weak (video, class) pair.

    Columns: ``video_id``, ``row`` (index in the training list), ``class``, ``class_index``,
    ``audio``/``visual`` (int8 modality labels, 0 = dropped), ``global`` (int8 global target: 0
    only where ``alias_global`` and the audio label is dropped), the six pass probabilities
    :data:`PROB_COLUMNS`, ``thr_audio``/``thr_visual`` (the class thresholds), ``n_partners`` and
    ``partners`` (the partner ids joined by ``;``).
    """
    rows, cols = np.nonzero(np.asarray(labels) > 0)
    ids = np.asarray(list(video_ids), dtype=object)
    partner_ids = [";".join(ids[p] for p in prow if p >= 0) for prow in partners]
    audio = (~drop_a[rows, cols]).astype(np.int8)
    table = pd.DataFrame({
        "video_id": ids[rows].astype(str),
        "row": rows.astype(np.int64),
        "class": np.asarray(list(classes), dtype=object)[cols].astype(str),
        "class_index": cols.astype(np.int64),
        "audio": audio,
        "visual": (~drop_v[rows, cols]).astype(np.int8),
        "global": (audio if alias_global else np.ones_like(audio)).astype(np.int8),
        "p_audio": probs.a[rows, cols], "p_visual": probs.v[rows, cols],
        "a_vswap": probs.a_vswap[rows, cols], "v_vswap": probs.v_vswap[rows, cols],
        "a_aswap": probs.a_aswap[rows, cols], "v_aswap": probs.v_aswap[rows, cols],
        "thr_audio": np.asarray(thr["audio"])[cols], "thr_visual": np.asarray(thr["visual"])[cols],
        "n_partners": (partners[rows] >= 0).sum(axis=1).astype(np.int64),
        "partners": np.asarray(partner_ids, dtype=object)[rows].astype(str),
    })
    return table


def refine_from_probs(video_ids: Sequence[str], classes: Sequence[str], labels: np.ndarray,
                      probs: ExchangeProbs, partners: np.ndarray,
                      settings: Mapping[str, Any] | None = None) -> RefineResult:
    """Thresholds, drop rules and the table, from the three passes' probabilities."""
    s = refine_settings(settings)
    thr = thresholds(labels, probs, s)
    drop_a, drop_v = drop_masks(labels, probs, thr["audio"], thr["visual"], s["modalities"])
    table = build_table(video_ids, classes, labels, probs, thr, drop_a, drop_v, partners, s["alias_global"])
    return RefineResult(table, list(classes), thr, partners, s)


def refine(model, video_ids: Sequence[str], classes: Sequence[str], labels: np.ndarray,
           audio: np.ndarray, frame: np.ndarray, clip: np.ndarray,
           settings: Mapping[str, Any] | None = None, run_seed: int = 0,
           progress: bool = True) -> RefineResult:
    """The whole refinement of a training set with a trained base model.

    Args:
        model: the trained base :class:`avvp.model.HAN`.
        video_ids, classes: the training videos (in training-list order) and the class names.
        labels: (N, C) weak labels.
        audio, frame, clip: the videos' features, in memory.
        settings: refine settings over :data:`DEFAULTS`.
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


# ------------------------------------------------------------------------- files

def write_table(path: str | Path, result: RefineResult, meta: Mapping[str, Any] | None = None) -> None:
    """Write the refined-labels Parquet table atomically (settings and thresholds in its metadata)."""
    from .atomic import write_parquet

    table = result.table.copy()
    table.attrs = {
        "settings": dict(result.settings),
        "classes": list(result.classes),
        "thresholds": {k: np.asarray(v).tolist() for k, v in result.thresholds.items()},
        "summary": result.summary(),
        **dict(meta or {}),
    }
    write_parquet(path, table)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a refined-labels table; checks the columns training needs and their values."""
    path = Path(path)
    table = parquet.read_table(path, LABEL_COLUMNS, "refined-labels file")
    for col in ("audio", "visual") + (("global",) if "global" in table.columns else ()):
        bad = ~table[col].isin([0, 1])
        if bad.any():
            raise InputError(path, f"column {col!r} must hold 0/1, found {table.loc[bad, col].iloc[0]!r}")
    if table.duplicated(["video_id", "class"]).any():
        row = table[table.duplicated(["video_id", "class"])].iloc[0]
        raise InputError(path, f"({row['video_id']}, {row['class']}) is listed twice")
    return table


def modality_targets(table: pd.DataFrame, video_ids: Sequence[str], classes: Sequence[str],
                     source: str | Path | None = None) -> dict[str, np.ndarray]:
    """Per-modality label matrices of a refined table, for training.

    Args:
        table: a refined-labels table (:func:`read_table`).
        video_ids: the training videos, in row order.
        classes: the class names, in column order.
        source: the table's file, for error messages.

    Returns:
        ``weak`` (N, C) float32 (1 where the table lists the pair), ``audio`` and ``visual`` (N, C)
        float32 modality labels (0 where dropped) and ``global`` (N, C) float32 global targets
        (``weak`` unless the table carries an aliased ``global`` column).
    """
    row = {v: i for i, v in enumerate(video_ids)}
    col = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(table["video_id"]) - set(row))
    if unknown:
        raise InputError(source, f"{len(unknown)} video(s) not in the training set, e.g. {unknown[0]!r}")
    bad = sorted(set(table["class"]) - set(col))
    if bad:
        raise InputError(source, f"unknown class name {bad[0]!r}")
    r = table["video_id"].map(row).to_numpy(np.int64)
    c = table["class"].map(col).to_numpy(np.int64)
    shape = (len(row), len(col))
    out = {name: np.zeros(shape, dtype=np.float32) for name in ("weak", "audio", "visual", "global")}
    out["weak"][r, c] = 1.0
    out["audio"][r, c] = table["audio"].to_numpy(np.float32)
    out["visual"][r, c] = table["visual"].to_numpy(np.float32)
    glob = table["global"] if "global" in table.columns else pd.Series(np.ones(len(table)))
    out["global"][r, c] = glob.to_numpy(np.float32)
    return out


def write_need_to_change(path: str | Path, table: pd.DataFrame, train_ids: Sequence[str],
                         classes: Sequence[str]) -> None:
    """Export the drops in the official ``need_to_change.pkl`` layout (official.md §e1).

    A pickle of ``[need_to_change_v, need_to_change_a]``; each is a list of C lists of 0-based row
    indices into the training CSV (``train_ids``), stored as 0-dim torch int64 tensors as the
    official file does, in increasing row order.
    """
    import torch

    from .atomic import atomic_path

    row = {v: i for i, v in enumerate(train_ids)}
    col = {c: i for i, c in enumerate(classes)}
    missing = sorted(set(table["video_id"]) - set(row))
    if missing:
        raise InputError(None, f"{len(missing)} refined video(s) are not in the training list, e.g. {missing[0]!r}")
    lists = []
    for modality in ("visual", "audio"):
        per_class: list[list[Any]] = [[] for _ in classes]
        dropped = table[table[modality] == 0]
        pairs = sorted((row[v], col[c]) for v, c in zip(dropped["video_id"], dropped["class"]))
        for r, c in pairs:
            per_class[c].append(torch.tensor(r, dtype=torch.int64))
        lists.append(per_class)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(lists, fh)


def read_need_to_change(path: str | Path, train_ids: Sequence[str], classes: Sequence[str],
                        labels: np.ndarray, alias_global: bool = False) -> pd.DataFrame:
    """Read an official (or our) ``need_to_change.pkl`` into a refined-labels table.

    Args:
        path: the pickle; row indices may be ints or 0-dim tensors.
        train_ids: the training CSV's file names, in file order.
        classes: the class names (the pickle's C lists follow this order).
        labels: (N, C) weak labels of ``train_ids``.
        alias_global: fill the ``global`` column with the official aliasing.

    Returns:
        The table (the probability and threshold columns are NaN: the pickle does not hold them).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)  # noqa: S301 - the official format is a pickle
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"cannot unpickle: {exc}") from None
    if not (isinstance(data, (list, tuple)) and len(data) == 2):
        raise InputError(path, "expected a pickle of [need_to_change_v, need_to_change_a]")
    n, c = len(train_ids), len(classes)
    labels = np.asarray(labels) > 0
    drops = []
    for name, lists in zip(("need_to_change_v", "need_to_change_a"), data):
        if not (isinstance(lists, (list, tuple)) and len(lists) == c):
            raise InputError(path, f"{name} must be a list of {c} lists (one per class)")
        mask = np.zeros((n, c), dtype=bool)
        for k, rows in enumerate(lists):
            for value in rows:
                r = _as_int(value, path, name)
                if not 0 <= r < n:
                    raise InputError(path, f"{name}[{k}] holds row {r}, outside 0..{n - 1}")
                mask[r, k] = True
        drops.append(mask & labels)
    drop_v, drop_a = drops
    nan = np.full((n, c), np.nan)
    probs = ExchangeProbs(nan, nan, nan, nan, nan, nan)
    thr = {"audio": np.full(c, np.nan), "visual": np.full(c, np.nan)}
    partners = np.full((n, 1), -1, dtype=np.int64)
    return build_table(train_ids, classes, labels, probs, thr, drop_a, drop_v, partners, alias_global)


# --------------------------------------------------------------------------- the stage

def quality_paths(folder: str | Path) -> dict[str, Path]:
    """The refinement-quality files written into ``folder``."""
    folder = Path(folder)
    return {"parquet": folder / "quality.parquet", "md": folder / "quality.md", "png": folder / "quality.png"}


def run_refine(model_path: str | Path, features_dir: str | Path, manifest: str | Path, out: str | Path,
               settings: Mapping[str, Any] | None = None, run_seed: int = 0,
               pkl: str | Path | None = None, quality_dir: str | Path | None = None,
               annotations: str | Path | None = None, progress: bool = True) -> RefineResult:
    """``avvp refine``: refine the training labels of a data set with a trained base model.

    Args:
        model_path: the base model (an avvp ``model.pt`` or an official state dict).
        features_dir: folder with the merged stores ``audio.h5``, ``frame.h5``, ``clip.h5``.
        manifest: ``manifest.parquet``; its ``train`` videos, in order, are refined.
        out: the refined-labels Parquet table to write.
        settings: refine settings over :data:`DEFAULTS`.
        run_seed: the experiment's training seed (combined with ``settings.seed`` for partners).
        pkl: also export the drops as the official ``need_to_change.pkl`` here.
        quality_dir: also write the refinement quality (needs the true per-modality training
            labels, ``dense_train_audio.parquet`` / ``dense_train_visual.parquet`` beside the manifest).
        annotations: annotation folder for ``classes.txt`` (default: found beside the manifest).
        progress: show progress bars.
    """
    import time

    from .checkpoint import load_model
    from .data import check_dims, load_annotations, load_features, split_ids

    s = refine_settings(settings)
    ann = load_annotations(manifest, annotations, dense=False)
    ids = split_ids(ann, "train", manifest)
    truth = _train_truth(manifest) if quality_dir is not None else None
    model, info = load_model(model_path)
    if info["classes"] and list(info["classes"]) != list(ann.classes):
        raise InputError(model_path, "the model's class list differs from the manifest's classes")
    if model.config.n_classes != len(ann.classes):
        raise InputError(model_path, f"the model predicts {model.config.n_classes} classes, "
                                     f"the annotations have {len(ann.classes)}")
    features = load_features(features_dir, ids, progress=progress, missing="skip", what="training videos")
    train_ids, ids = ids, features.video_ids
    check_dims(features, model.config.to_dict(), features_dir)
    started = time.perf_counter()
    result = refine(model, ids, ann.classes, ann.weak(ids), features.audio, features.frame, features.clip,
                    s, run_seed, progress)
    seconds = time.perf_counter() - started
    summary = result.summary()
    log.info("refined %d labels of %d videos in %.1f s: %d audio, %d visual dropped (%d both); "
             "%d videos without a partner", summary["labels"], len(ids), seconds, summary["dropped_audio"],
             summary["dropped_visual"], summary["dropped_both"], summary["videos_without_partner"])
    for message in diagnose(result):
        log.warning("%s: %s", model_path, message)
    write_table(out, result, {"base_model": str(model_path), "run_seed": int(run_seed), "seconds": seconds})
    if pkl is not None:
        write_need_to_change(pkl, result.table, train_ids, ann.classes)
    if quality_dir is not None:
        from . import refine_quality

        q = refine_quality.quality(result.table, truth["audio"], truth["visual"], ann.classes)
        paths = quality_paths(quality_dir)
        refine_quality.write_report(q, paths["parquet"], paths["md"], paths["png"],
                                    title=f"Refinement quality ({Path(out).parent})")
    return result


def import_pkl(pkl: str | Path, manifest: str | Path, out: str | Path,
               settings: Mapping[str, Any] | None = None, annotations: str | Path | None = None) -> pd.DataFrame:
    """Turn an official ``need_to_change.pkl`` into a refined-labels table (``avvp refine --from-pkl``)."""
    from .atomic import write_parquet
    from .data import load_annotations, split_ids

    s = refine_settings(settings)
    ann = load_annotations(manifest, annotations, dense=False)
    ids = split_ids(ann, "train", manifest)
    table = read_need_to_change(pkl, ids, ann.classes, ann.weak(ids), bool(s["alias_global"]))
    table.attrs = {"settings": s, "classes": list(ann.classes), "source": str(pkl)}
    write_parquet(out, table)
    return table


def export_pkl(labels: str | Path, manifest: str | Path, pkl: str | Path,
               annotations: str | Path | None = None) -> None:
    """Write the official ``need_to_change.pkl`` of a refined-labels table (``avvp refine --to-pkl``)."""
    from .data import load_annotations, split_ids

    ann = load_annotations(manifest, annotations, dense=False)
    write_need_to_change(pkl, read_table(labels), split_ids(ann, "train", manifest), ann.classes)


def _train_truth(manifest: str | Path) -> dict[str, pd.DataFrame]:
    folder = Path(manifest).parent
    out = {}
    for modality in ("audio", "visual"):
        out[modality] = parquet.read_table(
            folder / f"dense_train_{modality}.parquet", EVENT_COLUMNS,
            "true per-modality training labels (needed for the quality report)")
    if out["audio"].empty and out["visual"].empty:
        raise InputError(folder / "dense_train_audio.parquet",
                         "the data set has no true per-modality training labels (only the demo has them)")
    return out


def _as_int(value: Any, path: Path, name: str) -> int:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)):
        raise InputError(path, f"{name} holds {value!r}, expected a row index")
    return int(value)
