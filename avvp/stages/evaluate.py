"""Evaluate a predictions file against LLP-format annotations and write the results.

:func:`evaluate_predictions` checks that the predictions cover exactly the videos of a split, in
the annotations' class order and with the right number of segments, then runs the protocol of
:mod:`avvp.core.metrics`. :func:`write_outputs` writes, into one folder:

* ``metrics.json``: ``meta`` (split, gate, threshold, annotation version, ...), ``overall``
  (fractions, keys as :data:`avvp.core.metrics.METRICS`), ``per_class`` (records) and ``per_video``
  (columns);
* ``metrics.parquet`` (overall, one row per metric), ``per_class.parquet``, ``per_video.parquet``,
  each with the columns ``split``, ``gate`` and ``annotation_version``;
* ``table.md`` / ``table.csv``: the paper's Table-1 layout (×100);
* ``per_class.png``: per-class F1 bars; ``timeline.png``: truth against prediction for a few videos.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from avvp import __version__
from avvp.core.annotations import Annotations
from avvp.infra.atomic import write_csv, write_json, write_parquet, write_text
from avvp.infra.errors import InputError
from avvp.core.metrics import GATES, METRICS, Result, binarize, evaluate_arrays
from avvp.core.plots import plot_per_class, plot_timeline
from avvp.core.prediction_file import ARRAYS, Predictions
from avvp.core.table_layout import table1, to_markdown

log = logging.getLogger(__name__)

OUTPUT_FILES = {
    "metrics": "metrics.json", "metrics_parquet": "metrics.parquet",
    "per_class": "per_class.parquet", "per_video": "per_video.parquet",
    "table_md": "table.md", "table_csv": "table.csv",
    "per_class_png": "per_class.png", "timeline": "timeline.png",
}


def _few(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(items)[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def check_classes(pred_classes: Sequence[str], ann_classes: Sequence[str], source=None) -> None:
    """Refuse a class list that differs from the annotations' (other names or another order)."""
    pred_classes, ann_classes = list(pred_classes), list(ann_classes)
    if pred_classes == ann_classes:
        return
    extra = [c for c in pred_classes if c not in ann_classes]
    missing = [c for c in ann_classes if c not in pred_classes]
    if extra or missing or len(pred_classes) != len(ann_classes):
        parts = []
        if extra:
            parts.append(f"unknown class(es) {_few(extra)}")
        if missing:
            parts.append(f"missing class(es) {_few(missing)}")
        if not parts:
            parts.append(f"{len(pred_classes)} classes listed, the annotations have {len(ann_classes)}")
        raise InputError(source, "class list differs from the annotations: " + "; ".join(parts))
    i = next(k for k, (a, b) in enumerate(zip(pred_classes, ann_classes)) if a != b)
    raise InputError(source, f"class list is in another order than the annotations: position {i} is "
                             f"{pred_classes[i]!r}, the annotations have {ann_classes[i]!r}")


def check_videos(pred_ids: Sequence[str], ann: Annotations, split: str, source=None,
                 allow_missing: bool = False) -> list[str]:
    """Refuse duplicated, unknown or (unless ``allow_missing``) missing video ids; return the
    split's ids that have a prediction, in file order."""
    videos = ann.split(split)
    if videos.empty:
        raise InputError(ann.folder, f"split {split!r} has no videos")
    wanted = list(videos["video_id"])
    ids = pd.Series(list(pred_ids), dtype=object)
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        raise InputError(source, f"{len(dup)} video id(s) listed twice: {_few(dup)}")
    wanted_set = set(wanted)
    unknown = [v for v in ids if v not in wanted_set]
    if unknown:
        where = ann.videos.set_index("video_id")["split"]
        other = [v for v in unknown if v in where.index]
        detail = ""
        if other:
            detail = f"; {len(other)} of them belong to another split (e.g. {other[0]!r} is {where[other[0]]})"
        raise InputError(source, f"{len(unknown)} video id(s) not in the {split} split of {ann.folder}: "
                                 f"{_few(unknown)}{detail}")
    have = set(ids)
    missing = [v for v in wanted if v not in have]
    if missing and not allow_missing:
        raise InputError(source, f"{len(missing)} of the {len(wanted)} {split} videos have no prediction: "
                                 f"{_few(missing)} (evaluate.allow_missing / --allow-missing scores the "
                                 "others; that is not the benchmark)")
    if missing:
        log.warning("%d of the %d %s videos have no prediction and are not scored", len(missing),
                    len(wanted), split)
    return [v for v in wanted if v in have]


def segments_per_video(ann: Annotations, video_ids: Sequence[str]) -> np.ndarray:
    """Whole segments (seconds) of each video, from its window end − start (10 for LLP)."""
    win = ann.videos.set_index("video_id").loc[list(video_ids)]
    return np.ceil((win["end"] - win["start"]).to_numpy(dtype=float) - 1e-6).astype(int)


def check_arrays(pred: Predictions, n_segments: int, source=None) -> None:
    """Refuse arrays of the wrong shape or with non-finite values."""
    n, c = len(pred.video_ids), len(pred.classes)
    expected = {"global_prob": (n, c), "a_prob": (n, c), "v_prob": (n, c),
                "frame_prob": (n, n_segments, 2, c)}
    for name in ARRAYS:
        arr = np.asarray(getattr(pred, name))
        if arr.shape != expected[name]:
            hint = f" ({n_segments} segments per video)" if name == "frame_prob" else ""
            raise InputError(source, f"{name} has shape {arr.shape}, expected {expected[name]}{hint}")
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise InputError(source, f"{name} holds {bad} non-finite value(s) (NaN or inf)")


def evaluate_predictions(pred: Predictions, ann: Annotations, split: str = "test", gate: str = "han",
                         threshold: float = 0.5, source: str | Path | None = None,
                         allow_missing: bool = False) -> Result:
    """Evaluate ``pred`` on one split of ``ann`` with the LLP protocol.

    Args:
        pred: the model outputs; any video order.
        ann: the annotations (their ``version`` is recorded in the result).
        split: the split to score ("val" or "test"); the predictions must cover exactly its videos.
        gate: "han" or "ma" (see :func:`avvp.core.metrics.gate_masks`).
        threshold: decision threshold (0.5 in the protocol).
        source: the predictions file, named in errors.
        allow_missing: score the split's videos that have a prediction instead of refusing
            predictions that lack some (``meta`` then counts the others as ``n_missing``).

    Returns:
        The :class:`avvp.core.metrics.Result`, videos in the split's file order; ``meta`` holds split,
        gate, threshold, annotation version and folder, ``n_videos`` (scored) and ``n_missing``.

    Raises:
        InputError: unknown, missing or duplicated video ids, another class list or order, arrays
            of the wrong shape or with NaN, or a split without dense truth.
    """
    if gate not in GATES:
        raise InputError(source, f"unknown gate {gate!r} (known: {', '.join(GATES)})")
    check_classes(pred.classes, ann.classes, source)
    ids = check_videos(pred.video_ids, ann, split, source, allow_missing)
    lengths = segments_per_video(ann, ids)
    n_segments = int(lengths.max())
    check_arrays(pred, n_segments, source)
    row = {v: i for i, v in enumerate(pred.video_ids)}
    order = np.array([row[v] for v in ids], dtype=np.int64)
    gt_audio = ann.dense("audio", ids, n_segments)
    gt_visual = ann.dense("visual", ids, n_segments)
    if not (gt_audio.any() or gt_visual.any()):
        log.warning("%s: the %s split has no dense truth; every score reflects predictions only",
                    ann.folder, split)
    result = evaluate_arrays(
        pred.global_prob[order], pred.a_prob[order], pred.v_prob[order], pred.frame_prob[order],
        gt_audio, gt_visual, gate=gate, threshold=threshold, video_ids=ids, classes=ann.classes,
        lengths=lengths if (lengths < n_segments).any() else None)
    result.meta.update(split=split, annotation_version=ann.version, annotations=str(ann.folder),
                       n_missing=len(ann.split(split)) - len(ids))
    if source is not None:
        result.meta["predictions"] = str(source)
    return result


def choose_timeline_videos(result: Result, ann: Annotations, k: int) -> list[str]:
    """``k`` videos spread from the worst to the best segment-level Type@AV (ties by id).

    Videos whose truth is empty in both modalities are left out while enough others remain.
    """
    if k <= 0:
        return []
    pv = result.per_video
    ids = list(pv["video_id"])
    n_seg = result.meta.get("n_segments", 10)
    has_truth = (ann.dense("audio", ids, n_seg) | ann.dense("visual", ids, n_seg)).any(axis=(1, 2))
    pool = pv[has_truth] if has_truth.sum() >= k else pv
    ranked = pool.sort_values(["segment_type", "video_id"], kind="stable")["video_id"].tolist()
    picks = np.unique(np.linspace(0, len(ranked) - 1, min(k, len(ranked))).round().astype(int))
    return [ranked[i] for i in picks]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _tag(frame: pd.DataFrame, meta: dict) -> pd.DataFrame:
    out = frame.copy()
    for key in ("split", "gate", "annotation_version"):
        out[key] = str(meta.get(key, ""))
    return out


def write_outputs(result: Result, out_dir: str | Path, ann: Annotations, pred: Predictions,
                  timeline_videos: int = 4, meta: dict | None = None,
                  timeline_ids: Sequence[str] | None = None) -> dict[str, Path]:
    """Write metrics, tables and pictures of one evaluation into ``out_dir`` (atomically).

    Args:
        result: from :func:`evaluate_predictions`.
        out_dir: the output folder (created).
        ann: the annotations the result was computed on (truth for the timeline).
        pred: the predictions the result was computed on (binarized again for the timeline).
        timeline_videos: how many videos the timeline shows (chosen by
            :func:`choose_timeline_videos`) when ``timeline_ids`` is not given.
        meta: extra fields recorded in ``metrics.json`` (e.g. variant, seed).
        timeline_ids: the videos to show, overriding ``timeline_videos``.

    Returns:
        The written paths, keyed as :data:`OUTPUT_FILES`.
    """
    if timeline_ids is None:
        chosen = choose_timeline_videos(result, ann, timeline_videos)
    else:
        chosen = list(timeline_ids)
    unknown = sorted(set(chosen) - set(result.per_video["video_id"]))
    if unknown:
        raise InputError(None, f"timeline video(s) not among the evaluated videos: {_few(unknown)}")
    out_dir = Path(out_dir)
    paths = {key: out_dir / name for key, name in OUTPUT_FILES.items()}
    info = {**result.meta, **(meta or {}), "avvp_version": __version__}
    overall = {k: result.overall[k] for k in METRICS}
    per_class = result.per_class
    write_json(paths["metrics"], {
        "meta": info,
        "overall": {k: _clean(v) for k, v in overall.items()},
        "per_class": [{k: _clean(v) for k, v in rec.items()} for rec in per_class.to_dict("records")],
        "per_video": {col: [_clean(v) for v in values]
                      for col, values in result.per_video.to_dict("list").items()},
    })
    long = pd.DataFrame({"metric": list(overall), "value": list(overall.values())})
    long.insert(0, "level", long["metric"].str.split("_").str[0])
    long.insert(1, "stream", long["metric"].str.split("_").str[1])
    write_parquet(paths["metrics_parquet"], _tag(long, info))
    write_parquet(paths["per_class"], _tag(per_class, info))
    write_parquet(paths["per_video"], _tag(result.per_video, info))

    table = table1(overall)
    caption = describe(info)
    write_text(paths["table_md"], to_markdown(table, title=caption))
    write_csv(paths["table_csv"], table.round(2).reset_index())
    plot_per_class(per_class, paths["per_class_png"], overall, title=caption)
    _write_timeline(paths["timeline"], result, ann, pred, chosen, caption)
    return paths


def describe(meta: dict) -> str:
    """A one-line caption of an evaluation: what was scored, on which split and annotations."""
    parts = [str(meta["variant"])] if meta.get("variant") else []
    if meta.get("seed") not in (None, ""):
        parts.append(f"seed {meta['seed']}")
    missing = int(meta.get("n_missing") or 0)
    if missing:
        total = int(meta.get("n_videos", 0)) + missing
        parts.append(f"{meta.get('split', '?')} split ({meta.get('n_videos', '?')} of {total} videos: "
                     f"{missing} without features are not scored)")
    else:
        parts.append(f"{meta.get('split', '?')} split ({meta.get('n_videos', '?')} videos)")
    parts.append(f"{meta.get('gate', '?')} gate")
    parts.append(f"{meta.get('annotation_version', '?')} annotations")
    return ", ".join(parts)


def _write_timeline(path: Path, result: Result, ann: Annotations, pred: Predictions,
                    chosen: Sequence[str], caption: str) -> None:
    n_seg = int(result.meta.get("n_segments", 10))
    row = {v: i for i, v in enumerate(pred.video_ids)}
    idx = np.array([row[v] for v in chosen], dtype=np.int64)
    sub = {name: np.asarray(getattr(pred, name))[idx] for name in ARRAYS}
    # settings: a record's fallback (results written before the gate and threshold were recorded)
    pa, pv = binarize(sub, result.meta.get("gate", "han"), result.meta.get("threshold", 0.5))
    scores = result.per_video.set_index("video_id").loc[list(chosen)]
    subtitles = [f"segment F1 audio {r.segment_audio * 100:.1f}, visual {r.segment_visual * 100:.1f}, "
                 f"audio-visual {r.segment_av * 100:.1f}" for r in scores.itertuples()]
    plot_timeline(chosen, ann.classes, ann.dense("audio", chosen, n_seg), ann.dense("visual", chosen, n_seg),
                  pa, pv, path, subtitles=subtitles, title=caption)
