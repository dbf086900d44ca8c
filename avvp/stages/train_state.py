"""A training run's resume state: what identifies a run, and the checks before resuming one.

After every epoch :mod:`avvp.stages.train` writes the whole state (model, optimizer, scheduler, random
generators, history, best-so-far) to ``checkpoints/last.pt`` beside the model file, with the run's
identity (:func:`run_identity`). A later run resumes from it only when the identity matches
(:func:`not_resumable`); otherwise the file is set aside (:func:`set_aside`), never deleted.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from avvp import settings
from avvp.infra import provenance
from avvp.core.checkpoint import load_torch
from avvp.core.data import SplitData, Targets
from avvp.infra.errors import InputError

#: The resume state, beside the model file.
CHECKPOINT = "checkpoints/last.pt"
STATE_FORMAT = "avvp-train-state"
#: Settings added with VALOR: left out of a run's fingerprint while they hold these values (their
#: defaults), so runs begun before they existed still resume.
NEUTRAL = {"model": {k: settings.default(f"model.{k}") for k in ("arch", "num_layers", "audio_role", "frame_role")},
           "train": {k: settings.default(f"train.{k}") for k in ("loss", "optimizer", "betas", "eps",
                                                                "weight_decay", "schedule", "warmup_epochs",
                                                                "lr_min", "clip_grad_norm", "select_ties")}}


def run_identity(settings: Mapping, seed: int, train: SplitData, targets: Targets,
              val: SplitData | None, extra: bytes = b"") -> dict:
    """Identity of a run, compared before resuming: the code (avvp version, git commit, source
    fingerprint), the settings (minus the device), the seed, and the data (videos, targets,
    feature stores and sums)."""
    s = copy.deepcopy(dict(settings))
    s["train"].pop("device", None)
    s["train"].pop("seeds", None)
    for section, keys in NEUTRAL.items():
        for key, value in keys.items():
            if s[section].get(key) == value:
                s[section].pop(key, None)
    h = hashlib.sha256()
    h.update("\n".join(train.features.video_ids).encode())
    h.update(json.dumps(train.features.dims(), sort_keys=True).encode())
    h.update(json.dumps(train.features.attrs, sort_keys=True, default=str).encode())
    f = train.features
    h.update(repr([checksum(x) for x in (f.audio, f.frame, f.clip)]).encode())
    for t in (targets.weak, targets.global_, targets.audio, targets.visual, targets.seg_audio,
              targets.seg_visual):
        if t is not None:
            h.update(t.numpy().tobytes())
    if val is not None:
        h.update("\n".join(val.features.video_ids).encode())
    h.update(extra)
    settings_sha = hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()
    return {**provenance.code_identity(), "settings": "sha256:" + settings_sha, "seed": int(seed),
            "data": "sha256:" + h.hexdigest()}


def checksum(x: torch.Tensor, rows: int = 32) -> float:
    """The float64 sum of ``x``, over ``rows`` videos at a time: ``torch.sum(x, dtype=float64)``
    would hold a float64 copy of all of ``x`` (1.6 GB for the LLP training set)."""
    return float(sum(torch.sum(x[i:i + rows], dtype=torch.float64) for i in range(0, len(x), rows)))


def not_resumable(state: Any, identity: Mapping) -> list[str]:
    """Why a resume state must not be resumed by this run (empty: it may)."""
    if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
        return ["it is not an avvp training state"]
    stored = state.get("identity")
    if not isinstance(stored, Mapping):
        return ["it was written by an older avvp that did not record the code that made it"]
    return provenance.differences(stored, identity)


def set_aside(path: Path) -> Path:
    """Rename a resume file that must not be resumed to ``<folder>/set-aside/<k>.pt`` (the first
    free k), so nothing is deleted; returns the new name."""
    folder = path.parent / "set-aside"
    folder.mkdir(parents=True, exist_ok=True)
    k = 1
    while (folder / f"{k}{path.suffix}").exists():
        k += 1
    target = folder / f"{k}{path.suffix}"
    os.replace(path, target)
    return target


def load_resume_state(path: Path) -> Any:
    """The resume state in ``path``; a damaged file stops with how to start afresh."""
    try:
        return load_torch(path)
    except InputError as exc:
        raise InputError(path, f"{exc.problem}. This is the resume state of an interrupted run; "
                               f"to start this run afresh, delete the file (rm {path}) or run "
                               f"`avvp train` with --restart") from None
