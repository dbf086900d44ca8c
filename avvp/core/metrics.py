"""The official LLP evaluation protocol, vectorised over all videos and classes at once.

Inputs are a model's outputs (video-level ``global_prob``, ``a_prob``, ``v_prob`` of shape (N, C)
and ``frame_prob`` (N, T, 2, C)) and the dense truth ``gt_audio`` / ``gt_visual`` (N, C, T).

1. Binary predictions: a segment is positive when its frame probability is ≥ the threshold
   and the class passes the video-level gate: the global probability ("han") or the modality's own
   video probability ("ma"). Audio-visual = audio AND visual, for predictions and truth alike.
2. Counts per video, class and stream: segment level counts segments; event level counts
   events, the maximal runs of positive segments, a predicted event being a true positive when a
   truth event of the same class and stream overlaps it with IoU ≥ 0.5 (inclusive), and a truth
   event a false negative when no predicted event reaches it.
3. F1 per video and class, 2TP / (2TP + FP + FN); classes with no truth and no prediction are
   skipped; a video's score is the mean over the remaining classes, or 1.0 when none remain.
   Event@AV pools the audio and visual counts per class before the F1.
4. Dataset scores are means over videos; Type@AV is the mean of the audio, visual and audio-visual
   scores.

Segments beyond T are not scored; videos of different lengths can share a batch by padding with
zeros (optionally passing ``lengths``, which zeroes predictions past each video's end), since
all-zero segments add no count at either level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

GATES = ("han", "ma")
LEVELS = ("segment", "event")
#: Keys of :attr:`Result.overall`, in table order, e.g. ``segment_audio`` ... ``event_event``.
METRICS = tuple(f"{level}_{s}" for level in LEVELS for s in ("audio", "visual", "av", "type", "event"))
STREAM_LABELS = {"audio": "audio", "visual": "visual", "av": "audio-visual",
                 "type": "Type@AV", "event": "Event@AV"}


@dataclass
class Result:
    """The scores of one evaluation.

    Attributes:
        overall: dataset scores as fractions in [0, 1], keyed ``<level>_<stream>`` with level
            ``segment``/``event`` and stream ``audio``, ``visual``, ``av``, ``type`` (Type@AV) and
            ``event`` (Event@AV); see :data:`METRICS`.
        per_class: one row per level, stream (audio, visual, av, event) and class: the counts
            ``tp``, ``fp``, ``fn`` summed over videos; ``f1_pooled``, the dataset-level F1 of those
            pooled counts (NaN for a class with no truth and no prediction anywhere); and
            ``f1_video_mean``, the mean of the per-video F1 over the ``n_videos`` videos where the
            class is scored (not skipped). Neither is an official number: the official scores
            average over classes inside each video first.
        per_video: one row per video: ``video_id`` and one column per metric in :data:`METRICS`
            (per-video Type@AV is the mean of its three stream scores); the mean of each column is
            the overall score.
        meta: how the result was made: ``gate``, ``threshold``, ``n_videos``, ``n_segments``
            (plus what the caller adds: split, annotation version, ...).
    """

    overall: dict[str, float]
    per_class: pd.DataFrame
    per_video: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def _get(pred: Any, name: str) -> np.ndarray:
    value = pred[name] if isinstance(pred, Mapping) else getattr(pred, name)
    return np.asarray(value)


def gate_masks(global_prob: np.ndarray, a_prob: np.ndarray, v_prob: np.ndarray,
               gate: str = "han", threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The video-level gates (N, C) bool for audio and visual.

    Args:
        global_prob, a_prob, v_prob: video-level probabilities (N, C).
        gate: "han" gates both modalities with the global probability; "ma" gates audio with
            ``a_prob`` and visual with ``v_prob``.
        threshold: a class passes when its probability is ≥ this.
    """
    if gate == "han":
        g = np.asarray(global_prob) >= threshold
        return g, g
    if gate == "ma":
        return np.asarray(a_prob) >= threshold, np.asarray(v_prob) >= threshold
    raise ValueError(f"unknown gate {gate!r} (known: {', '.join(GATES)})")


def binarize(pred: Any, gate: str = "han", threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Binary segment predictions of a model's outputs (step 1 above).

    Args:
        pred: anything with ``global_prob``, ``a_prob``, ``v_prob`` (N, C) and ``frame_prob``
            (N, T, 2, C) as attributes or keys (a :class:`avvp.core.prediction_file.Predictions`, a model
            output, a loaded ``.npz``).
        gate: "han" or "ma", see :func:`gate_masks`.
        threshold: the decision threshold for both frame and video probabilities.

    Returns:
        (audio, visual), each (N, C, T) uint8.
    """
    gate_a, gate_v = gate_masks(_get(pred, "global_prob"), _get(pred, "a_prob"), _get(pred, "v_prob"),
                                gate, threshold)
    frame = _get(pred, "frame_prob")
    if frame.ndim != 4 or frame.shape[2] != 2:
        raise ValueError(f"frame_prob has shape {frame.shape}, expected (N, T, 2, C)")
    on = np.moveaxis(frame >= threshold, 1, -1)  # (N, 2, C, T)
    audio = on[:, 0] & gate_a[:, :, None]
    visual = on[:, 1] & gate_v[:, :, None]
    return audio.astype(np.uint8), visual.astype(np.uint8)


def segment_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment-level (TP, FP, FN) over the last axis: arrays of the leading shape (e.g. (N, C))."""
    p, g = pred.astype(bool), truth.astype(bool)
    return (p & g).sum(-1), (p & ~g).sum(-1), (~p & g).sum(-1)


def label_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label the maximal runs of True along the last axis of a boolean array.

    Returns:
        labels: array of ``x``'s shape, 0 outside runs and the run number (1-based, in row-major
            order, unique over the whole array) inside them;
        lengths: (R + 1,) segments per run (index 0 unused);
        rows: (R + 1,) the flat index of the row (all axes but the last) each run lies in.
    """
    x = x.astype(bool)
    t = x.shape[-1]
    flat = x.reshape(-1, t)
    starts = flat.copy()
    starts[:, 1:] &= ~flat[:, :-1]
    numbers = np.cumsum(starts.ravel()).reshape(flat.shape)
    labels = np.where(flat, numbers, 0)
    n_runs = int(numbers[-1, -1]) if flat.size else 0
    lengths = np.bincount(labels.ravel(), minlength=n_runs + 1)
    rows = np.zeros(n_runs + 1, dtype=np.int64)
    rows[1:] = np.nonzero(starts)[0]
    return labels.reshape(x.shape), lengths, rows


def event_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Event-level (TP, FP, FN) per row (all axes but the last), step 2 above.

    Events are the maximal runs of positive segments. A predicted event is a TP when some truth
    event of the same row has IoU ≥ 0.5 with it (|∩| ≥ 0.5·|∪|, i.e. 3|∩| ≥ |P| + |G| in whole
    segments, so exact), else an FP; a truth event that no predicted event reaches is an FN.
    """
    shape = pred.shape[:-1]
    n_rows = int(np.prod(shape))
    p_lab, p_len, p_row = label_runs(pred)
    g_lab, g_len, g_row = label_runs(truth)
    both = (p_lab > 0) & (g_lab > 0)
    # Each overlapping (pred run, truth run) pair shares a contiguous stretch of segments: count it.
    key = p_lab[both].astype(np.int64) * len(g_len) + g_lab[both]
    pairs, inter = np.unique(key, return_counts=True)
    p_id, g_id = np.divmod(pairs, len(g_len))
    ok = 3 * inter >= p_len[p_id] + g_len[g_id]
    p_hit = np.zeros(len(p_len), dtype=bool)
    g_hit = np.zeros(len(g_len), dtype=bool)
    p_hit[p_id[ok]] = True
    g_hit[g_id[ok]] = True
    p_hit, p_row, g_hit, g_row = p_hit[1:], p_row[1:], g_hit[1:], g_row[1:]
    tp = np.bincount(p_row[p_hit], minlength=n_rows)
    fp = np.bincount(p_row[~p_hit], minlength=n_rows)
    fn = np.bincount(g_row[~g_hit], minlength=n_rows)
    return tp.reshape(shape), fp.reshape(shape), fn.reshape(shape)


def f1_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """2TP / (2TP + FP + FN) elementwise; NaN where nothing is true or predicted (skipped)."""
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)


def video_scores(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """Per-video score (N,) from (N, C) counts: mean F1 over scored classes, 1.0 if none is scored."""
    f1 = f1_scores(tp, fp, fn)
    scored = ~np.isnan(f1)
    n = scored.sum(-1)
    total = np.where(scored, f1, 0.0).sum(-1)
    return np.where(n > 0, total / np.maximum(n, 1), 1.0)


def _stream_counts(count, pa, pv, ga, gv) -> dict[str, tuple[np.ndarray, ...]]:
    counts = {"audio": count(pa, ga), "visual": count(pv, gv), "av": count(pa & pv, ga & gv)}
    counts["event"] = tuple(a + v for a, v in zip(counts["audio"], counts["visual"]))
    return counts


def score_binary(pred_audio: np.ndarray, pred_visual: np.ndarray, gt_audio: np.ndarray,
                 gt_visual: np.ndarray, video_ids: Sequence[str] | None = None,
                 classes: Sequence[str] | None = None) -> Result:
    """Score binary (N, C, T) predictions against (N, C, T) truth (steps 2-4 above)."""
    arrays = {"pred_audio": pred_audio, "pred_visual": pred_visual,
              "gt_audio": gt_audio, "gt_visual": gt_visual}
    shape = np.shape(gt_audio)
    for name, arr in arrays.items():
        if np.ndim(arr) != 3 or np.shape(arr) != shape:
            raise ValueError(f"{name} has shape {np.shape(arr)}, expected {shape} (N, C, T) like gt_audio")
    pa, pv, ga, gv = (np.asarray(a).astype(bool) for a in arrays.values())
    n, c, t = shape
    video_ids = [str(i) for i in range(n)] if video_ids is None else [str(v) for v in video_ids]
    classes = [f"class_{i}" for i in range(c)] if classes is None else [str(k) for k in classes]
    if len(video_ids) != n or len(classes) != c:
        raise ValueError(f"{len(video_ids)} video ids and {len(classes)} classes for arrays of shape {shape}")

    per_video = {"video_id": video_ids}
    class_rows = []
    for level, count in (("segment", segment_counts), ("event", event_counts)):
        counts = _stream_counts(count, pa, pv, ga, gv)
        for stream, (tp, fp, fn) in counts.items():
            per_video[f"{level}_{stream}"] = video_scores(tp, fp, fn)
            class_rows.append(_class_table(level, stream, classes, tp, fp, fn))
        per_video[f"{level}_type"] = (per_video[f"{level}_audio"] + per_video[f"{level}_visual"]
                                      + per_video[f"{level}_av"]) / 3
    frame = pd.DataFrame({k: per_video[k] for k in ("video_id", *METRICS)})
    overall = {m: float(frame[m].mean()) if n else float("nan") for m in METRICS}
    meta = {"n_videos": n, "n_segments": t}
    return Result(overall, pd.concat(class_rows, ignore_index=True), frame, meta)


def _class_table(level: str, stream: str, classes: list[str], tp, fp, fn) -> pd.DataFrame:
    f1 = f1_scores(tp, fp, fn)
    scored = ~np.isnan(f1)
    n_scored = scored.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        video_mean = np.where(n_scored > 0, np.where(scored, f1, 0.0).sum(0) / np.maximum(n_scored, 1), np.nan)
    sums = [a.sum(0) for a in (tp, fp, fn)]
    return pd.DataFrame({
        "level": level, "stream": stream, "class": classes,
        "tp": sums[0], "fp": sums[1], "fn": sums[2],
        "f1_pooled": f1_scores(*sums), "f1_video_mean": video_mean, "n_videos": n_scored,
    })


def evaluate_arrays(global_prob, a_prob, v_prob, frame_prob, gt_audio, gt_visual, gate: str = "han",
                    threshold: float = 0.5, *, video_ids: Sequence[str] | None = None,
                    classes: Sequence[str] | None = None, lengths: Sequence[int] | None = None) -> Result:
    """The LLP protocol on arrays: binarize (step 1 above), then score (steps 2-4).

    Args:
        global_prob, a_prob, v_prob: video-level probabilities (N, C).
        frame_prob: segment probabilities (N, T, 2, C); axis 2: 0 = audio, 1 = visual.
        gt_audio, gt_visual: dense truth (N, C, T), e.g. ``Annotations.dense``; the audio-visual
            truth is their AND.
        gate: "han" (global video probability) or "ma" (each modality's own probability).
        threshold: decision threshold (0.5 in the protocol).
        video_ids, classes: names for the per-video and per-class tables (default: positions).
        lengths: optional (N,) number of real segments per video; predictions past it are zeroed
            (padding of shorter videos in a batch of T segments).

    Returns:
        The :class:`Result`; ``meta`` records the gate and threshold.
    """
    pred = {"global_prob": global_prob, "a_prob": a_prob, "v_prob": v_prob, "frame_prob": frame_prob}
    n, c, t = np.shape(gt_audio)
    for name in ("global_prob", "a_prob", "v_prob"):
        if np.shape(pred[name]) != (n, c):
            raise ValueError(f"{name} has shape {np.shape(pred[name])}, expected ({n}, {c})")
    if np.shape(frame_prob) != (n, t, 2, c):
        raise ValueError(f"frame_prob has shape {np.shape(frame_prob)}, "
                         f"expected ({n}, {t}, 2, {c})")
    pa, pv = binarize(pred, gate, threshold)
    if lengths is not None:
        inside = np.arange(t)[None, :] < np.asarray(lengths)[:, None]  # (N, T)
        pa &= inside[:, None, :]
        pv &= inside[:, None, :]
    result = score_binary(pa, pv, gt_audio, gt_visual, video_ids, classes)
    result.meta.update(gate=gate, threshold=float(threshold))
    return result


def segment_type_at_av(result: Result) -> float:
    """Segment-level Type@AV as a fraction: the number HAN's model selection maximises."""
    return result.overall["segment_type"]
