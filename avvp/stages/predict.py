"""Run a trained (or official) HAN / VALOR over a split and write the predictions file (:mod:`avvp.core.prediction_file`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from avvp.core.architectures import input_roles
from avvp.core.checkpoint import load_model
from avvp.core.data import Features, check_dims, load_annotations, load_features, split_ids
from avvp.infra.device import resolve_device
from avvp.infra.errors import ConfigError, InputError
from avvp.core.model import HAN
from avvp.core.prediction_file import Predictions
from avvp.settings import default, merge_settings, require_range

log = logging.getLogger(__name__)

#: The ``avvp predict`` settings' defaults, those of the training settings they stand for (the
#: settings definition, :mod:`avvp.settings`); ``expect``: a VALOR variant the model file must be
#: (valor, valor_plus, valor_pp).
DEFAULTS: dict[str, Any] = {"device": default("train.device"), "batch_size": default("train.eval_batch_size"),
                            "nhead": default("model.nhead"), "expect": None}


def predict_settings(given: Mapping[str, Any] | None = None) -> dict:
    """``given`` merged over :data:`DEFAULTS` and checked."""
    s = merge_settings(DEFAULTS, given or {}, "predict")
    require_range("predict.batch_size", int(s["batch_size"]), 1)
    require_range("predict.nhead", int(s["nhead"]), 1)
    return s


def predict_arrays(model: HAN, features: Features, batch_size: int = 64,
                   device: torch.device | str = "cpu", progress: bool = False) -> dict[str, np.ndarray]:
    """Model outputs on every video of ``features`` (eval mode, no gradients).

    Returns:
        ``global_prob``, ``a_prob``, ``v_prob`` (N, C) and ``frame_prob`` (N, T, 2, C), float32.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("global_prob", "a_prob", "v_prob", "frame_prob")}
    n = len(features)
    with torch.inference_mode():
        for start in tqdm(range(0, n, batch_size), desc="predict", unit="batch", disable=not progress,
                          leave=False):
            sl = slice(start, start + batch_size)
            out = model(features.audio[sl].to(device), features.frame[sl].to(device),
                        features.clip[sl].to(device))
            for key in parts:
                parts[key].append(getattr(out, key).float().cpu().numpy())
    model.train(was_training)
    return {k: np.concatenate(v) for k, v in parts.items()}


def predict_split(model_path: str | Path, features_dir: str | Path, manifest: str | Path, split: str,
                  out: str | Path, settings: Mapping[str, Any] | None = None,
                  annotations: str | Path | None = None, progress: bool = True,
                  allow_missing: bool = False) -> Predictions:
    """Predict every video of ``split`` and write the predictions file.

    Args:
        model_path: an avvp ``model.pt``, an official HAN/MA state dict, an official JoMoLD
            checkpoint or a released VALOR ``checkpoint_best.pt`` (its input roles say which
            stores are read: ``clap_audio.h5`` and ``clip_image.h5`` for VALOR++).
        features_dir: folder with the merged stores ``audio.h5``, ``frame.h5``, ``clip.h5``.
        manifest: ``manifest.parquet``; gives the split's videos (and, for an official
            checkpoint, the class names via :func:`avvp.core.data.find_classes`).
        split: "train", "val" or "test".
        out: the ``.npz`` to write.
        settings: see :data:`DEFAULTS`.
        annotations: annotation folder for ``classes.txt`` (official checkpoints only).
        progress: show a progress bar.
        allow_missing: leave out videos without features (always for the train split) instead of
            stopping with an error that names them.
    """
    s = predict_settings(settings)
    model, info = load_model(model_path, nhead=int(s["nhead"]), expect=s["expect"])
    roles = input_roles(model)
    ann = load_annotations(manifest, annotations, dense=False)
    classes = info["classes"] or ann.classes
    if len(classes) != model.config.n_classes:
        raise InputError(model_path, f"the model predicts {model.config.n_classes} classes, "
                                     f"the annotations have {len(classes)}")
    if info["classes"] and list(info["classes"]) != list(ann.classes):
        log.warning("%s: the model's class list differs from the manifest's; using the model's", model_path)
    missing = "skip" if allow_missing or split == "train" else "error"
    features = load_features(features_dir, split_ids(ann, split, manifest), progress=progress,
                             missing=missing, what=f"{split} videos", roles=roles)
    ids = features.video_ids
    check_dims(features, model.config.to_dict(), features_dir, roles)
    device = resolve_device(s["device"])
    model.to(device)
    arrays = predict_arrays(model, features, int(s["batch_size"]), device, progress)
    pred = Predictions(ids, list(classes), **arrays)
    pred.save(out)
    log.info("%d %s videos -> %s", len(ids), split, out)
    return pred


def check_split(split: str) -> str:
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split = {split!r} (known: train, val, test)")
    return split
