"""VALOR's training pieces: the pseudo-label loss, the warm-up + cosine schedule, the targets.

Loss of one batch (all terms weight 1, each a mean):
``BCE(clamp(p, 1e-7, 1 - 1e-7), y) + BCEL(Z_audio, Y_a) + BCEL(Z_visual, Y_v)``, where ``p`` is
the video-level probability, ``Z`` the segment logits (B, T, 2, C) and ``Y_a``/``Y_v`` the
segment-level pseudo labels (B, T, C); each segment term averages over all B x T x C entries,
negatives included. There are no modality-level terms and no smoothing.

Learning rate of epoch e = 1..E (set before the epoch, constant within it; W warm-up epochs):
``e / W * lr_max`` for e < W, else ``lr_min + (lr_max - lr_min) * (1 + cos(pi (e - W) / (E - W))) / 2``,
computed in the official operation order (``main_avvp.py:38-45``) and written as it is into every
parameter group, so each epoch's rate is the official float, bit for bit.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from dataclasses import replace
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from avvp.core.data import SplitData, Targets
from avvp.infra.errors import InputError
from avvp.core.losses import LossTerms, clamped_bce

log = logging.getLogger(__name__)


def valor_loss(out, y: torch.Tensor, seg_audio: torch.Tensor, seg_visual: torch.Tensor) -> LossTerms:
    """The loss of one batch (see the module docstring).

    Args:
        out: a model output with ``global_prob`` (B, C) and ``frame_logits`` (B, T, 2, C).
        y: the video-level target (B, C).
        seg_audio, seg_visual: segment-level pseudo labels (B, T, C), 0/1.

    Returns:
        :class:`avvp.core.losses.LossTerms` (``global_``: the video term; ``audio``/``visual``: the
        segment terms).
    """
    logits = getattr(out, "frame_logits", None)
    if logits is None:
        raise ValueError("the VALOR loss needs the segment logits: train a model with model.arch: valor")
    video = clamped_bce(out.global_prob, y)
    audio = F.binary_cross_entropy_with_logits(logits[:, :, 0], seg_audio)
    visual = F.binary_cross_entropy_with_logits(logits[:, :, 1], seg_visual)
    return LossTerms(video + audio + visual, video, audio, visual)


def warmup_cosine_lr(epoch: int, lr_max: float, lr_min: float, warmup: int, epochs: int) -> float:
    """The learning rate of 1-based ``epoch`` (see the module docstring), with the official order
    of operations: ``(e - W) / (E - W) * pi`` inside the cosine."""
    if epoch < warmup:
        return epoch / warmup * lr_max
    span = max(epochs - warmup, 1)
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos((epoch - warmup) / span * math.pi))


class WarmupCosineLR(torch.optim.lr_scheduler.LRScheduler):
    """Stepped once per epoch; sets :func:`warmup_cosine_lr` of the coming epoch on every
    parameter group, as a value (not a factor times the initial rate, whose product can be one
    ulp off the official rate)."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr_max: float, lr_min: float, warmup: int,
                 epochs: int):
        self.lr_max, self.lr_min, self.warmup, self.epochs = float(lr_max), float(lr_min), int(warmup), int(epochs)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        lr = warmup_cosine_lr(self.last_epoch + 1, self.lr_max, self.lr_min, self.warmup, self.epochs)
        return [lr for _ in self.optimizer.param_groups]


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, lr_max: float, lr_min: float, warmup: int,
                            epochs: int) -> WarmupCosineLR:
    """A scheduler stepped once per epoch that sets :func:`warmup_cosine_lr` of the coming epoch
    (epoch 1's rate as soon as it is made)."""
    return WarmupCosineLR(optimizer, lr_max, lr_min, warmup, epochs)


def pseudo_targets(audio_path: str | Path, visual_path: str | Path, video_ids: Sequence[str],
                   classes: Sequence[str], weak: np.ndarray, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """The segment-level pseudo labels (N, T, C) float32 of ``video_ids`` from the two
    pseudo-label files (:mod:`avvp.core.pseudo_labels`).

    Raises:
        InputError: a file is missing, holds the wrong modality or classes, lacks some of the
            videos, or has another number of segments than the features, naming the file.
    """
    from avvp.core.pseudo_labels import read_pseudo_labels

    out = []
    for modality, path in (("audio", audio_path), ("visual", visual_path)):
        labels = read_pseudo_labels(path, modality, classes)
        array = labels.select(list(video_ids), path).astype(np.float32)
        if array.shape[1] != n_segments:
            raise InputError(path, f"{array.shape[1]} segments per video, the features have {n_segments}")
        outside = int(((array > 0) & (np.asarray(weak)[:, None, :] <= 0)).sum())
        if outside:
            log.warning("%s: %d positive pseudo labels lie outside the weak labels (kept as given)",
                        path, outside)
        out.append(array)
    return out[0], out[1]


def restrict(seg, keep):
    """Pseudo labels ``seg`` (N, T, C; array or tensor) with the classes a video-level modality
    label ``keep`` (N, C; 0 or False = dropped) rules out set to 0 in every segment."""
    mask = (keep > 0)[:, None, :]
    return seg * (mask.to(seg.dtype) if isinstance(mask, torch.Tensor) else mask.astype(np.float32))


def valor_targets(targets: Targets, train: SplitData, classes: list[str], audio: str | Path,
                  visual: str | Path, restrict_to_refined: bool) -> Targets:
    """``targets`` with the segment-level pseudo labels of the training videos; with
    ``restrict_to_refined``, a class whose refined audio (visual) label is dropped loses its audio
    (visual) pseudo labels in every segment."""
    ids = train.features.video_ids
    seg_a, seg_v = pseudo_targets(audio, visual, ids, classes, train.weak, train.features.n_segments)
    if restrict_to_refined:
        seg_a = restrict(seg_a, targets.audio.numpy())
        seg_v = restrict(seg_v, targets.visual.numpy() > 0.5)  # smoothed 0.95 kept, hard 0 dropped
    return replace(targets, seg_audio=torch.from_numpy(seg_a), seg_visual=torch.from_numpy(seg_v))
