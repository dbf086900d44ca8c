"""The LLP evaluation protocol as a plain per-video loop, written from the official code.

Slow and simple on purpose: one video at a time, one class at a time, events as Python sets. It
is the cross-check of the vectorised :mod:`avvp.core.metrics` (the tests compare both on random
inputs) and the per-video evaluation of the official-style loop in ``bench/train.py``. Inputs are
binary predictions and truth per video, (C, T) arrays; :func:`reference_scores` averages over
videos like the official code.
"""

from __future__ import annotations

import numpy as np

from avvp.core.metrics import METRICS

Counts = tuple[int, int, int]


def runs(x) -> list[set[int]]:
    """The events of a binary sequence: maximal runs of 1s, each as the set of its segments."""
    out, start = [], None
    for t, v in enumerate(list(x) + [0]):
        if v and start is None:
            start = t
        elif not v and start is not None:
            out.append(set(range(start, t)))
            start = None
    return out


def event_counts(pred, truth) -> Counts:
    """(TP, FP, FN) of the events of one class and stream, matched at IoU ≥ 0.5 (inclusive)."""
    predicted, true = runs(pred), runs(truth)

    def hit(a: set, b: set) -> bool:
        return len(a & b) >= 0.5 * len(a | b)

    tp = sum(any(hit(p, g) for g in true) for p in predicted)
    fn = sum(not any(hit(g, p) for p in predicted) for g in true)
    return tp, len(predicted) - tp, fn


def segment_counts(pred, truth) -> Counts:
    """(TP, FP, FN) of the segments of one class and stream."""
    p, g = np.asarray(pred, bool), np.asarray(truth, bool)
    return int((p & g).sum()), int((p & ~g).sum()), int((~p & g).sum())


def mean_f1(counts: list[Counts]) -> float:
    """Mean F1 over the classes that have a truth or a prediction; 1.0 when none has."""
    f1 = [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in counts if 2 * tp + fp + fn]
    return sum(f1) / len(f1) if f1 else 1.0


def video_scores(pred_audio, pred_visual, gt_audio, gt_visual) -> dict[str, float]:
    """The scores of one video, keyed like :data:`avvp.core.metrics.METRICS`; inputs (C, T) binary."""
    scores: dict[str, float] = {}
    for level, count in (("segment", segment_counts), ("event", event_counts)):
        per: dict[str, list[Counts]] = {s: [] for s in ("audio", "visual", "av", "event")}
        for pa, pv, ga, gv in zip(pred_audio, pred_visual, gt_audio, gt_visual):
            a, v = count(pa, ga), count(pv, gv)
            per["audio"].append(a)
            per["visual"].append(v)
            per["av"].append(count(np.logical_and(pa, pv), np.logical_and(ga, gv)))
            per["event"].append((a[0] + v[0], a[1] + v[1], a[2] + v[2]))
        level_scores = {s: mean_f1(c) for s, c in per.items()}
        level_scores["type"] = (level_scores["audio"] + level_scores["visual"] + level_scores["av"]) / 3
        scores.update({f"{level}_{s}": v for s, v in level_scores.items()})
    return scores


def mean_scores(per_video: list[dict[str, float]]) -> dict[str, float]:
    """Dataset scores from the :func:`video_scores` of every video: the mean over videos."""
    return {m: float(np.mean([s[m] for s in per_video])) for m in METRICS}


def reference_scores(pred_audio, pred_visual, gt_audio, gt_visual) -> dict[str, float]:
    """Dataset scores: the mean over videos of :func:`video_scores`; inputs (N, C, T) binary."""
    return mean_scores([video_scores(*arrays) for arrays in zip(pred_audio, pred_visual, gt_audio, gt_visual)])
