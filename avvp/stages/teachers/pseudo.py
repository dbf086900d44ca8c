"""Segment-level pseudo labels from a teacher's per-class scores.

A teacher store is an HDF5 feature store (``video_ids``, ``features``) that also holds a
``scores`` dataset (N, T, C) float32: the teacher's per-segment, per-class score (for CLIP
``100 * cos(image, text)``, for CLAP ``exp(logit_scale_a) * <audio, text>``, for the demo's stand-in
teachers a logit). A segment is a pseudo positive of class c when its score is *strictly* greater
than the class threshold and c is one of the video's weak labels::

    labels[n, t, c] = 1[scores[n, t, c] > thresholds[c]] * weak[n, c]

Thresholds: a list given by the user, else the store's own ``thresholds`` attribute (the stand-in
teachers record the ones they chose), else VALOR's official integers for a store of role
``clip_image`` (visual) or ``clap_audio`` (audio).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from avvp.core import feature_roles
from avvp.core.classes import LLP_CLASSES
from avvp.infra.errors import ConfigError, InputError
from avvp.core.feature_store import read_attrs, read_extra, read_ids
from avvp.core.pseudo_labels import PseudoLabels

#: The teacher role whose official thresholds apply to each modality.
OFFICIAL_ROLES = feature_roles.TEACHER_OF


def threshold_scores(scores: np.ndarray, thresholds: Sequence[float], weak: np.ndarray) -> np.ndarray:
    """Pseudo labels (N, T, C) uint8: ``scores > thresholds`` (strict), kept only for weak labels.

    Args:
        scores: (N, T, C) per-segment class scores.
        thresholds: (C,) one threshold per class, on the scores' scale.
        weak: (N, C) the videos' weak labels (multi-hot).
    """
    scores = np.asarray(scores)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    weak = np.asarray(weak)
    if scores.ndim != 3 or thresholds.shape != scores.shape[2:] or weak.shape != (scores.shape[0], scores.shape[2]):
        raise ValueError(f"scores {scores.shape}, thresholds {thresholds.shape} and weak labels {weak.shape} "
                         "do not fit (N, T, C), (C,) and (N, C)")
    return ((scores > thresholds[None, None, :]) & (weak[:, None, :] > 0)).astype(np.uint8)


def read_scores(path: str | Path, video_ids: Sequence[str] | None = None
                ) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """The ``scores`` of a teacher store: (ids, (N, T, C) float32, attributes).

    With ``video_ids`` the rows of those videos, in that order.

    Raises:
        InputError: the file is missing, unreadable, has no ``scores``, holds non-finite scores, or
            lacks some of ``video_ids`` (named).
    """
    ids, attrs = read_ids(path), read_attrs(path)
    if video_ids is not None:
        present = set(ids)
        missing = [v for v in video_ids if v not in present]
        if missing:
            raise InputError(path, f"{len(missing)} of {len(video_ids)} videos have no teacher scores, "
                                   f"e.g. {', '.join(missing[:3])}")
        ids = list(video_ids)
    scores = read_extra(path, "scores", video_ids)
    if scores.ndim != 3 or len(scores) != len(ids):
        raise InputError(path, f"scores of shape {scores.shape} for {len(ids)} videos, expected (N, T, C)")
    if not np.isfinite(scores).all():
        raise InputError(path, "scores hold NaN or infinite values")
    return ids, scores, attrs


def official_thresholds(modality: str) -> tuple[float, ...]:
    """VALOR's thresholds: CLIP's for ``visual``, CLAP's for ``audio`` (25 LLP classes)."""
    from avvp.stages.teachers.prompts import CLAP_THRESHOLDS, CLIP_THRESHOLDS

    return {"visual": CLIP_THRESHOLDS, "audio": CLAP_THRESHOLDS}[modality]


def resolve_thresholds(modality: str, classes: Sequence[str], attrs: dict[str, str],
                       given: Sequence[float] | None = None, source: str | Path | None = None) -> list[float]:
    """The per-class thresholds to apply (see the module docstring for the order of precedence).

    Raises:
        ConfigError: ``given`` has the wrong length or non-numbers.
        InputError: the store records no thresholds and is no official teacher, or its official
            thresholds do not fit the data set's classes.
    """
    if given is not None:
        values = list(given)
        if len(values) != len(classes) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in values):
            raise ConfigError(f"{modality} thresholds must be {len(classes)} numbers (one per class), "
                              f"got {values!r}")
        return [float(v) for v in values]
    if "thresholds" in attrs:
        values = json.loads(attrs["thresholds"])
        if len(values) != len(classes):
            raise InputError(source, f"records {len(values)} thresholds for {len(classes)} classes")
        return [float(v) for v in values]
    if attrs.get("role") == OFFICIAL_ROLES[modality]:
        if list(classes) != list(LLP_CLASSES):
            raise InputError(source, "VALOR's official thresholds are for the 25 LLP classes; this data set "
                                     "has other classes: give thresholds explicitly")
        return [float(v) for v in official_thresholds(modality)]
    raise InputError(source, f"no thresholds: the store records none and its role {attrs.get('role')!r} is "
                             f"not the official {modality} teacher {OFFICIAL_ROLES[modality]!r}; "
                             "give thresholds explicitly")


def teach(modality: str, scores_path: str | Path, video_ids: Sequence[str], classes: Sequence[str],
          weak: np.ndarray, thresholds: Sequence[float] | None = None) -> PseudoLabels:
    """The pseudo labels of ``video_ids`` from a teacher store and the videos' weak labels (N, C)."""
    ids, scores, attrs = read_scores(scores_path, video_ids)
    if scores.shape[2] != len(classes):
        raise InputError(scores_path, f"scores have {scores.shape[2]} classes, the data set {len(classes)}")
    chosen = resolve_thresholds(modality, classes, attrs, thresholds, scores_path)
    labels = threshold_scores(scores, chosen, weak)
    source = {"teacher": attrs.get("role", ""), "extractor": attrs.get("extractor", ""),
              "scores": str(scores_path), "thresholds": chosen, "rule": "score > threshold, weak labels only"}
    return PseudoLabels(modality, ids, list(classes), labels, source)
