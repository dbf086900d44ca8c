"""Clip features from torchvision's R(2+1)D-18 (official: Kinetics-400 weights, 512-d).

The same 8T frames as the frame features (8 fps, the official rate) are squashed to ``size`` ×
``size`` (no aspect ratio, no crop; antialiased bilinear), scaled to [0, 1], normalised with the
Kinetics mean and std and grouped into T consecutive clips of 8 frames, (T, 3, 8, size, size). The
final fc is removed (the average pool is kept): (T, 512). ``backbone`` may name another torchvision
video ResNet (``r3d_18``, ``mc3_18``) with the same input.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avvp.infra.errors import ConfigError
from avvp.stages.extractors import register_extractor
from avvp.stages.extractors.base import KINETICS_MEAN, KINETICS_STD, Extractor, normalise_pixels, normaliser
from avvp.stages.extractors.frame2d import FPS, strip_classifier

VIDEO_BACKBONES = ("r2plus1d_18", "r3d_18", "mc3_18")


def squash_clips(frames: torch.Tensor, size: int, frames_per_clip: int = FPS) -> torch.Tensor:
    """(8T, H, W, 3) uint8 → (T, 3, 8, size, size) uint8, each frame resized without aspect."""
    from torchvision.transforms.v2 import functional as F

    x = F.resize(frames.permute(0, 3, 1, 2), [size, size], antialias=True)
    n = x.shape[0] // frames_per_clip
    x = x[: n * frames_per_clip].reshape(n, frames_per_clip, 3, size, size)
    return x.permute(0, 2, 1, 3, 4).contiguous()


@register_extractor("r2plus1d_18")
class R2Plus1DExtractor(Extractor):
    """One 512-d feature per second from an 8-frame clip (settings: backbone, weights, seed,
    size)."""

    role = "clip"
    defaults = {"extractor": "r2plus1d_18", "backbone": "r2plus1d_18", "weights": "none",
                "seed": 0, "size": 112}
    input_ndim = 5

    def __init__(self, settings, device="cpu", **options):
        backbone = dict(settings).get("backbone", self.defaults["backbone"])
        if backbone not in VIDEO_BACKBONES:
            raise ConfigError(f"features.clip.backbone: {backbone!r} is not one of "
                              f"{', '.join(VIDEO_BACKBONES)}")
        super().__init__(settings, device, **options)
        self._scale, self._shift = normaliser(KINETICS_MEAN, KINETICS_STD, 5, self.device)

    def weights_url(self) -> str | None:
        import torchvision

        return torchvision.models.get_model_weights(self.settings["backbone"]).KINETICS400_V1.url

    def build_model(self) -> nn.Module:
        import torchvision

        model = torchvision.models.get_model(self.settings["backbone"], weights=None)
        self.dim, self.head_prefixes = strip_classifier(model, self.settings["backbone"])
        return model

    def units_from(self, streams, path: str | Path, duration: float) -> torch.Tensor:
        frames = torch.from_numpy(streams.need_frames().frames)
        return squash_clips(frames, self.settings["size"])

    def prepare(self, units: torch.Tensor) -> torch.Tensor:
        return normalise_pixels(units, self._scale, self._shift)
