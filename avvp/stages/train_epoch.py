"""One training epoch over in-memory tensors (:func:`run_epoch`), and the per-epoch validation
(:func:`validate`); :mod:`avvp.stages.train` runs them epoch after epoch."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from tqdm import tqdm

from avvp.core.data import SplitData
from avvp.core.losses import training_loss
from avvp.core.metrics import evaluate_arrays, segment_type_at_av
from avvp.core.model import HAN
from avvp.infra.precision import autocast
from avvp.stages.predict import predict_arrays


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
            computed in float32), see :mod:`avvp.infra.precision`.
        loss_weights: weights of the global, audio and visual BCE terms (default 1 each).
        denoiser: a dynamic label-denoising hook (:mod:`avvp.stages.refine`), or None. Before every
            step it gets the batch and returns the audio and visual targets to train on; the
            global target is never passed to it. With ``loss: valor`` a dropped audio (visual)
            label sets that class's audio (visual) pseudo labels of the video to 0 for the step.
        epoch: this epoch's number (1-based), for the denoiser's schedule.
        loss: ``han`` (:func:`avvp.core.losses.training_loss`) or ``valor``
            (:func:`avvp.core.valor.training.valor_loss` against the global target).
        clip_grad_norm: clip the total gradient norm to this before each step (0: off).

    Returns:
        The sample-weighted mean of each loss term over the epoch (``loss``, ``loss_global``, ...),
        and the denoiser's epoch summary.
    """
    from avvp.core.valor.training import restrict, valor_loss

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
