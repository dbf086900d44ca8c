"""Per-frame features from a 2-D image backbone (official: torchvision ResNet-152, 2048-d).

The clip is sampled at 8 frames per second (what ``ffmpeg -r 8`` outputs, then 8T frames picked
evenly: the official choice). Each frame is resized so that its shorter side is ``size`` (aspect
kept, antialiased bilinear), centre-cropped to ``crop`` × ``crop`` (``crop: null`` keeps the whole
resized frame), scaled to [0, 1] and normalised
with the backbone's mean and std (ImageNet for torchvision). The classifier is removed, so the
output is the globally pooled feature: (8T, D), D = 2048 for ResNet-152.

``backbone`` is any torchvision classification model name (``resnet152``, ``resnet18``,
``mobilenet_v3_small``, ...) or any timm model name; ``tv:<name>`` / ``timm:<name>`` force the
library.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from avvp.infra.errors import ConfigError
from avvp.stages.extractors import register_extractor
from avvp.stages.extractors.base import IMAGENET_MEAN, IMAGENET_STD, Extractor, normalise_pixels, normaliser

FPS = 8


def _torchvision_names() -> set[str]:
    import torchvision

    return set(torchvision.models.list_models(module=torchvision.models))


def resolve_backbone(name: str) -> tuple[str, str]:
    """(library, model name) for a backbone name; raises ConfigError for an unknown one.

    timm is imported only for a name that is not a torchvision model (it takes a second)."""
    if name.startswith("tv:"):
        lib, bare = "torchvision", name[3:]
    elif name.startswith("timm:"):
        lib, bare = "timm", name[5:]
    elif name in _torchvision_names():
        return "torchvision", name
    else:
        lib, bare = "timm", name
    if lib == "torchvision":
        if bare not in _torchvision_names():
            raise ConfigError(f"features.frame.backbone: no torchvision classification model {bare!r}")
        return lib, bare
    import timm

    if not timm.is_model(bare):
        if name.startswith("timm:"):
            raise ConfigError(f"features.frame.backbone: no timm model {bare!r}")
        raise ConfigError(f"features.frame.backbone: {name!r} is neither a torchvision nor a timm model")
    return lib, bare


def strip_classifier(model: nn.Module, name: str) -> tuple[int, tuple[str, ...]]:
    """Replace a torchvision model's final Linear classifier by an identity.

    Returns:
        (pooled feature size, state-dict prefixes of the removed layer).
    """
    for attr in ("fc", "head", "classifier", "heads"):
        module = getattr(model, attr, None)
        if isinstance(module, nn.Linear):
            setattr(model, attr, nn.Identity())
            return module.in_features, (f"{attr}.",)
        if isinstance(module, nn.Sequential):
            linears = [k for k, m in module.named_children() if isinstance(m, nn.Linear)]
            if linears:
                last = linears[-1]
                dim = getattr(module, last).in_features
                setattr(module, last, nn.Identity())
                return dim, (f"{attr}.{last}.",)
    raise ConfigError(f"features.frame.backbone: cannot find the classifier of {name!r}")


def crop_frames(frames: torch.Tensor, size: int, crop: int | None) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, crop, crop) uint8: shorter side to ``size``, centre crop
    (``crop=None``: no crop, the whole resized frame)."""
    from torchvision.transforms.v2 import functional as F

    x = frames.permute(0, 3, 1, 2)
    x = F.resize(x, [size], antialias=True)
    if crop is not None:
        x = F.center_crop(x, [crop, crop])
    return x.contiguous()


@register_extractor("frame2d")
@register_extractor("resnet152")
class Frame2DExtractor(Extractor):
    """One pooled feature per frame at 8 fps from a 2-D backbone (settings: backbone, weights,
    seed, size, crop)."""

    role = "frame"
    defaults = {"extractor": "resnet152", "backbone": "resnet152", "weights": "none", "seed": 0,
                "size": 256, "crop": 224}
    units_per_second = FPS

    def __init__(self, settings, device="cpu", **options):
        self._lib, self._name = resolve_backbone(dict(settings).get("backbone", self.defaults["backbone"]))
        super().__init__(settings, device, **options)
        if self.settings["crop"] is not None and self.settings["crop"] > self.settings["size"]:
            raise ConfigError(f"features.frame: crop {self.settings['crop']} is larger than "
                              f"size {self.settings['size']}")
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if self._lib == "timm":
            cfg = self.model.pretrained_cfg
            mean, std = tuple(cfg.get("mean", mean)), tuple(cfg.get("std", std))
        self._scale, self._shift = normaliser(mean, std, 4, self.device)

    def weights_url(self) -> str | None:
        if self._lib == "torchvision":
            import torchvision

            enum = torchvision.models.get_model_weights(self._name)
            chosen = getattr(enum, "IMAGENET1K_V1", None) or enum.DEFAULT
            return chosen.url
        import timm

        cfg = timm.models.get_pretrained_cfg(self._name)
        if cfg is None:
            return None
        return getattr(cfg, "url", None) or None

    def build_model(self) -> nn.Module:
        if self._lib == "torchvision":
            import torchvision

            model = torchvision.models.get_model(self._name, weights=None)
            self.dim, self.head_prefixes = strip_classifier(model, self._name)
            return model
        import timm

        model = timm.create_model(self._name, pretrained=False, num_classes=0)
        self.dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
        head = model.pretrained_cfg.get("classifier") or "head"
        self.head_prefixes = tuple(f"{h}." for h in ((head,) if isinstance(head, str) else head))
        return model

    def units_from(self, streams, path: str | Path, duration: float) -> torch.Tensor:
        frames = torch.from_numpy(streams.need_frames().frames)
        return crop_frames(frames, self.settings["size"], self.settings["crop"])

    def prepare(self, units: torch.Tensor) -> torch.Tensor:
        return normalise_pixels(units, self._scale, self._shift)
