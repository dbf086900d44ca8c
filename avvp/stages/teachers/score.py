"""Score pseudo labels as a method of their own: the labels evaluated as predictions.

The audio and visual pseudo labels become a predictions file whose segment probabilities are the
labels themselves (0 or 1) and whose video-level probabilities are all 1: the labels are already
restricted to the weak labels, so no video-level gate is needed (UWAV, Table 3, scores VALOR's
labels this way). The LLP protocol of :mod:`avvp.core.metrics` then gives segment- and event-level F1
for audio, visual, audio-visual, Type@AV and Event@AV, written by :func:`avvp.stages.evaluate.write_outputs`.

Where the data set knows the true per-modality labels of its training videos (the demo), the
training split is scored the same way against that truth, and :func:`quality` gives the labels'
segment-level precision and recall per modality and class.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from avvp.core.annotations import Annotations
from avvp.infra.atomic import write_parquet, write_text
from avvp.infra.errors import InputError
from avvp.stages.evaluate import evaluate_predictions, write_outputs
from avvp.core.metrics import Result
from avvp.core.prediction_file import Predictions
from avvp.core.table_layout import to_markdown
from avvp.core.pseudo_labels import PseudoLabels

NAME = "pseudo labels"


def as_predictions(audio: PseudoLabels, visual: PseudoLabels, video_ids) -> Predictions:
    """The labels of ``video_ids`` as a predictions object (segment probabilities 0/1, gates 1)."""
    if list(audio.classes) != list(visual.classes):
        raise InputError(None, "audio and visual pseudo labels have different classes")
    a, v = audio.select(video_ids), visual.select(video_ids)
    if a.shape != v.shape:
        raise InputError(None, f"audio labels {a.shape} and visual labels {v.shape} differ in shape")
    ones = np.ones((len(video_ids), len(audio.classes)), np.float32)
    frame = np.stack([a, v], axis=2).astype(np.float32)  # (N, T, 2, C)
    return Predictions(list(video_ids), list(audio.classes), ones, ones.copy(), ones.copy(), frame)


def with_train_truth(ann: Annotations) -> Annotations:
    """The annotations with the training videos' true per-modality labels as the dense truth.

    Raises:
        InputError: the data set has no such truth (only the demo has it).
    """
    if ann.train_audio.empty and ann.train_visual.empty:
        raise InputError(ann.folder, "no true per-modality labels of the training videos "
                                     "(AVVP_train_audio.csv / AVVP_train_visual.csv; only the demo has them)")
    return dataclasses.replace(ann, audio=ann.train_audio, visual=ann.train_visual)


def score_split(audio: PseudoLabels, visual: PseudoLabels, ann: Annotations, split: str,
                out_dir: str | Path | None = None, source: str | Path | None = None) -> Result:
    """Score the labels of one split with the LLP protocol (``train``: against the training truth).

    With ``out_dir``, writes the evaluation outputs there (metrics.json, table.md, per_class.png,
    timeline.png, ...) and, for ``train``, the precision/recall report ``quality.parquet`` /
    ``quality.md``.
    """
    truth = with_train_truth(ann) if split == "train" else ann
    ids = list(truth.split(split)["video_id"])
    pred = as_predictions(audio, visual, ids)
    result = evaluate_predictions(pred, truth, split=split, gate="han", source=source)
    if out_dir is not None:
        meta = {"variant": NAME + (" against the true training labels" if split == "train" else ""),
                "teachers": {"audio": audio.source, "visual": visual.source}}
        write_outputs(result, out_dir, truth, pred, meta=meta)
        if split == "train":
            q = quality(result)
            write_parquet(Path(out_dir) / "quality.parquet", q)
            write_text(Path(out_dir) / "quality.md", quality_markdown(q))
    return result


def quality(result: Result) -> pd.DataFrame:
    """Segment-level precision, recall and F1 of the labels per modality and class (``all``: pooled)."""
    seg = result.per_class[(result.per_class["level"] == "segment")
                           & result.per_class["stream"].isin(["audio", "visual"])]
    rows = []
    for modality, part in seg.groupby("stream", sort=False):
        for name, tp, fp, fn in list(zip(part["class"], part["tp"], part["fp"], part["fn"])) + \
                [("all", part["tp"].sum(), part["fp"].sum(), part["fn"].sum())]:
            rows.append({"modality": modality, "class": name, "tp": int(tp), "fp": int(fp), "fn": int(fn),
                         "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
                         "f1": _ratio(2 * tp, 2 * tp + fp + fn)})
    return pd.DataFrame(rows)


def _ratio(num, den) -> float:
    return float(num) / float(den) if den else float("nan")


def quality_markdown(q: pd.DataFrame) -> str:
    """The pooled (``all``) and per-class precision/recall as Markdown (percent)."""
    frame = q.copy()
    for col in ("precision", "recall", "f1"):
        frame[col] = frame[col] * 100
    wide = frame.pivot(index="class", columns="modality", values=["precision", "recall", "f1"])
    wide.columns = [f"{m} {k}" for k, m in wide.columns]
    order = [c for c in dict.fromkeys(q["class"]) if c != "all"] + ["all"]
    wide = wide.reindex(order)[[f"{m} {k}" for m in ("audio", "visual") for k in ("precision", "recall", "f1")]]
    wide.index.name = "class"
    return to_markdown(wide, title="Pseudo labels against the true training labels (segment level, %)")
