"""The shared shape of every extractor: decode one clip into model input units, run a batch.

An extractor turns one clip into ``units``: a CPU tensor whose first axis holds the items the model
sees one by one (VGGish examples, frames, 8-frame clips). The runner (:mod:`avvp.extract`) decodes
clips in background threads with :meth:`Extractor.load`, batches units across videos, and calls
:meth:`Extractor.forward`, which returns one D-dimensional row per unit. A video's rows, in order,
are its (T_r, D) features.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..settings import merge_settings
from ..weights import load_into, resolve_weights, seeded

#: ImageNet and Kinetics-400 normalisation (official.md §b.4, §b.5).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)


def whole_seconds(duration: float) -> int:
    """The number of whole seconds (segments) in a window of ``duration`` seconds."""
    return int(math.floor(float(duration) + 1e-6))


class Extractor(ABC):
    """Base class: settings, weights, device placement and the batched forward pass.

    Subclasses set ``role``, ``defaults`` (their config keys), optionally ``default_weights_url``
    (what ``weights: pretrained`` means) and implement :meth:`build_model` and :meth:`load`.

    Attributes:
        settings: the role settings merged over ``defaults``.
        model: the network in eval mode on ``device``.
        dim: the feature size D.
        weights_identity: sha256 of the weight file or ``random:<seed>``.
    """

    role: ClassVar[str] = ""
    names: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict] = {}
    default_weights_url: ClassVar[str | None] = None
    #: Model input units per second of clip (8 for frames, 1 for VGGish examples and clips).
    units_per_second: ClassVar[int] = 1
    #: Convert 4-D (5-D) inputs and the model to channels-last memory layout.
    channels_last: ClassVar[bool] = False

    def __init__(self, settings: Mapping, device: str | torch.device = "cpu",
                 missing_audio: str = "error"):
        self.settings = merge_settings(self.defaults, settings, where=f"features.{self.role}")
        self.device = torch.device(device)
        self.missing_audio = missing_audio
        self.dim = 0
        self.head_prefixes: tuple[str, ...] = ()
        weights = resolve_weights(self.settings.get("weights"), self.settings.get("seed", 0),
                                  self.weights_url(), what=f"{self.settings['extractor']} weights")
        with seeded(self.settings.get("seed", 0)):
            model = self.build_model()
        if weights.state_dict is not None:
            load_into(model, weights.state_dict, weights.source, self.head_prefixes)
        self.weights_identity = weights.identity
        model.eval().requires_grad_(False)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=self._memory_format(5 if self.role == "clip" else 4))

    # -- to implement -----------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> nn.Module:
        """Build the headless network (random init); set ``self.dim`` and ``self.head_prefixes``
        (state-dict prefixes of a classifier that weight files may hold and that is not used)."""

    @abstractmethod
    def load(self, path: str | Path, duration: float, start: float = 0.0) -> torch.Tensor:
        """Decode ``[start, start + duration)`` of one clip into CPU model units (first axis: units).

        ``start`` is 0 for clips already cut to their window (the demo's, the official download's)
        and the window start for full source videos (``avvp download``).

        Raises:
            avvp.errors.InputError: (incl. DecodeError) the clip cannot be used; the runner
                records it as a failure.
        """

    def weights_url(self) -> str | None:
        """What ``weights: pretrained`` means for this extractor (None: no standard file)."""
        return self.default_weights_url

    def prepare(self, units: torch.Tensor) -> torch.Tensor:
        """Turn a batch of units already on the device into the model input (e.g. normalise)."""
        return units.float()

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        """Change the model's (B, D) output before it is stored (e.g. VGGish PCA)."""
        return output

    # -- shared ---------------------------------------------------------------------------------
    def segments(self, duration: float) -> int:
        """T: the number of whole seconds of the window."""
        return whole_seconds(duration)

    def units(self, duration: float) -> int:
        """How many units (and output rows) one clip of ``duration`` seconds gives."""
        return self.segments(duration) * self.units_per_second

    @staticmethod
    def _memory_format(ndim: int) -> torch.memory_format:
        return torch.channels_last_3d if ndim == 5 else torch.channels_last

    def forward(self, units: torch.Tensor) -> np.ndarray:
        """Run one batch of units through the model; returns (B, D) float32 on the CPU."""
        with torch.inference_mode():
            x = self.prepare(units.to(self.device, non_blocking=True))
            if self.channels_last and x.dim() in (4, 5):
                x = x.contiguous(memory_format=self._memory_format(x.dim()))
            y = self.postprocess(self.model(x).flatten(1))
            return y.float().cpu().numpy()

    def describe(self) -> dict[str, str]:
        """Feature-store attributes: role, extractor, settings (JSON), weights, avvp version.

        The audio settings also record ``missing_audio`` (it changes what is stored)."""
        settings = dict(self.settings)
        if self.role == "audio":
            settings["missing_audio"] = self.missing_audio
        return {
            "role": self.role,
            "extractor": str(self.settings["extractor"]),
            "settings": json.dumps(settings, sort_keys=True, separators=(",", ":")),
            "weights": self.weights_identity,
            "avvp_version": __version__,
        }


def normaliser(mean, std, ndim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std tensors shaped to broadcast over (B, 3, H, W) or (B, 3, T, H, W) on ``device``."""
    shape = (1, 3) + (1,) * (ndim - 2)
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(shape),
            torch.tensor(std, dtype=torch.float32, device=device).view(shape))
