"""Choose the torch device a stage runs on, falling back to the CPU when no GPU is usable.

A job that asked for a GPU may still find none: a cluster node whose GPU is a placeholder (as in
CI, where SLURM hands out a fake GPU), a CUDA driver that does not match torch, or a typo in the
configuration. Stages call :func:`resolve_device` with their ``device`` setting (``auto``, ``cpu``,
``cuda`` or ``cuda:<index>``) and always get a device they can use; when a GPU was requested or
allocated but cannot be used, a :class:`DeviceFallbackWarning` says so and the CPU is used.
"""

from __future__ import annotations

import os
import re
import warnings

import torch

from avvp.infra.errors import ConfigError

__all__ = ["DeviceFallbackWarning", "allocated_gpus", "resolve_device"]

_CUDA = re.compile(r"^cuda(?::(\d+))?$")
# CUDA_VISIBLE_DEVICES values that mean "no GPU" rather than "these GPUs".
_NO_GPU_VALUES = {"", "-1", "none", "nodevfiles", "void"}


class DeviceFallbackWarning(RuntimeWarning):
    """A GPU was requested or allocated, but the stage runs on the CPU."""


def allocated_gpus() -> str | None:
    """The GPUs the scheduler gave this process, from ``CUDA_VISIBLE_DEVICES``.

    Returns:
        The variable's value (for example ``"0"`` or ``"0,1"``), or None when it is unset or
        says that no GPU was allocated.
    """
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None or value.strip().lower() in _NO_GPU_VALUES:
        return None
    return value.strip()


def _fallback(reason: str) -> torch.device:
    warnings.warn(f"{reason}; running on the CPU instead", DeviceFallbackWarning, stacklevel=3)
    return torch.device("cpu")


def resolve_device(requested: str = "auto") -> torch.device:
    """The device a stage should use for its ``device`` setting.

    Args:
        requested: ``"auto"`` (a GPU if torch can use one, else the CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:<index>"`` (case and surrounding blanks are ignored).

    Returns:
        ``cuda``/``cuda:<index>`` when that GPU is usable, otherwise ``cpu``. Falling back from a
        requested GPU, or from a GPU the scheduler allocated (``CUDA_VISIBLE_DEVICES`` set) under
        ``auto``, issues a :class:`DeviceFallbackWarning`.

    Raises:
        ConfigError: ``requested`` is none of the values above.
    """
    text = str(requested).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        gpus = allocated_gpus()
        if gpus is not None:
            return _fallback(
                f"GPU(s) {gpus} allocated (CUDA_VISIBLE_DEVICES) but torch cannot use CUDA"
            )
        return torch.device("cpu")
    match = _CUDA.match(text)
    if match is None:
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:<index>, got {requested!r}")
    if not torch.cuda.is_available():
        return _fallback(f"device {text!r} requested but torch cannot use CUDA")
    index = match.group(1)
    if index is not None and int(index) >= torch.cuda.device_count():
        return _fallback(
            f"device {text!r} requested but only {torch.cuda.device_count()} GPU(s) are visible"
        )
    return torch.device(text)
