"""Training HAN / MA / JoMoLD: loop, validation, model selection, exact resume.

Recipe: Adam (lr 3e-4), StepLR(10, 0.1) stepped once per epoch, batch 16, the three BCE terms
(:mod:`avvp.core.losses`), optionally MA's contrastive loss. HAN: 40 epochs, keep the epoch with the best
validation segment-level Type@AV (ties go to the later epoch; ``select: best``). MA: 12 epochs,
keep the last (``select: last``). JoMoLD (the ``jomold*`` variants' recipe):
Adam 5e-4, StepLR(6, 0.25), batch 128, 25 epochs, the best validation *event-level audio* F1
(``select_metric: event_audio``), loss weights 2/1/1 (``loss_weights``) and dynamic label
denoising (``denoise``): a hook object (:mod:`avvp.stages.refine`, e.g.
:class:`avvp.stages.refine.jomold.JointModalDenoiser`) that :func:`run_epoch` asks for each batch's
audio and visual targets; its drops go to ``drops.parquet`` beside the model.

VALOR (``loss: valor``, ``model.arch: valor``; :mod:`avvp.core.valor`): the video-level BCE plus the
segment-level pseudo-label BCEs on the logits (``--pseudo-audio``/``--pseudo-visual``), AdamW
(``optimizer: adamw``, ``betas``, ``eps``, ``weight_decay``), a per-epoch warm-up then cosine decay
(``schedule: warmup_cosine``, ``warmup_epochs``, ``lr_min``), gradient clipping (``clip_grad_norm``)
and selection with a strict ``>`` starting from 0 (``select_ties: earlier``).

Reproducibility: Python, NumPy and torch are seeded and torch uses deterministic algorithms; the
data order of an epoch is a function of (seed, epoch) only. After every epoch the whole state
(model, optimizer, scheduler, random generators, history, best-so-far) goes atomically to
``checkpoints/last.pt`` beside the model file, so a killed run resumes where it stopped and ends
with the same weights as an uninterrupted one.

Outputs beside ``model.pt``: ``history.parquet`` (one row per epoch: losses, learning rate,
validation metrics), ``curve.png``, ``checkpoints/last.pt`` and, with dynamic label denoising,
``drops.parquet``. ``model.pt``, ``history.parquet``, ``curve.png`` and ``drops.parquet`` are
written only when the run ends (``model.pt`` last), so a killed run never
leaves a finished-looking output (Snakemake's incomplete-output check); while it runs,
``checkpoints/history.parquet`` shows the epochs done so far.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from avvp import __version__
from avvp import settings as settings_mod
from avvp.core.architectures import build_model as build_architecture
from avvp.core.architectures import model_config, model_roles
from avvp.infra.atomic import write_parquet
from avvp.core.checkpoint import save_model, save_torch
from avvp.core.data import SplitData, Targets, build_targets, load_annotations, load_split
from avvp.infra.device import resolve_device
from avvp.stages.train_epoch import run_epoch, validate
from avvp.infra.errors import ConfigError
from avvp.core.model import HAN
from avvp.stages.refine.ratios import NoiseRatios, read_ratios
from avvp.infra.seeding import deterministic_algorithms, epoch_order, rng_state, seed_everything, set_rng_state
from avvp.stages.train_state import (CHECKPOINT, STATE_FORMAT, load_resume_state, not_resumable, run_identity,
                          set_aside)

log = logging.getLogger(__name__)

#: The history so far, rewritten every epoch (the final history.parquet is written at the end).
PROGRESS = "checkpoints/history.parquet"
#: The drop record of dynamic label denoising, beside the model file (written at the end).
DROPS = "drops.parquet"
#: Columns of history.parquet drawn in curve.png (besides the losses).
CURVE_METRICS = ("val_segment_audio", "val_segment_visual", "val_segment_av", "val_segment_type",
                 "val_event_type")

Hook = Callable[[str, int, int], None]


# ------------------------------------------------------------------------------- settings

def train_settings(given: Mapping[str, Any] | str | None = None) -> settings_mod.Completed:
    """``{"model": ..., "train": ...}`` completed with the defaults of the settings definition
    (:mod:`avvp.settings`) and checked, once: completed settings come back as they are.

    Raises:
        ConfigError: an unknown key or a bad value, named; or settings that do not go together.
    """
    if isinstance(given, settings_mod.Completed):
        return given
    s = settings_mod.complete_sections(given, ("model", "train"))
    t = s["train"]
    model_config(s["model"])
    if t["loss"] == "valor" and s["model"]["arch"] != "valor":
        raise ConfigError("train.loss = 'valor' needs the segment logits of model.arch: valor")
    if t["loss"] == "valor" and t["contrastive"]["enabled"]:
        raise ConfigError("train.loss = 'valor' takes no contrastive term")
    return s


# ---------------------------------------------------------------------------------- loop

@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes:
        model: the selected model (CPU, eval mode).
        history: one row per epoch.
        epoch: the selected epoch (1-based).
        score: its validation score: ``train.select_metric`` (segment-level Type@AV by default;
            NaN without validation).
    """

    model: HAN
    history: pd.DataFrame
    epoch: int
    score: float


def _device_features(data: SplitData, device: torch.device) -> tuple[torch.Tensor, ...]:
    f = data.features
    return tuple(x.to(device) for x in (f.audio, f.frame, f.clip))


def build_model(settings: Mapping, dims: Mapping[str, int], n_classes: int) -> HAN:
    """A freshly initialised model (``model.arch``) for the given settings, feature sizes and classes."""
    return build_architecture(settings["model"], dims, n_classes)


def make_optimizer(model: HAN, lr: float, train: Mapping[str, Any] | None = None) -> torch.optim.Optimizer:
    """Adam (default betas, eps, no weight decay) or, with ``train.optimizer: adamw``, AdamW with
    ``train``'s betas, eps and weight decay (one parameter group); the fused kernel where torch
    has one."""
    if train is not None and train["optimizer"] == "adamw":
        kind, kw = torch.optim.AdamW, {"betas": tuple(float(b) for b in train["betas"]),
                                       "eps": float(train["eps"]), "weight_decay": float(train["weight_decay"])}
    else:
        kind, kw = torch.optim.Adam, {}
    try:
        return kind(model.parameters(), lr=lr, fused=True, **kw)
    except (RuntimeError, ValueError):
        return kind(model.parameters(), lr=lr, **kw)


def make_scheduler(optimizer: torch.optim.Optimizer, train: Mapping[str, Any]) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule of ``train.schedule``."""
    if train["schedule"] == "warmup_cosine":
        from avvp.core.valor.training import warmup_cosine_scheduler

        return warmup_cosine_scheduler(optimizer, float(train["lr"]), float(train["lr_min"]),
                                       int(train["warmup_epochs"]), int(train["epochs"]))
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=train["step_size"], gamma=train["gamma"])


def train_model(train: SplitData, targets: Targets, val: SplitData | None, classes: list[str],
                settings: Mapping[str, Any], out: str | Path, seed: int = 1, resume: bool = True,
                progress: bool = True, hook: Hook | None = None, meta: Mapping[str, Any] | None = None,
                ratios: NoiseRatios | None = None) -> TrainResult:
    """Train a HAN and write ``out`` (model.pt), ``history.parquet``, ``curve.png`` beside it.

    Args:
        train: training features (and weak labels).
        targets: the loss targets of the training videos (:func:`avvp.core.data.build_targets`).
        val: validation features and dense truth, or None (no validation metrics).
        classes: class names.
        settings: :func:`train_settings` output.
        out: the model file to write.
        seed: the run's seed.
        resume: continue from ``checkpoints/last.pt`` when it belongs to the same run.
        progress: show progress bars.
        hook: called as ``hook(event, epoch, step)`` after every optimizer step (event "batch")
            and after every epoch's checkpoint is written (event "epoch"); for tests.
        meta: extra information stored in the model file.
        ratios: the noise ratios of a dynamic label-denoising method (``train.denoise.method``).

    Returns:
        The :class:`TrainResult`.
    """
    s = train_settings(settings)
    if s["train"]["select"] == "best" and val is None:
        raise ConfigError("train.select = 'best' needs validation videos, and there are none")
    denoiser = make_denoiser(s["train"]["denoise"], ratios, len(classes))
    with deterministic_algorithms(s["train"]["deterministic"]):
        return _train(train, targets, val, classes, s, Path(out), seed, resume, progress, hook, meta, denoiser)


def make_denoiser(denoise: Mapping[str, Any], ratios: NoiseRatios | None, n_classes: int):
    """The dynamic label-denoising hook of ``train.denoise`` (None for ``method: none``)."""
    from avvp.stages.refine import get_method

    if denoise["method"] == "none":
        if ratios is not None:
            raise ConfigError("noise ratios were given, but train.denoise.method is 'none'")
        return None
    if ratios is None:
        raise ConfigError(f"train.denoise.method = {denoise['method']!r} needs a noise-ratio file (--ratios)")
    return get_method(denoise["method"], "dynamic").load()(ratios, n_classes, denoise)


def _train(train: SplitData, targets: Targets, val: SplitData | None, classes: list[str], s: dict,
           out: Path, seed: int, resume: bool, progress: bool, hook: Hook | None,
           meta: Mapping[str, Any] | None, denoiser=None) -> TrainResult:
    t = s["train"]
    ckpt_path = out.parent / CHECKPOINT
    seed_everything(seed)
    device = resolve_device(t["device"])
    model = build_model(s, train.features.dims(), len(classes))
    if model.config.standardize:
        f = train.features
        model.set_input_stats(audio=f.audio, frame=f.frame, clip=f.clip)
    model = model.to(device)
    optimizer = make_optimizer(model, t["lr"], t)
    scheduler = make_scheduler(optimizer, t)
    identity = run_identity(s, seed, train, targets, val, b"" if denoiser is None else denoiser.fingerprint())
    history: list[dict] = []
    best: dict | None = None
    start = 0

    if resume and ckpt_path.exists():
        state = load_resume_state(ckpt_path)
        why = not_resumable(state, identity)
        if not why:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history, best, start = list(state["history"]), state["best"], int(state["epoch"])
            set_rng_state(state["rng"])
            if denoiser is not None:
                denoiser.load_state(state["denoiser"])
            log.info("resuming from %s after epoch %d", ckpt_path, start)
        else:
            aside = set_aside(ckpt_path)
            log.warning("not resuming from %s: %s. Set it aside as %s; training from epoch 1",
                        ckpt_path, "; ".join(why), aside)

    audio, frame, clip = _device_features(train, device)
    weak, y_g, y_a, y_v = (x.to(device) for x in (targets.weak, targets.global_, targets.audio, targets.visual))
    segments = ()
    if t["loss"] == "valor":
        if targets.seg_audio is None or targets.seg_visual is None:
            raise ConfigError("train.loss = 'valor' needs segment-level pseudo labels "
                              "(avvp train --pseudo-audio and --pseudo-visual)")
        segments = (targets.seg_audio.to(device), targets.seg_visual.to(device))
    contrastive = dict(t["contrastive"]) if t["contrastive"]["enabled"] else None
    n, bs = len(train.features), int(t["batch_size"])

    epochs = tqdm(range(start, int(t["epochs"])), desc="train", unit="epoch", disable=not progress,
                  initial=start, total=int(t["epochs"]))
    for epoch in epochs:
        tic = time.perf_counter()
        order = epoch_order(seed, epoch, n).to(device)
        batch_hook = None if hook is None else (lambda step, e=epoch + 1: hook("batch", e, step))
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": float(optimizer.param_groups[0]["lr"])}
        row.update(run_epoch(model, optimizer, (audio, frame, clip), (weak, y_g, y_a, y_v, *segments), order,
                             bs, contrastive, progress, f"epoch {epoch + 1}", batch_hook, t["precision"],
                             t["loss_weights"], denoiser, epoch + 1, t["loss"], float(t["clip_grad_norm"])))
        scheduler.step()
        if val is not None:
            row.update(validate(model, val, t, device))
        row["seconds"] = time.perf_counter() - tic
        history.append(row)
        metric = f"val_{t['select_metric']}"
        if t["select"] == "best" and _improves(row[metric], best, t["select_ties"]):
            best = {"epoch": epoch + 1, "score": float(row[metric]),
                    "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        save_torch(ckpt_path, {
            "format": STATE_FORMAT, "identity": identity, "epoch": epoch + 1,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng_state(), "history": history, "best": best,
            "denoiser": None if denoiser is None else denoiser.state(),
        })
        write_parquet(out.parent / PROGRESS, pd.DataFrame(history))
        epochs.set_postfix(_postfix(row))
        log.info("epoch %d/%d %s", epoch + 1, t["epochs"],
                 " ".join(f"{k} {v:.4f}" for k, v in _postfix(row).items()))
        if hook is not None:
            hook("epoch", epoch + 1, -1)

    if denoiser is not None:
        denoiser.write(out.parent / DROPS, train.features.video_ids, classes)
    return _finish(model, history, best, s, classes, out, seed, meta)


def _improves(score: float, best: dict | None, ties: str) -> bool:
    """Whether ``score`` replaces the best so far: ``>=`` (ties: later; the first epoch always
    does) or a strict ``>`` against the best, which starts at 0 (ties: earlier)."""
    if ties == "earlier":
        return score > (0.0 if best is None else best["score"])
    return best is None or score >= best["score"]


def _postfix(row: Mapping[str, Any]) -> dict[str, float]:
    keys = ("loss", "loss_contrastive", "val_segment_type")
    return {k: row[k] for k in keys if k in row and not (isinstance(row[k], float) and np.isnan(row[k]))}


def _finish(model: HAN, history: list[dict], best: dict | None, s: Mapping, classes: list[str],
            out: Path, seed: int, meta: Mapping[str, Any] | None) -> TrainResult:
    model = model.cpu()
    metric = s["train"]["select_metric"]
    if s["train"]["select"] == "best" and best is not None:
        model.load_state_dict(best["state_dict"])
        epoch, score = int(best["epoch"]), float(best["score"])
    else:
        epoch = int(history[-1]["epoch"]) if history else 0
        score = float(history[-1].get(f"val_{metric}", float("nan"))) if history else float("nan")
    model.eval()
    frame = pd.DataFrame(history)
    type_av = float(history[epoch - 1].get("val_segment_type", float("nan"))) if epoch else float("nan")
    info = {"settings": {k: dict(v) for k, v in s.items()}, "seed": seed, "epoch": epoch, "select": s["train"]["select"],
            "select_metric": metric, "val_score": score, "val_segment_type": type_av,
            "avvp_version": __version__, **_plain(meta or {})}
    write_parquet(out.parent / "history.parquet", frame)
    write_curve(frame, out.parent / "curve.png", title=f"{out.parent.parent.name} seed {seed}")
    save_model(out, model, classes, info)  # last: an existing model.pt means a finished run
    log.info("selected epoch %d (val %s %.4f) -> %s", epoch, metric, score, out)
    return TrainResult(model, frame, epoch, score)


def _plain(obj: Any) -> Any:
    """JSON-like copy (str for anything else), so the model file loads with weights_only."""
    return json.loads(json.dumps(obj, default=str))


def write_curve(history: pd.DataFrame, path: Path, title: str = "") -> None:
    """``curve.png``: losses and the main validation metrics per epoch."""
    from avvp.core.plots import plot_training_curve

    cols = ["epoch"] + [c for c in history.columns if c.startswith("loss")] + \
        [c for c in CURVE_METRICS if c in history.columns]
    frame = history[cols] if len(history) else pd.DataFrame({"epoch": []})
    frame = frame.loc[:, [c for c in frame.columns if c == "epoch" or frame[c].notna().any()]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_training_curve(frame, path, title=title)


# ------------------------------------------------------------------------------- pipeline

def run_training(features_dir: str | Path, manifest: str | Path, out: str | Path,
                 settings: Mapping[str, Any] | None = None, seed: int = 1, labels: str | Path | None = None,
                 annotations: str | Path | None = None, resume: bool = True, progress: bool = True,
                 hook: Hook | None = None, ratios: str | Path | None = None,
                 allow_missing: bool = False, pseudo_audio: str | Path | None = None,
                 pseudo_visual: str | Path | None = None) -> TrainResult:
    """Load the data named by a manifest and a features folder, then :func:`train_model`.

    Args:
        features_dir: folder with ``audio.h5``, ``frame.h5``, ``clip.h5``.
        manifest: ``manifest.parquet`` (dense tables beside it).
        out: the model file to write.
        settings: ``{"model": ..., "train": ...}``.
        seed: the run's seed.
        labels: refined-labels Parquet (``avvp refine``), or None for the weak labels.
        ratios: noise ratios (``ratios.parquet`` of ``avvp noise-ratios`` or an official
            ``noise_ratios.npz``) for dynamic label denoising (``train.denoise.method``).
        annotations: annotation folder (for ``classes.txt``), optional.
        resume, progress, hook: see :func:`train_model`.
        allow_missing: leave validation videos without features out (training videos without
            features are always left out, with a warning) instead of stopping.
        pseudo_audio, pseudo_visual: segment-level pseudo-label files (:mod:`avvp.core.pseudo_labels`)
            for ``train.loss: valor``. With ``labels`` too, the pseudo labels of a class whose
            refined modality label was dropped are set to 0 in every segment.
    """
    s = train_settings(settings)
    ann = load_annotations(manifest, annotations)
    noise = None if ratios is None else read_ratios(ratios, ann.classes)
    roles = model_roles(s["model"])
    train = load_split(features_dir, ann, "train", truth=False, progress=progress, missing="skip", roles=roles)
    val = None
    if len(ann.split("val")):
        val = load_split(features_dir, ann, "val", truth=True, progress=progress,
                         missing="skip" if allow_missing else "error", roles=roles)
    else:
        log.warning("%s: no validation videos; no validation metrics", manifest)
    targets = build_targets(train.weak, train.features.video_ids, ann.classes, labels,
                            s["train"]["alias_global"])
    if (pseudo_audio is None) != (pseudo_visual is None):
        raise ConfigError("give both --pseudo-audio and --pseudo-visual, or neither")
    if pseudo_audio is not None:
        from avvp.core.valor.training import valor_targets

        if s["train"]["loss"] != "valor":
            raise ConfigError("pseudo labels were given, but train.loss is not 'valor'")
        targets = valor_targets(targets, train, ann.classes, pseudo_audio, pseudo_visual, labels is not None)
    meta = {"labels": None if labels is None else str(labels), "n_train": len(train.features),
            "pseudo_labels": None if pseudo_audio is None else [str(pseudo_audio), str(pseudo_visual)],
            "n_val": 0 if val is None else len(val.features), "features": train.features.attrs,
            "ratios": None if ratios is None else str(ratios)}
    return train_model(train, targets, val, list(ann.classes), s, out, seed, resume, progress, hook, meta,
                       noise)

