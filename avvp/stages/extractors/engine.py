"""How an extractor's network is run: the same numbers as the plain model, faster.

The plain model is the torchvision (or VGGish) network in eval mode, fp32, eager, contiguous
(NCHW / NCTHW) tensors. :class:`Engine` runs the same computation with:

* inference mode and channels-last (2-D) / channels-last-3d (3-D) memory layout;
* ``engine: jit`` (the default) on the CPU: a TorchScript graph traced on the first batch,
  frozen (batch norm folded into the convolutions, weights constant) and run with oneDNN Graph
  fusion (convolution + bias + ReLU + residual add as one kernel). The graph is profiled and its
  fused kernels compiled on the first pass of each new input shape: that pass (which computes
  like the eager model) is run once more and discarded, so every batch of a run is computed by
  the same kernels (seconds; repaid after a few clips). Every batch is padded with zeros to
  ``batch_size`` units: one compiled shape serves a whole run, and a unit's features do not
  depend on how many others share its batch (oneDNN picks its matrix kernels by batch size, so
  unpadded batches of other sizes would differ in the last bits; padded, an interrupted and
  resumed run gives bitwise the same features as an uninterrupted one);
* ``engine: eager``, and always on CUDA: the eager model with batch norm folded into the
  convolutions (``torch.fx``; a model that cannot be traced keeps its batch norms).

Both agree with the plain model to about 1e-6 relative (fp32: only the order of the additions
changes; ``tests/test_extractors.py`` checks 1e-4 on frames of a real clip). ``precision: bf16``
(opt-in) runs the convolutions and matrix products in bfloat16 with float32 accumulation
(autocast; on CPUs with AVX512-BF16 / AMX and on recent GPUs this is 2-3x faster); features then
differ from fp32 by about 0.5 % (relative norm) and are not the official arithmetic.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import warnings

import torch
from torch import nn

from avvp.infra.errors import ConfigError
from avvp.infra.precision import PRECISIONS

log = logging.getLogger(__name__)

#: ``features.engine`` (and ``parse.engine``) values; ``features.<role>.precision`` takes
#: :data:`avvp.infra.precision.PRECISIONS`.
ENGINES = ("jit", "eager")

_TRACE_ERRORS = (RuntimeError, TypeError, ValueError, AssertionError, torch.jit.Error)


def check_engine(engine: str, where: str = "features") -> None:
    """Raise ConfigError for an unknown ``<where>.engine``."""
    if engine not in ENGINES:
        raise ConfigError(f"{where}.engine must be one of {', '.join(ENGINES)}, got {engine!r}")


def check_precision(precision: str, where: str = "features") -> None:
    """Raise ConfigError for an unknown ``<where>.precision``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def memory_format(ndim: int) -> torch.memory_format:
    """Channels-last for a 4-D (images) or 5-D (videos) input, else contiguous."""
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(ndim, torch.contiguous_format)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of an eval-mode model with every Conv → BatchNorm pair folded into the convolution
    (``torch.fx``); the model itself when it cannot be traced symbolically."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(copy.deepcopy(model))
    except _TRACE_ERRORS + (NotImplementedError, AttributeError) as exc:
        log.info("batch norms not folded (%s: %s)", type(exc).__name__, exc)
        return model


class Engine:
    """Runs one extractor network on batches: ``engine(x) -> (B, ...) float32``.

    Args:
        model: the network in eval mode, on ``device``, gradients off.
        device: where it runs.
        precision: ``fp32`` or ``bf16``.
        engine: ``jit`` (a frozen, oneDNN-fused TorchScript graph on the CPU) or ``eager``.
        input_ndim: 4 for image batches, 5 for video clips, anything else: no layout change.
        batch_size: ``jit``: pad every batch to this many units (None: to the largest batch
            seen with the same unit shape).
    """

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32",
                 engine: str = "jit", input_ndim: int = 4, batch_size: int | None = None):
        check_engine(engine)
        check_precision(precision)
        self.device = torch.device(device)
        self.precision = precision
        self.format = memory_format(input_ndim)
        self.jit = engine == "jit" and self.device.type == "cpu"
        self.model = model.to(memory_format=self.format) if input_ndim in (4, 5) else model
        if not self.jit:
            self.model = fold_batch_norms(self.model)
        self.batch_size = batch_size
        self.setup_s = 0.0  # seconds spent tracing, profiling and compiling (inside the first calls)
        self._graph = None
        self._seen: set[tuple] = set()  # input shapes the graph has been compiled for
        self._largest: dict[tuple, int] = {}  # unit shape -> largest batch compiled

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)

    def _trace(self, x: torch.Tensor):
        """The frozen TorchScript graph of the model for inputs like ``x`` (None: cannot trace).

        Traced on one unit (tracing runs the model eagerly, so this saves a batch's pass); a model
        whose trace bakes in the batch size (a TracerWarning) is traced again on the whole batch.
        """
        torch.jit.enable_onednn_fusion(True)
        try:
            for sample in (x[:1], x):
                with torch.no_grad(), self._autocast(), warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", torch.jit.TracerWarning)
                    traced = torch.jit.trace(self.model, sample, check_trace=False)
                if not any(issubclass(w.category, torch.jit.TracerWarning) for w in caught):
                    break
            return torch.jit.freeze(traced.eval())
        except _TRACE_ERRORS as exc:
            log.warning("the model cannot be traced (%s: %s); running it eagerly", type(exc).__name__, exc)
            self.jit = False
            self.model = fold_batch_norms(self.model)
            return None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for a batch already on the device (float32 out)."""
        if x.dim() in (4, 5):
            x = x.contiguous(memory_format=self.format)
        with torch.inference_mode():
            if not self.jit:
                with self._autocast():
                    return self.model(x).float()
            n = len(x)
            x = self._padded(x)
            start = time.perf_counter()
            if self._graph is None:
                with torch.inference_mode(False), warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit in torch 2.11
                    self._graph = self._trace(x.clone())
                if self._graph is None:
                    self.setup_s += time.perf_counter() - start
                    return self(x)[:n]
            unit = (tuple(x.shape[1:]), x.dtype)
            if (unit, len(x)) in self._seen:
                return self._graph(x)[:n].float()
            self._graph(x)  # profiling pass, then the fused kernels for this shape are compiled
            y = self._graph(x)
            self._seen.add((unit, len(x)))
            self._largest[unit] = max(len(x), self._largest.get(unit, 0))
            self.setup_s += time.perf_counter() - start  # (with this batch's own pass)
            return y[:n].float()

    def _padded(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` padded with zeros to ``batch_size`` (or the batch size the graph already runs for
        its unit shape)."""
        size = self.batch_size or self._largest.get((tuple(x.shape[1:]), x.dtype), 0)
        if len(x) >= size:
            return x
        pad = x.new_zeros((size - len(x), *x.shape[1:]))
        return torch.cat([x, pad]).contiguous(memory_format=self.format)
