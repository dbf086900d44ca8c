"""VALOR's released checkpoints (``model_VALOR/``, ``model_VALOR+/``, ``model_VALOR++/``, each with
``checkpoint_best.pt``): the plain ``state_dict()`` of the official network.

The files are read by :func:`avvp.core.checkpoint.load_torch` (``torch.load(weights_only=True)``: no
object is unpickled). Every key and shape is checked against the model the sizes describe; the
sizes (width, layers, input sizes) identify the variant, whose declared input roles the model gets
(a state dict does not say which features it was trained on; the three published variants are
told apart by their sizes). The attention heads are not recorded in a state dict: 8, as all three
official recipes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from avvp.infra.errors import InputError
from avvp.core.valor.model import VALOR, VALORConfig
from avvp.core.valor.variants import VALOR_VARIANTS, identify, valor_variant

#: A key only VALOR's encoder has (HAN's encoder norms are ``hat_encoder.norm1/2``).
MARKER = "hat_encoder.final_norm_a.weight"
_LAYER = re.compile(r"^hat_encoder\.layers\.(\d+)\.")
#: Input size of the CLAP token map and of the CLIP embeddings.
TEACHER_DIM = 768


def is_valor_state(state: Mapping[str, Any]) -> bool:
    """Whether an official state dict is VALOR's (its encoder has ``final_norm_a``)."""
    return any(k.split("module.", 1)[-1] == MARKER for k in state)


def official_sizes(state: Mapping[str, torch.Tensor], source: str | Path | None = None) -> dict:
    """Sizes of a VALOR state dict: widths, layers and input sizes."""
    from avvp.core.checkpoint import official_sizes as han_sizes

    sizes = han_sizes(state, source, kind="VALOR")
    layers = {int(m.group(1)) for k in state if (m := _LAYER.match(k))}
    return {**sizes, "num_layers": max(layers) + 1}


def _roles(sizes: Mapping[str, int]) -> dict[str, str]:
    """The input roles of a released checkpoint: the published variants with 768-d inputs read
    the teachers' features (CLAP token map, CLIP embeddings); the others the standard ones."""
    return {"audio_role": "clap_audio" if sizes["audio_dim"] == TEACHER_DIM else "audio",
            "frame_role": "clip_image" if sizes["frame_dim"] == TEACHER_DIM else "frame"}


def check_variant(config: VALORConfig, expect: str | None, source: str | Path | None) -> str | None:
    """The published variant ``config`` is; InputError naming the file and both variants when
    ``expect`` is given and differs."""
    found = identify({"d_model": config.d_model, "num_layers": config.num_layers,
                      "audio_role": config.audio_role, "frame_role": config.frame_role})
    if expect is not None:
        want = valor_variant(expect)
        if found != expect:
            what = VALOR_VARIANTS[found].title if found else \
                f"no published variant (d {config.d_model}, {config.num_layers} layer(s), " \
                f"inputs {config.audio_role}/{config.frame_role})"
            raise InputError(source, f"a checkpoint of {what}, not of {want.title} as declared "
                                     f"({want.title}: d {want.d_model}, {want.num_layers} layer(s), "
                                     f"inputs {want.audio_role}/{want.frame_role})")
    return found


def convert_official(state: Mapping[str, torch.Tensor], source: str | Path | None = None,
                     expect: str | None = None, nhead: int = 8) -> tuple[VALORConfig, dict[str, torch.Tensor]]:
    """Check an official VALOR state dict key by key and shape by shape.

    Args:
        state: the state dict (a ``module.`` prefix from DataParallel is accepted).
        source: the file, for messages.
        expect: the declared variant (``valor``, ``valor_plus``, ``valor_pp``), or None.
        nhead: attention heads (8 in every official recipe).

    Returns:
        The model config and the state dict to load (float32 copies).

    Raises:
        InputError: missing or unexpected keys, wrong shapes, or another variant than declared,
            naming the file and the keys.
    """
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    sizes = official_sizes(state, source)
    try:
        config = VALORConfig(nhead=nhead, **sizes, **_roles(sizes))
    except ValueError as exc:
        raise InputError(source, f"not a usable VALOR checkpoint: {exc}") from None
    check_variant(config, expect, source)
    expected = VALOR.from_config(config).state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = ([f"missing key(s) {', '.join(missing)}"] if missing else []) + \
            ([f"unexpected key(s) {', '.join(unexpected)}"] if unexpected else [])
        raise InputError(source, "not a VALOR checkpoint: " + "; ".join(parts))
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(ref.shape)})"
             for k, ref in expected.items() if tuple(state[k].shape) != tuple(ref.shape)]
    if wrong:
        raise InputError(source, "not a VALOR checkpoint: wrong shape(s) " + "; ".join(wrong))
    return config, {k: state[k].detach().to(torch.float32).clone() for k in expected}


def load_official(path: str | Path, expect: str | None = None) -> VALOR:
    """Load a released ``checkpoint_best.pt`` into :class:`VALOR` (eval mode)."""
    from avvp.core.checkpoint import load_torch

    state = load_torch(path)
    if not (isinstance(state, Mapping) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise InputError(path, "not a VALOR checkpoint: expected a state dict of tensors")
    config, ours = convert_official(state, path, expect)
    model = VALOR.from_config(config)
    model.load_state_dict(ours)
    return model.eval()
