"""Turn binarised per-segment decisions and probabilities into events: maximal runs of positive
segments per class and modality."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

MODALITIES = ("audio", "visual", "audio-visual")
EVENT_COLUMNS = ["class", "modality", "onset", "offset", "confidence"]


def find_events(frame_prob: np.ndarray, audio_on: np.ndarray, visual_on: np.ndarray,
                classes: list[str], segment_s: float = 1.0) -> pd.DataFrame:
    """Events: maximal runs of positive segments per class and modality.

    Args:
        frame_prob: (T, 2, C) segment probabilities (axis 1: audio, visual).
        audio_on, visual_on: (C, T) binary segment decisions.
        classes: the C class names.
        segment_s: seconds per segment.

    Returns:
        A table with :data:`EVENT_COLUMNS`, sorted by onset, class and modality. Audio-visual
        runs are those of ``audio_on & visual_on`` with confidence = mean of min(P_a, P_v).
    """
    frame_prob = np.asarray(frame_prob, dtype=np.float64)
    on = {"audio": np.asarray(audio_on, bool), "visual": np.asarray(visual_on, bool)}
    on["audio-visual"] = on["audio"] & on["visual"]
    prob = {"audio": frame_prob[:, 0].T, "visual": frame_prob[:, 1].T,
            "audio-visual": np.minimum(frame_prob[:, 0], frame_prob[:, 1]).T}  # (C, T)
    records = []
    for modality in MODALITIES:
        for c, start, stop in _runs(on[modality]):
            records.append({"class": classes[c], "modality": modality, "onset": start * segment_s,
                            "offset": stop * segment_s,
                            "confidence": float(prob[modality][c, start:stop].mean())})
    order = {m: i for i, m in enumerate(MODALITIES)}
    index = {c: i for i, c in enumerate(classes)}
    records.sort(key=lambda r: (r["onset"], index[r["class"]], order[r["modality"]]))
    frame = pd.DataFrame.from_records(records, columns=EVENT_COLUMNS)
    return frame.astype({"class": "str", "modality": "str", "onset": "float64", "offset": "float64",
                         "confidence": "float64"})


def _runs(mask: np.ndarray) -> Iterable[tuple[int, int, int]]:
    """(row, start, stop) of every maximal run of True along the last axis of a (C, T) array."""
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    diff = np.diff(padded, axis=1)
    for c in range(mask.shape[0]):
        starts = np.nonzero(diff[c] == 1)[0]
        stops = np.nonzero(diff[c] == -1)[0]
        yield from ((c, int(a), int(b)) for a, b in zip(starts, stops))
