"""The demo's stand-in teachers: audio-only and visual-only segment classifiers trained on a
disjoint synthetic pool.

VALOR's teachers (CLIP, CLAP) are large models pretrained on other data; they score each one-second
segment of one modality for each class, and the pseudo labels are those scores above per-class
thresholds, kept only for the video's weak labels. The demo has no such weights, and teachers with
random weights would be meaningless. The stand-in keeps the mechanism:

* **other data**: a pool of synthetic videos planned with another seed and ids of another letter
  (``P0000000042``), rendered and embedded with the demo's own extractors, that never enters the
  demo's train, val or test split;
* **one modality each**: the audio teacher sees only a segment's audio features, the visual teacher
  only its frame and clip features (one segment at a time, no temporal context, no other modality);
* **segment-level supervision**: each is a small MLP trained with the pool's *true* per-segment,
  per-modality labels (which the demo's own training never sees);
* **thresholds from the pool**: for each class, the threshold on the teacher's logit that maximises
  the segment F1 on the pool's held-out videos (its val and test splits), counted, as in use, only
  in videos whose weak labels hold the class; candidates are the midpoints between sorted distinct
  scores, ties going to the larger threshold; a class without a held-out positive keeps 0 (p = 0.5).

The teacher's scores (logits, (N, T, C)) are written like a real teacher's: a store with a ``scores``
dataset, and its chosen thresholds as the store attribute ``thresholds``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from avvp.core.annotations import Annotations, dense_matrix, read_llp
from avvp.core import feature_roles
from avvp.infra.atomic import atomic_path
from avvp.infra.errors import InputError
from avvp.core.feature_store import read_store, store_writer
from avvp.core.pooled_store import frame_store, pool_segments
from avvp.settings import complete_section

#: Stores each modality's teacher reads (the visual one: pooled frames and clips side by side).
INPUT_ROLES = {"audio": ("audio",), "visual": ("frame", "clip")}


def settings(given: str | Mapping | None = None) -> dict[str, Any]:
    """The stand-in training settings (config ``pseudo.standin.teacher``) completed with the
    defaults of the settings definition (:mod:`avvp.settings`) and checked."""
    return complete_section("pseudo.standin.teacher", given)


def segment_features(features_dir: str | Path, modality: str, video_ids: Sequence[str]) -> np.ndarray:
    """(N, T, D) per-segment input of a modality's teacher from a folder of feature stores."""
    folder = Path(features_dir)
    parts = []
    for role in INPUT_ROLES[modality]:
        path = frame_store(folder) if role == "frame" else feature_roles.store_file(folder, role)
        parts.append(read_store(path, video_ids)[1])
    t = parts[0].shape[1] if modality == "audio" else parts[-1].shape[1]
    parts = [pool_segments(torch.from_numpy(p), t).numpy() if p.shape[1] != t else p for p in parts]
    return np.concatenate(parts, axis=2)


def truth(ann: Annotations, modality: str, video_ids: Sequence[str], n_segments: int) -> np.ndarray:
    """(N, T, C) true per-segment labels of one modality (training videos from the training truth)."""
    train = set(ann.split("train")["video_id"])
    table = ann.train_audio if modality == "audio" else ann.train_visual
    dense = np.zeros((len(video_ids), len(ann.classes), n_segments), np.uint8)
    is_train = np.array([v in train for v in video_ids], dtype=bool)
    if is_train.any():
        dense[is_train] = dense_matrix(table, [v for v in video_ids if v in train], ann.classes, n_segments)
    if (~is_train).any():
        dense[~is_train] = ann.dense(modality, [v for v in video_ids if v not in train], n_segments)
    return np.moveaxis(dense, 2, 1)


class SegmentTeacher(torch.nn.Module):
    """Standardise, then a one-hidden-layer MLP: one segment's features -> per-class logits."""

    def __init__(self, dim: int, n_classes: int, hidden: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.net = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(),
                                       torch.nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def train_teacher(x: np.ndarray, y: np.ndarray, s: Mapping[str, Any]) -> SegmentTeacher:
    """Fit a :class:`SegmentTeacher` to (N, T, D) features and (N, T, C) labels (full batch, Adam)."""
    torch.manual_seed(int(s["seed"]))
    flat_x = torch.from_numpy(x.reshape(-1, x.shape[-1]).astype(np.float32))
    flat_y = torch.from_numpy(y.reshape(-1, y.shape[-1]).astype(np.float32))
    model = SegmentTeacher(flat_x.shape[1], flat_y.shape[1], int(s["hidden"]))
    model.mean.copy_(flat_x.mean(0))
    model.std.copy_(flat_x.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(model.parameters(), lr=float(s["lr"]), weight_decay=float(s["weight_decay"]))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(int(s["epochs"])):
        opt.zero_grad()
        loss = loss_fn(model(flat_x), flat_y)
        loss.backward()
        opt.step()
    model.eval()
    return model


@torch.no_grad()
def teacher_scores(model: SegmentTeacher, x: np.ndarray) -> np.ndarray:
    """(N, T, C) logits of (N, T, D) features."""
    n, t, d = x.shape
    return model(torch.from_numpy(x.reshape(-1, d).astype(np.float32))).numpy().reshape(n, t, -1)


def choose_thresholds(scores: np.ndarray, labels: np.ndarray, weak: np.ndarray) -> list[float]:
    """Per class, the threshold (strict ``>``) with the best segment F1 inside the weakly labelled videos.

    Args:
        scores, labels: (N, T, C) held-out scores and true labels.
        weak: (N, C) weak labels of the held-out videos.
    """
    out = []
    for c in range(scores.shape[2]):
        inside = weak[:, c] > 0
        s, y = scores[inside, :, c].ravel(), labels[inside, :, c].ravel() > 0
        if not y.any():
            out.append(0.0)
            continue
        values = np.unique(s)
        candidates = np.concatenate([[values[0] - 1.0], (values[1:] + values[:-1]) / 2, [values[-1] + 1.0]])
        pred = s[None, :] > candidates[:, None]
        tp = (pred & y).sum(1)
        f1 = 2 * tp / (pred.sum(1) + y.sum())
        best = np.flatnonzero(f1 == f1.max())[-1]
        out.append(round(float(candidates[best]), 4))
    return out


def write_score_store(path: str | Path, video_ids: Sequence[str], scores: np.ndarray, attrs: Mapping) -> None:
    """A teacher store (atomically): ``video_ids``, ``features`` and ``scores`` = the (N, T, C) logits."""
    scores = np.asarray(scores, dtype=np.float32)
    n, t, c = scores.shape
    with store_writer(path, n, t, c, attrs, extras={"scores": (t, c)}) as writer:
        for i, video_id in enumerate(video_ids):
            writer.write(i, video_id, scores[i], {"scores": scores[i]})


def run_standin(modality: str, pool_dir: str | Path, features_dir: str | Path, video_ids: Sequence[str],
                classes: Sequence[str], model_path: str | Path, scores_path: str | Path, given: str | Mapping | None = None) -> dict:
    """Train one modality's stand-in teacher on the pool, then score the data set's videos.

    Args:
        pool_dir: the pool's results folder (``annotations/``, ``features/``).
        features_dir: the data set's feature stores.
        video_ids: the data set's videos to score (all splits).
        classes: the data set's classes (the pool's must be the same).
        model_path: writes the teacher (state dict, thresholds, settings).
        scores_path: writes the teacher store.

    Returns:
        A summary: pool sizes, thresholds, training loss.
    """
    s = settings(given)
    pool = read_llp(Path(pool_dir) / "annotations")
    if list(pool.classes) != list(classes):
        raise InputError(Path(pool_dir) / "annotations", f"the pool's classes {pool.classes} differ from the "
                                                         f"data set's {list(classes)}")
    pool_features = Path(pool_dir) / "features"
    fit = list(pool.split("train")["video_id"])
    held = list(pool.split("val")["video_id"]) + list(pool.split("test")["video_id"])
    if set(fit + held) & set(video_ids):
        raise InputError(pool_dir, "the pool shares videos with the data set; it must be disjoint")
    x_fit = segment_features(pool_features, modality, fit)
    t = x_fit.shape[1]
    model = train_teacher(x_fit, truth(pool, modality, fit, t), s)
    held_scores = teacher_scores(model, segment_features(pool_features, modality, held))
    thresholds = choose_thresholds(held_scores, truth(pool, modality, held, t), pool.weak(held))
    scores = teacher_scores(model, segment_features(features_dir, modality, video_ids))
    info = {"modality": modality, "pool": str(pool_dir), "pool_train": len(fit), "pool_held_out": len(held),
            "settings": s, "thresholds": thresholds, "classes": pool.classes}
    with atomic_path(model_path) as tmp:
        torch.save({"state_dict": model.state_dict(), **info}, tmp)
    write_score_store(scores_path, video_ids, scores,
                      {"role": f"standin_{modality}", "extractor": "avvp-standin-teacher",
                       "settings": json.dumps(s), "weights": str(model_path),
                       "thresholds": json.dumps(thresholds), "classes": json.dumps(pool.classes)})
    return info
