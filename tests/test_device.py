"""Device selection: GPU when usable, otherwise the CPU with a warning (avvp.infra.device)."""

from __future__ import annotations

import warnings

import pytest
import torch

from avvp.infra import device as device_mod
from avvp.infra.device import DeviceFallbackWarning, allocated_gpus, resolve_device
from avvp.infra.errors import ConfigError


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend torch sees no usable GPU (as on a CI node with a fake GPU)."""
    monkeypatch.setattr(device_mod.torch.cuda, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend torch sees two usable GPUs."""
    monkeypatch.setattr(device_mod.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(device_mod.torch.cuda, "device_count", lambda: 2)


def _no_warning(requested: str) -> torch.device:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeviceFallbackWarning)
        return resolve_device(requested)


def test_cpu_is_always_cpu(two_gpus: None) -> None:
    assert _no_warning("cpu") == torch.device("cpu")
    assert _no_warning(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("requested", ["cuda", "cuda:1"])
def test_cuda_falls_back_with_warning(no_cuda: None, requested: str) -> None:
    with pytest.warns(DeviceFallbackWarning, match="running on the CPU"):
        assert resolve_device(requested) == torch.device("cpu")


def test_auto_without_gpu_is_quiet(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert _no_warning("auto") == torch.device("cpu")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert _no_warning("auto") == torch.device("cpu")


def test_auto_with_allocated_but_unusable_gpu_warns(
    no_cuda: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.warns(DeviceFallbackWarning, match="CUDA_VISIBLE_DEVICES"):
        assert resolve_device() == torch.device("cpu")


def test_gpu_used_when_available(two_gpus: None) -> None:
    assert _no_warning("auto") == torch.device("cuda")
    assert _no_warning("cuda") == torch.device("cuda")
    assert _no_warning("cuda:1") == torch.device("cuda", 1)


def test_missing_gpu_index_falls_back(two_gpus: None) -> None:
    with pytest.warns(DeviceFallbackWarning, match="only 2 GPU"):
        assert resolve_device("cuda:2") == torch.device("cpu")


@pytest.mark.parametrize("requested", ["gpu", "cuda:x", "", "tpu"])
def test_unknown_device_is_a_config_error(requested: str) -> None:
    with pytest.raises(ConfigError, match="device"):
        resolve_device(requested)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("-1", None), ("NoDevFiles", None), ("0", "0"), (" 0,1 ", "0,1")],
)
def test_allocated_gpus(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert allocated_gpus() == expected
