"""Training HAN / MA / JoMoLD: loop, validation, model selection, exact resume.

Recipe: Adam (lr 3e-4), StepLR(10, 0.1) stepped once per epoch, batch 16, the three BCE terms
(:mod:`avvp.losses`), optionally MA's contrastive loss. HAN: 40 epochs, keep the epoch with the best
validation segment-level Type@AV (ties go to the later epoch; ``select: best``). MA: 12 epochs,
keep the last (``select: last``). JoMoLD (the ``jomold*`` variants' recipe):
Adam 5e-4, StepLR(6, 0.25), batch 128, 25 epochs, the best validation *event-level audio* F1
(``select_metric: event_audio``), loss weights 2/1/1 (``loss_weights``) and dynamic label
denoising (``denoise``): a hook object (:mod:`avvp.refine`, e.g.
:class:`avvp.refine.jomold.JointModalDenoiser`) that :func:`run_epoch` asks for each batch's
audio and visual targets; its drops go to ``drops.parquet`` beside the model.

VALOR (``loss: valor``, ``model.arch: valor``; :mod:`avvp.valor`): the video-level BCE plus the
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

import copy
import hashlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import __version__, provenance
from .atomic import write_parquet
from .checkpoint import load_torch, save_model, save_torch
from .data import SplitData, Targets, build_targets, load_annotations, load_split
from .device import resolve_device
from .errors import ConfigError, InputError
from .losses import CONTRASTIVE_LOSSES, CONTRASTIVE_VISUAL, LOSS_TERMS, NEGATIVES, training_loss
from .metrics import GATES, METRICS, evaluate_arrays, segment_type_at_av
from .architectures import build_model as build_architecture
from .architectures import model_config, model_roles
from .model import HAN
from .precision import PRECISIONS, autocast
from .predict import predict_arrays
from .refine.jomold import denoise_settings
from .refine.ratios import NoiseRatios, read_ratios
from .seeding import deterministic_algorithms, epoch_order, rng_state, seed_everything, set_rng_state
from .settings import merge_settings

log = logging.getLogger(__name__)

MODEL_DEFAULTS: dict[str, Any] = {"d_model": 512, "nhead": 1, "dim_feedforward": 512, "dropout": 0.1,
                                  "standardize": False, "cross_attention": True, "visual_dropout": 0.0,
                                  "arch": "han",           # han (HAN, MA, JoMoLD) | valor
                                  "num_layers": 1,         # VALOR: encoder layers (VALOR+/++: 4)
                                  "audio_role": "audio",   # VALOR: audio | clap_audio (VALOR++)
                                  "frame_role": "frame"}   # VALOR: frame | clip_image (VALOR++)
TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 12,               # 40 for the HAN recipe, 12 for MA
    "batch_size": 16,
    "lr": 3e-4,
    "step_size": 10,
    "gamma": 0.1,
    "select": "last",           # last (MA) | best (HAN: best val segment-level Type@AV, ties to later)
    "select_metric": "segment_type",  # the validation metric of select: best (JoMoLD: event_audio)
    "seeds": [1],               # the workflow's seed list; a run's seed is given with --seed
    "device": "auto",
    "gate": "ma",               # video-level gate of the per-epoch validation (han | ma)
    "threshold": 0.5,
    "alias_global": False,      # official aliasing: a dropped audio label also zeroes the global target
    "eval_batch_size": 64,
    "deterministic": True,
    "precision": "fp32",        # fp32 (official) | bf16 (autocast; faster on CPUs/GPUs with bfloat16)
    "contrastive": {
        "enabled": False,       # set per variant (avvp train --contrastive on)
        "weight": 1.0,
        "tau": 0.2,
        "smoothing": 0.1,
        "negatives": "video",   # video (official: other segments of the same video) | batch
        "symmetric": False,     # also the visual -> audio direction
        "visual": "pre",        # pre (MA: pre-HAN visual features) | post (JoMoLD: post-HAN)
        "loss": "ce",           # ce (MA: smoothed cross entropy) | nce (JoMoLD: -log of the smoothed mass)
    },
    "loss_weights": {"global": 1.0, "audio": 1.0, "visual": 1.0},  # JoMoLD stage 3: audio 2
    "loss": "han",              # han (the three BCE terms) | valor (video BCE + segment pseudo-label BCEs)
    "optimizer": "adam",        # adam (HAN, MA, JoMoLD) | adamw (VALOR)
    "betas": [0.9, 0.999],      # VALOR: [0.5, 0.999]
    "eps": 1e-8,
    "weight_decay": 0.0,        # VALOR: 1e-3 (decoupled, on every parameter)
    "schedule": "step",         # step (StepLR(step_size, gamma)) | warmup_cosine (VALOR)
    "warmup_epochs": 10,        # warmup_cosine: epochs of linear warm-up
    "lr_min": 0.0,              # warmup_cosine: the final learning rate (VALOR: lr / 100)
    "clip_grad_norm": 0.0,      # clip the total gradient norm to this (0: off; VALOR: 1.0)
    "select_ties": "later",     # later (>=, HAN) | earlier (strict >, from 0, VALOR)
    "denoise": {                # dynamic label denoising (avvp.refine): needs a noise-ratio file
        "method": "none",       # none | jomold
        "schedule": "coded",    # coded (official: nothing in epoch 1, full ratios after) | linear
        "warm_up_epoch": 0.9,
    },
}
SELECT = ("last", "best")
LOSSES = ("han", "valor")
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("step", "warmup_cosine")
SELECT_TIES = ("later", "earlier")
#: Settings added with VALOR: left out of a run's fingerprint while they hold these values, so
#: runs begun before they existed still resume.
NEUTRAL = {"model": {k: MODEL_DEFAULTS[k] for k in ("arch", "num_layers", "audio_role", "frame_role")},
           "train": {k: TRAIN_DEFAULTS[k] for k in ("loss", "optimizer", "betas", "eps", "weight_decay",
                                                   "schedule", "warmup_epochs", "lr_min",
                                                   "clip_grad_norm", "select_ties")}}
CHECKPOINT = "checkpoints/last.pt"
#: The history so far, rewritten every epoch (the final history.parquet is written at the end).
PROGRESS = "checkpoints/history.parquet"
#: The drop record of dynamic label denoising, beside the model file (written at the end).
DROPS = "drops.parquet"
STATE_FORMAT = "avvp-train-state"
#: Columns of history.parquet drawn in curve.png (besides the losses).
CURVE_METRICS = ("val_segment_audio", "val_segment_visual", "val_segment_av", "val_segment_type",
                 "val_event_type")

Hook = Callable[[str, int, int], None]


# ------------------------------------------------------------------------------- settings

def train_settings(given: Mapping[str, Any] | None = None) -> dict:
    """``{"model": ..., "train": ...}`` merged over the defaults and checked.

    Raises:
        ConfigError: an unknown key or a value out of range, named.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - {"model", "train"})
    if unknown:
        raise ConfigError(f"unknown settings section(s) {', '.join(unknown)} (known: model, train)")
    s = {"model": merge_settings(MODEL_DEFAULTS, given.get("model") or {}, "model"),
         "train": merge_settings(TRAIN_DEFAULTS, given.get("train") or {}, "train")}
    t, c = s["train"], s["train"]["contrastive"]
    _check("train.epochs", t["epochs"], int, 1)
    _check("train.batch_size", t["batch_size"], int, 1)
    _check("train.lr", t["lr"], float, 0.0, open_low=True)
    _check("train.step_size", t["step_size"], int, 1)
    _check("train.gamma", t["gamma"], float, 0.0, 1.0, open_low=True)
    _check("train.threshold", t["threshold"], float, 0.0, 1.0)
    _check("train.eval_batch_size", t["eval_batch_size"], int, 1)
    _check("train.contrastive.weight", c["weight"], float, 0.0)
    _check("train.contrastive.tau", c["tau"], float, 0.0, open_low=True)
    _check("train.contrastive.smoothing", c["smoothing"], float, 0.0, 1.0, open_high=True)
    for term in LOSS_TERMS:
        _check(f"train.loss_weights.{term}", t["loss_weights"][term], float, 0.0)
    _choice("train.select", t["select"], SELECT)
    _choice("train.select_metric", t["select_metric"], METRICS)
    _choice("train.contrastive.visual", c["visual"], CONTRASTIVE_VISUAL)
    _choice("train.contrastive.loss", c["loss"], CONTRASTIVE_LOSSES)
    denoise_settings(t["denoise"])
    _choice("train.gate", t["gate"], GATES)
    _choice("train.contrastive.negatives", c["negatives"], NEGATIVES)
    _choice("train.precision", t["precision"], PRECISIONS)
    for key in ("alias_global", "deterministic"):
        _choice(f"train.{key}", t[key], (True, False))
    for key in ("enabled", "symmetric"):
        _choice(f"train.contrastive.{key}", c[key], (True, False))
    _check("train.eps", t["eps"], float, 0.0, open_low=True)
    _check("train.weight_decay", t["weight_decay"], float, 0.0)
    _check("train.warmup_epochs", t["warmup_epochs"], int, 1)
    _check("train.lr_min", t["lr_min"], float, 0.0)
    _check("train.clip_grad_norm", t["clip_grad_norm"], float, 0.0)
    if not isinstance(t["betas"], (list, tuple)) or len(t["betas"]) != 2:
        raise ConfigError(f"train.betas = {t['betas']!r} must be two numbers")
    for i, beta in enumerate(t["betas"]):
        _check(f"train.betas[{i}]", beta, float, 0.0, 1.0, open_high=True)
    _choice("train.loss", t["loss"], LOSSES)
    _choice("train.optimizer", t["optimizer"], OPTIMIZERS)
    _choice("train.schedule", t["schedule"], SCHEDULES)
    _choice("train.select_ties", t["select_ties"], SELECT_TIES)
    model_config(s["model"])
    if t["loss"] == "valor" and s["model"]["arch"] != "valor":
        raise ConfigError("train.loss = 'valor' needs the segment logits of model.arch: valor")
    if t["loss"] == "valor" and t["contrastive"]["enabled"]:
        raise ConfigError("train.loss = 'valor' takes no contrastive term")
    return s


def _check(name: str, value: Any, cast: type, low: float | None = None, high: float | None = None,
           open_low: bool = False, open_high: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (cast is int and value != int(value)):
        raise ConfigError(f"{name} = {value!r} is not {'an integer' if cast is int else 'a number'}")
    too_low = low is not None and (value <= low if open_low else value < low)
    too_high = high is not None and (value >= high if open_high else value > high)
    if too_low or too_high:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(f"{name} = {value!r} is out of range "
                          f"{'(' if open_low else '['}{lo}, {hi}{')' if open_high else ']'}")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed or (isinstance(value, bool) != isinstance(allowed[0], bool)):
        raise ConfigError(f"{name} = {value!r} (allowed: {', '.join(map(str, allowed))})")


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


def _identity(settings: Mapping, seed: int, train: SplitData, targets: Targets,
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
    h.update(repr([_checksum(x) for x in (f.audio, f.frame, f.clip)]).encode())
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


def _checksum(x: torch.Tensor, rows: int = 32) -> float:
    """The float64 sum of ``x``, over ``rows`` videos at a time: ``torch.sum(x, dtype=float64)``
    would hold a float64 copy of all of ``x`` (1.6 GB for the LLP training set)."""
    return float(sum(torch.sum(x[i:i + rows], dtype=torch.float64) for i in range(0, len(x), rows)))


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
        from .valor.training import warmup_cosine_scheduler

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
        targets: the loss targets of the training videos (:func:`avvp.data.build_targets`).
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
    from .refine import get_method

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
    identity = _identity(s, seed, train, targets, val, b"" if denoiser is None else denoiser.fingerprint())
    history: list[dict] = []
    best: dict | None = None
    start = 0

    if resume and ckpt_path.exists():
        state = _load_resume_state(ckpt_path)
        why = _not_resumable(state, identity)
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


def _not_resumable(state: Any, identity: Mapping) -> list[str]:
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


def _improves(score: float, best: dict | None, ties: str) -> bool:
    """Whether ``score`` replaces the best so far: ``>=`` (ties: later; the first epoch always
    does) or a strict ``>`` against the best, which starts at 0 (ties: earlier)."""
    if ties == "earlier":
        return score > (0.0 if best is None else best["score"])
    return best is None or score >= best["score"]


def _load_resume_state(path: Path) -> Any:
    """The resume state in ``path``; a damaged file stops with how to start afresh."""
    try:
        return load_torch(path)
    except InputError as exc:
        raise InputError(path, f"{exc.problem}. This is the resume state of an interrupted run; "
                               f"to start this run afresh, delete the file (rm {path}) or run "
                               f"`avvp train` with --restart") from None


def run_epoch(model: HAN, optimizer: torch.optim.Optimizer, features: tuple[torch.Tensor, ...],
              targets: tuple[torch.Tensor, ...], order: torch.Tensor, batch_size: int,
              contrastive: Mapping[str, Any] | None = None, progress: bool = False, desc: str = "epoch",
              hook: Callable[[int], None] | None = None, precision: str = "fp32",
              loss_weights: Mapping[str, float] | None = None, denoiser=None, epoch: int = 1,
              loss: str = "han", clip_grad_norm: float = 0.0) -> dict[str, float]:
    """One training epoch over in-memory tensors, batches taken by indexing in ``order``.

    Args:
        model: the model (put in train mode here).
        optimizer: its optimizer.
        features: (audio, frame, clip) tensors (N, T, D) on the model's device.
        targets: (weak, global, audio, visual) target tensors (N, C); with ``loss: valor``
            followed by the (audio, visual) segment-level pseudo labels (N, T, C).
        order: the sample order of this epoch (a permutation of N).
        batch_size: samples per step (the last batch may be smaller).
        contrastive: contrastive-loss settings, or None.
        progress: show a progress bar; desc: its label.
        hook: called with the step number after every optimizer step.
        precision: ``fp32`` or ``bf16`` (the forward pass under bfloat16 autocast; the losses are
            computed in float32), see :mod:`avvp.precision`.
        loss_weights: weights of the global, audio and visual BCE terms (default 1 each).
        denoiser: a dynamic label-denoising hook (:mod:`avvp.refine`), or None. Before every
            step it gets the batch and returns the audio and visual targets to train on; the
            global target is never passed to it. With ``loss: valor`` a dropped audio (visual)
            label sets that class's audio (visual) pseudo labels of the video to 0 for the step.
        epoch: this epoch's number (1-based), for the denoiser's schedule.
        loss: ``han`` (:func:`avvp.losses.training_loss`) or ``valor``
            (:func:`avvp.valor.training.valor_loss` against the global target).
        clip_grad_norm: clip the total gradient norm to this before each step (0: off).

    Returns:
        The sample-weighted mean of each loss term over the epoch (``loss``, ``loss_global``, ...),
        and the denoiser's epoch summary.
    """
    from .valor.training import restrict, valor_loss

    audio, frame, clip = features
    weak, y_g, y_a, y_v = targets[:4]
    seg_a, seg_v = targets[4:6] if loss == "valor" else (None, None)
    model.train()
    device = next(model.parameters()).device
    n = len(order)
    sums: dict[str, float] = {}
    batches = tqdm(range(0, n, batch_size), desc=desc, unit="batch", leave=False, disable=not progress)
    if denoiser is not None:
        denoiser.start_epoch(epoch, len(batches))
    for step, begin in enumerate(batches):
        idx = order[begin:begin + batch_size]
        t_a, t_v = y_a[idx], y_v[idx]
        if denoiser is not None:
            t_a, t_v = denoiser(model, (audio[idx], frame[idx], clip[idx]), idx, weak[idx], t_a, t_v, step,
                                precision)
        with autocast(device, precision):
            output = model(audio[idx], frame[idx], clip[idx])
        if precision != "fp32":
            output = output.float()
        if loss == "valor":
            keep_a, keep_v = (seg_a[idx], seg_v[idx]) if denoiser is None else \
                (restrict(seg_a[idx], t_a), restrict(seg_v[idx], t_v > 0.5))  # dropped: 0; kept v: 0.95
            terms = valor_loss(output, y_g[idx], keep_a, keep_v)
        else:
            terms = training_loss(output, weak[idx], y_g[idx], t_a, t_v, contrastive, loss_weights)
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        if clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        for key, value in terms.as_floats().items():
            sums[key] = sums.get(key, 0.0) + value * len(idx)
        if hook is not None:
            hook(step)
    out = {k: v / n for k, v in sums.items()}
    if denoiser is not None:
        out.update(denoiser.end_epoch())
    return out


def validate(model: HAN, val: SplitData, t: Mapping[str, Any], device: torch.device) -> dict[str, float]:
    """Validation metrics (``val_<metric>``, fractions) of the current model."""
    arrays = predict_arrays(model, val.features, int(t["eval_batch_size"]), device)
    result = evaluate_arrays(arrays["global_prob"], arrays["a_prob"], arrays["v_prob"], arrays["frame_prob"],
                             val.gt_audio, val.gt_visual, gate=t["gate"], threshold=t["threshold"])
    row = {f"val_{k}": float(v) for k, v in result.overall.items()}
    row["val_segment_type"] = float(segment_type_at_av(result))
    return row


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
    info = {"settings": s, "seed": seed, "epoch": epoch, "select": s["train"]["select"],
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
    from .plots import plot_training_curve

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
        pseudo_audio, pseudo_visual: segment-level pseudo-label files (:mod:`avvp.teachers.labels`)
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
        from .valor.training import valor_targets

        if s["train"]["loss"] != "valor":
            raise ConfigError("pseudo labels were given, but train.loss is not 'valor'")
        targets = valor_targets(targets, train, ann.classes, pseudo_audio, pseudo_visual, labels is not None)
    meta = {"labels": None if labels is None else str(labels), "n_train": len(train.features),
            "pseudo_labels": None if pseudo_audio is None else [str(pseudo_audio), str(pseudo_visual)],
            "n_val": 0 if val is None else len(val.features), "features": train.features.attrs,
            "ratios": None if ratios is None else str(ratios)}
    return train_model(train, targets, val, list(ann.classes), s, out, seed, resume, progress, hook, meta,
                       noise)

