"""The three published VALOR variants: sizes, input roles, learning rates and official seeds.

They differ only in input features, model size, learning rate and seed; all three train with the
same CLIP and CLAP segment-level pseudo labels, AdamW (betas 0.5/0.999, weight decay 1e-3), a
10-epoch warm-up then cosine decay over 60 epochs, gradient clipping at norm 1.0 and batch 64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from avvp.infra.errors import ConfigError


@dataclass(frozen=True)
class ValorVariant:
    """One published VALOR variant.

    Attributes:
        name: the avvp registry name (``valor``, ``valor_plus``, ``valor_pp``).
        title: the paper's name.
        d_model, nhead, dim_feedforward, num_layers: the encoder.
        audio_role, frame_role: the feature roles of the audio and 2-D visual inputs.
        lr_max, lr_min: the peak and final learning rates.
        official_seed: the ``--seed`` of the official training script.
        release_folder: the folder of the released weights (``<folder>/checkpoint_best.pt``).
    """

    name: str
    title: str
    d_model: int
    num_layers: int
    audio_role: str
    frame_role: str
    lr_max: float
    lr_min: float
    official_seed: int
    release_folder: str
    nhead: int = 8
    dim_feedforward: int = 1024

    def model_settings(self) -> dict[str, Any]:
        """The ``model`` section of this variant's recipe."""
        return {"arch": "valor", "d_model": self.d_model, "nhead": self.nhead,
                "dim_feedforward": self.dim_feedforward, "num_layers": self.num_layers,
                "dropout": 0.1, "audio_role": self.audio_role, "frame_role": self.frame_role}

    def sizes(self) -> dict[str, Any]:
        """What a checkpoint of this variant must have (input roles imply 768-d CLAP/CLIP inputs)."""
        return {"d_model": self.d_model, "num_layers": self.num_layers, "audio_role": self.audio_role,
                "frame_role": self.frame_role}


VALOR_VARIANTS: dict[str, ValorVariant] = {
    "valor": ValorVariant("valor", "VALOR", 512, 1, "audio", "frame", 1e-4, 1e-6, 1000, "model_VALOR"),
    "valor_plus": ValorVariant("valor_plus", "VALOR+", 256, 4, "audio", "frame", 3e-4, 3e-6, 64, "model_VALOR+"),
    "valor_pp": ValorVariant("valor_pp", "VALOR++", 256, 4, "clap_audio", "clip_image", 3e-4, 3e-6, 87,
                             "model_VALOR++"),
}

#: The training recipe common to the three variants (besides the learning rates).
COMMON_TRAIN: dict[str, Any] = {  # settings: a recipe (overrides of the defaults), not defaults
    "epochs": 60, "batch_size": 64, "optimizer": "adamw", "betas": [0.5, 0.999], "eps": 1e-8,
    "weight_decay": 1e-3, "schedule": "warmup_cosine", "warmup_epochs": 10, "clip_grad_norm": 1.0,
    "loss": "valor", "select": "best", "select_metric": "segment_type", "select_ties": "earlier",
    "gate": "han",
    "alias_global": False,  # with refined labels (valor_ma) the video-level target stays the weak label
}


def valor_variant(name: str) -> ValorVariant:
    """The published variant ``name``; ConfigError naming the known ones."""
    try:
        return VALOR_VARIANTS[name]
    except KeyError:
        raise ConfigError(f"unknown VALOR variant {name!r} (known: {', '.join(VALOR_VARIANTS)})") from None


def valor_recipe(name: str, denoise: str | None = None) -> dict[str, dict[str, Any]]:
    """The registry recipe (``model``, ``train``, ``evaluate`` overrides) of variant ``name``;
    ``denoise``: a dynamic label-denoising method (``jomold``) acting on the pseudo labels."""
    v = valor_variant(name)
    train = {**COMMON_TRAIN, "lr": v.lr_max, "lr_min": v.lr_min}
    if denoise is not None:
        train["denoise"] = {"method": denoise}
    return {"model": v.model_settings(), "train": train, "evaluate": {"gate": "han"}}


def identify(sizes: Mapping[str, Any]) -> str | None:
    """The published variant whose sizes these are, or None."""
    for name, v in VALOR_VARIANTS.items():
        if all(sizes.get(k) == want for k, want in v.sizes().items()):
            return name
    return None
