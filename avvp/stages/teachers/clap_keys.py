"""LAION-CLAP's original checkpoint (``630k-fusion-best.pt``) into transformers' ``ClapModel``.

The original file is a ``torch.save`` dict whose ``state_dict`` holds the CLAP module's tensors
(keys prefixed ``module.`` when saved from DistributedDataParallel). It is read with
``weights_only=True`` (no objects are unpickled). The keys are renamed:

====================================================  =================================================
original                                              transformers ``ClapModel``
====================================================  =================================================
``audio_branch.bn0.*``                                ``audio_model.audio_encoder.batch_norm.*``
``audio_branch.patch_embed.*`` (incl. fusion layers)  ``audio_model.audio_encoder.patch_embed.*``
``audio_branch.layers.i.blocks.j.norm1/norm2``        ``….layers.i.blocks.j.layernorm_before/after``
``audio_branch.layers.i.blocks.j.attn.qkv``           split in three: ``attention.self.query/key/value``
``….attn.relative_position_bias_table``               ``….attention.self.relative_position_bias_table``
``….attn.proj``                                       ``….attention.output.dense``
``….mlp.fc1`` / ``….mlp.fc2``                         ``….intermediate.dense`` / ``….output.dense``
``audio_branch.layers.i.downsample.*``, ``.norm``     same names under ``audio_model.audio_encoder``
``audio_projection.0/2``, ``text_projection.0/2``     ``audio_projection.linear1/2``, ``text_projection…``
``text_branch.*`` (RoBERTa)                           ``text_model.*``
``logit_scale_a``, ``logit_scale_t``                  same
====================================================  =================================================

Not used (the inference path never reads them): the torchlibrosa front end
(``spectrogram_extractor``, ``logmel_extractor``: the mel is computed with torchaudio), the
classification head (``tscam_conv``, ``head``), the training-only ``audio_transform`` /
``text_transform`` MLPs, and the buffers the model rebuilds (``attn_mask``,
``relative_position_index``, ``position_ids``, ``token_type_ids``,
``num_batches_tracked``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch

from avvp.infra.errors import InputError
from avvp.infra.weights import load_state_dict_file

ENCODER = "audio_model.audio_encoder."
SKIPPED = ("audio_branch.spectrogram_extractor.", "audio_branch.logmel_extractor.", "audio_branch.tscam_conv.",
           "audio_branch.head.", "audio_transform.", "text_transform.")
REBUILT = ("attn_mask", "relative_position_index", "position_ids", "token_type_ids", "num_batches_tracked")
_BLOCK = [("norm1.", "layernorm_before."), ("norm2.", "layernorm_after."),
          ("attn.relative_position_bias_table", "attention.self.relative_position_bias_table"),
          ("attn.proj.", "attention.output.dense."), ("mlp.fc1.", "intermediate.dense."),
          ("mlp.fc2.", "output.dense.")]
#: A key that only the fusion model has.
FUSION_KEY = "audio_branch.patch_embed.mel_conv2d.weight"


def rename(key: str) -> list[str] | None:
    """The ``ClapModel`` name(s) of an original key (three for a fused qkv), None if not used."""
    if key.startswith(SKIPPED) or key.rsplit(".", 1)[-1] in REBUILT:
        return None
    if key.startswith("text_branch."):
        return ["text_model." + key[len("text_branch."):]]
    for side in ("audio", "text"):
        m = re.fullmatch(rf"{side}_projection\.([02])\.(weight|bias)", key)
        if m:
            return [f"{side}_projection.linear{1 if m.group(1) == '0' else 2}.{m.group(2)}"]
    if key in ("logit_scale_a", "logit_scale_t"):
        return [key]
    if not key.startswith("audio_branch."):
        return [key]  # unknown: reported as unexpected
    rest = key[len("audio_branch."):]
    if rest.startswith("bn0."):
        return [ENCODER + "batch_norm." + rest[4:]]
    m = re.fullmatch(r"(layers\.\d+\.blocks\.\d+\.)(.*)", rest)
    if m:
        prefix, tail = m.groups()
        qkv = re.fullmatch(r"attn\.qkv\.(weight|bias)", tail)
        if qkv:
            return [f"{ENCODER}{prefix}attention.self.{part}.{qkv.group(1)}" for part in ("query", "key", "value")]
        for old, new in _BLOCK:
            if tail.startswith(old):
                return [ENCODER + prefix + new + tail[len(old):]]
    return [ENCODER + rest]


def convert(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original state dict renamed for ``ClapModel`` (qkv split into three equal parts)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        names = rename(key)
        if names is None:
            continue
        parts = value.chunk(len(names), dim=0) if len(names) > 1 else (value,)
        out.update(zip(names, parts))
    return out


def read_laion_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """An original LAION-CLAP fusion checkpoint, checked and renamed for ``ClapModel``.

    Raises:
        InputError: the file is not a LAION-CLAP checkpoint, is a non-fusion one, or its text
            tower does not fit its audio tower (projection sizes).
    """
    state = load_state_dict_file(path)
    if not any(k.startswith("audio_branch.") for k in state):
        kind = "a CLIP checkpoint" if any(k.startswith(("visual.", "vision_model.")) for k in state) else \
            "not a LAION-CLAP checkpoint"
        raise InputError(path, f"CLAP weights: {kind} (no audio_branch tensors)")
    if FUSION_KEY not in state:
        raise InputError(path, "CLAP weights: a non-fusion LAION-CLAP checkpoint (no fusion layers); VALOR's "
                               "teacher is 630k-fusion-best.pt (CLAP_Module(enable_fusion=True))")
    text_w, audio_w = state.get("text_projection.2.weight"), state.get("audio_projection.2.weight")
    if text_w is None or audio_w is None or text_w.shape[0] != audio_w.shape[0]:
        raise InputError(path, "text-encoder mismatch: the checkpoint's text projection "
                               f"{None if text_w is None else tuple(text_w.shape)} does not reach the audio "
                               f"embedding space {None if audio_w is None else tuple(audio_w.shape)}")
    return convert(state)


def load_converted(model: torch.nn.Module, converted: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Load a renamed checkpoint into ``model``; InputError naming the file when layers differ."""
    own = model.state_dict()
    missing = sorted(k for k in own if k not in converted and k.rsplit(".", 1)[-1] not in REBUILT)
    unexpected = sorted(k for k in converted if k not in own)
    shapes = sorted(f"{k} {tuple(converted[k].shape)} != {tuple(own[k].shape)}"
                    for k in converted if k in own and converted[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {name} (e.g. {', '.join(v[:3])})" for name, v in
                 (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)) if v]
        raise InputError(path, "CLAP weights do not fit HTS-AT-tiny fusion + RoBERTa-base: " + "; ".join(parts))
    model.load_state_dict(converted, strict=False)
