"""Arithmetic precision of training: fp32 (official) or bfloat16 autocast.

``train.precision: bf16`` runs the model's forward pass (and so its backward pass) under
:func:`torch.autocast` with bfloat16: matrix products take bfloat16 inputs and accumulate in
float32, while the weights, the optimizer state and the losses stay float32. On CPUs with native
bfloat16 arithmetic (AVX512-BF16 or AMX) and on recent GPUs this trains HAN about 1.5x faster;
elsewhere it may be slower. It is not the official arithmetic: losses differ from fp32 by about
1e-3 and runs are not bitwise comparable with fp32 runs (they stay reproducible with each other).
Validation, prediction and refinement always run in float32.
"""

from __future__ import annotations

import contextlib

import torch

#: The allowed ``train.precision`` values.
PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context the training forward pass runs in: autocast to bfloat16, or nothing for fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} (allowed: {', '.join(PRECISIONS)})")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
