"""The official HAN model (hybrid attention network) with attentive multimodal MIL pooling.

Only the modules the official forward pass uses are built, so with the official feature sizes the
model has exactly 4,569,675 parameters (the official ``MMIL_Net`` also builds dead encoders; see
:mod:`avvp.core.checkpoint` for loading its state dicts). One HAN layer (one set of weights) serves
both modalities, and both calls read the original embeddings. There is no positional encoding,
so the model works for any number of segments T.

JoMoLD uses the same modules with two switches, both off for HAN and MA:
``cross_attention`` (JoMoLD's ``with_ca`` switch: without it, the HAN layer skips its
cross-modal attention, so the audio probabilities depend on the audio input alone and the visual
ones on the visual inputs alone; :meth:`HAN.forward` also takes it per call) and
``visual_dropout`` (dropout on the post-HAN visual features before the heads, in training
only). Neither adds a parameter, so a JoMoLD state dict loads into this model unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

#: Feature sizes of the official extractors: VGGish, ResNet-152 frames, R(2+1)D-18 clips.
OFFICIAL_DIMS = {"audio_dim": 128, "frame_dim": 2048, "clip_dim": 512}


def check_config(config: Any, booleans: tuple[str, ...], fractions: tuple[str, ...],
                 choices: Mapping[str, tuple[str, ...]] | None = None) -> None:
    """Check a model config dataclass: ``booleans`` true or false, ``fractions`` in [0, 1),
    ``choices`` among their allowed values, every other field a positive integer, and
    ``d_model`` divisible by ``nhead``. Raises ValueError naming the field."""
    choices = choices or {}
    for f in fields(config):
        value = getattr(config, f.name)
        if f.name in booleans:
            if not isinstance(value, bool):
                raise ValueError(f"model {f.name} = {value!r} must be true or false")
        elif f.name in fractions:
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"model {f.name} = {value!r} must be in [0, 1)")
        elif f.name in choices:
            if value not in choices[f.name]:
                raise ValueError(f"model {f.name} = {value!r} (allowed: {', '.join(choices[f.name])})")
        elif isinstance(value, bool) or int(value) < 1:
            raise ValueError(f"model {f.name} = {value!r} must be a positive integer")
    if config.d_model % config.nhead:
        raise ValueError(f"model d_model = {config.d_model} is not divisible by nhead = {config.nhead}")


@dataclass
class HANConfig:
    """Sizes of a HAN model (all constructor arguments of :class:`HAN`).

    Attributes:
        audio_dim, frame_dim, clip_dim: input feature sizes per segment.
        n_classes: number of event classes.
        d_model: embedding width (512 official).
        nhead: attention heads (1 official).
        dim_feedforward: hidden width of the HAN feed-forward block (512 official).
        dropout: dropout of the HAN layer (attention weights, residual branches, feed-forward).
        standardize: standardise each input feature dimension with statistics stored in the model
            (buffers set by :meth:`HAN.set_input_stats` from the training features). Not in the
            official model (False); for features whose scale is far from the official ones, such
            as those of randomly initialised extractors.
        cross_attention: the default of :meth:`HAN.forward`'s ``with_ca`` (True: HAN, MA,
            JoMoLD's final model; False: JoMoLD's noise estimator).
        visual_dropout: dropout probability on the post-HAN visual features before the heads
            (0: HAN, MA; 0.5: JoMoLD).
    """

    audio_dim: int = 128
    frame_dim: int = 2048
    clip_dim: int = 512
    n_classes: int = 25
    d_model: int = 512
    nhead: int = 1
    dim_feedforward: int = 512
    dropout: float = 0.1
    standardize: bool = False
    cross_attention: bool = True
    visual_dropout: float = 0.0

    def __post_init__(self) -> None:
        check_config(self, ("standardize", "cross_attention"), ("dropout", "visual_dropout"))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HANOutput:
    """What :meth:`HAN.forward` returns.

    Attributes:
        global_prob: (B, C) video-level probability over both modalities.
        a_prob: (B, C) video-level audio probability.
        v_prob: (B, C) video-level visual probability.
        frame_prob: (B, T, 2, C) segment probabilities; axis 2: 0 = audio, 1 = visual.
        a_feat: (B, T, d) audio features after the HAN layer.
        v_feat_pre: (B, T, d) visual features before the HAN layer (the fc_fusion output).
        v_feat: (B, T, d) visual features after the HAN layer, before the visual dropout
            (JoMoLD's contrastive term).
    """

    global_prob: torch.Tensor
    a_prob: torch.Tensor
    v_prob: torch.Tensor
    frame_prob: torch.Tensor
    a_feat: torch.Tensor
    v_feat_pre: torch.Tensor
    v_feat: torch.Tensor | None = None

    def float(self) -> "HANOutput":
        """The same output in float32 (after a bfloat16 autocast forward pass)."""
        return type(self)(*(None if getattr(self, f.name) is None else getattr(self, f.name).float()
                             for f in fields(self)))


class HANLayer(nn.Module):
    """One hybrid attention layer: ``LN2(h + FFN(h))`` with ``h = LN1(q + cross(q, k) + self(q))``.

    Inputs and outputs are batch-first (B, T, d). Module names follow the official layer so
    state dicts map one to one.
    """

    def __init__(self, d_model: int = 512, nhead: int = 1, dim_feedforward: int = 512,
                 dropout: float = 0.1):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.cm_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout11 = nn.Dropout(dropout)
        self.dropout12 = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, other: torch.Tensor, with_ca: bool = True) -> torch.Tensor:
        """Attend from ``query`` (B, T, d) to itself and (``with_ca``) to the other modality
        ``other`` (B, T', d). Without cross-attention: ``h = LN1(q + self(q))`` (JoMoLD)."""
        if with_ca:
            cross = self.cm_attn(query, other, other, need_weights=False)[0]
            self_ = self.self_attn(query, query, query, need_weights=False)[0]
            h = self.norm1(query + self.dropout11(cross) + self.dropout12(self_))
        else:
            self_ = self.self_attn(query, query, query, need_weights=False)[0]
            h = self.norm1(query + self.dropout12(self_))
        ffn = self.linear2(self.dropout1(F.relu(self.linear1(h))))
        return self.norm2(h + self.dropout2(ffn))


class InputStandardizer:
    """Per-dimension input standardisation with statistics kept in buffers ``<role>_mean`` /
    ``<role>_std`` (registered by the model when its ``config.standardize`` is true)."""

    def _register_input_stats(self, dims: Mapping[str, int]) -> None:
        for role, dim in dims.items():  # buffers, not parameters: parameter counts are unchanged
            self.register_buffer(f"{role}_mean", torch.zeros(dim))
            self.register_buffer(f"{role}_std", torch.ones(dim))

    @torch.no_grad()
    def set_input_stats(self, **features: torch.Tensor) -> None:
        """Set the standardisation buffers from training features, e.g. ``audio=(N, T, D)``.

        Frame features may be the pooled (N, T, D) or the per-frame rows: standardisation is
        per dimension, so it commutes with the mean over the 8 frames of a segment.
        """
        if not self.config.standardize:
            raise ValueError("this model was built with standardize = False")
        for role, x in features.items():
            flat = x.reshape(-1, x.shape[-1]).to(torch.float64)
            mean, std = flat.mean(dim=0), flat.std(dim=0, unbiased=False)
            getattr(self, f"{role}_mean").copy_(mean.float())
            getattr(self, f"{role}_std").copy_(std.clamp_min(1e-6).float())

    def _standardize(self, role: str, x: torch.Tensor) -> torch.Tensor:
        if not self.config.standardize:
            return x
        return (x - getattr(self, f"{role}_mean")) / getattr(self, f"{role}_std")


class HAN(InputStandardizer, nn.Module):
    """HAN with attentive multimodal MIL pooling, as the official ``MMIL_Net`` computes it.

    Args:
        audio_dim, frame_dim, clip_dim, n_classes, d_model, nhead, dim_feedforward, dropout,
            standardize, cross_attention, visual_dropout: see :class:`HANConfig`.
    """

    ROLES = ("audio", "frame", "clip")

    def __init__(self, audio_dim: int = 128, frame_dim: int = 2048, clip_dim: int = 512,
                 n_classes: int = 25, d_model: int = 512, nhead: int = 1,
                 dim_feedforward: int = 512, dropout: float = 0.1, standardize: bool = False,
                 cross_attention: bool = True, visual_dropout: float = 0.0):
        super().__init__()
        self.config = HANConfig(audio_dim, frame_dim, clip_dim, n_classes, d_model, nhead,
                                dim_feedforward, dropout, standardize, cross_attention, visual_dropout)
        # Construction order as in the official model (it decides the default initialisation).
        self.fc_prob = nn.Linear(d_model, n_classes)
        self.fc_frame_att = nn.Linear(d_model, n_classes)
        self.fc_av_att = nn.Linear(d_model, n_classes)
        self.fc_a = nn.Linear(audio_dim, d_model)
        self.fc_v = nn.Linear(frame_dim, d_model)
        self.fc_st = nn.Linear(clip_dim, d_model)
        self.fc_fusion = nn.Linear(2 * d_model, d_model)
        self.han = HANLayer(d_model, nhead, dim_feedforward, dropout)
        if visual_dropout > 0:  # JoMoLD's Dropout(0.5) (no parameters; HAN and MA build none)
            self.dropout = nn.Dropout(visual_dropout)
        if standardize:  # buffers, not parameters: the parameter count stays the official one
            self._register_input_stats(dict(zip(self.ROLES, (audio_dim, frame_dim, clip_dim))))

    @classmethod
    def from_config(cls, config: HANConfig | dict) -> "HAN":
        """Build a model from a :class:`HANConfig` or its dict."""
        if isinstance(config, dict):
            config = HANConfig(**config)
        return cls(**config.to_dict())

    def forward(self, audio: torch.Tensor, frame: torch.Tensor, clip: torch.Tensor,
                with_ca: bool | None = None) -> HANOutput:
        """Run the model.

        Args:
            audio: (B, T, audio_dim).
            frame: (B, T, frame_dim), already pooled to one row per segment; an input with k·T
                rows (the official 8 frames per segment) is pooled here after ``fc_v``.
            clip: (B, T, clip_dim).
            with_ca: use the cross-modal attention (None: ``config.cross_attention``).

        Returns:
            :class:`HANOutput`.
        """
        b, t = audio.shape[:2]
        if clip.shape[:2] != (b, t):
            raise ValueError(f"clip features have shape {tuple(clip.shape)}, expected ({b}, {t}, D)")
        if frame.shape[0] != b or frame.shape[1] % t:
            raise ValueError(f"frame features have shape {tuple(frame.shape)}, expected ({b}, k*{t}, D)")
        audio, frame, clip = (self._standardize(r, x) for r, x in zip(self.ROLES, (audio, frame, clip)))
        x_a = self.fc_a(audio)
        v = self.fc_v(frame)
        if v.shape[1] != t:
            v = v.reshape(b, t, v.shape[1] // t, v.shape[2]).mean(dim=2)
        x_v = self.fc_fusion(torch.cat([v, self.fc_st(clip)], dim=-1))

        # One call for both modalities (the same layer): a' = L(x_a, x_v), v' = L(x_v, x_a).
        with_ca = self.config.cross_attention if with_ca is None else with_ca
        han = self.han(torch.cat([x_a, x_v]), torch.cat([x_v, x_a]), with_ca)
        a_han, v_han = han[:b], han[b:]
        v_heads = self.dropout(v_han) if self.config.visual_dropout > 0 else v_han
        x = torch.stack([a_han, v_heads], dim=2)  # (B, T, 2, d)

        global_prob, a_prob, v_prob, frame_prob, _ = mmil_pool(self, x)
        return HANOutput(global_prob, a_prob, v_prob, frame_prob, a_han, x_v, v_han)


def mmil_pool(heads: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Attentive multimodal MIL pooling over ``x`` (B, T, 2, d) with the heads ``fc_prob``,
    ``fc_frame_att`` and ``fc_av_att`` of ``heads``.

    Returns:
        ``(global_prob, a_prob, v_prob, frame_prob, frame_logits)``: (B, C) three times, then
        (B, T, 2, C) twice (``frame_prob = sigmoid(frame_logits)``).
    """
    logits = heads.fc_prob(x)
    frame_prob = torch.sigmoid(logits)  # (B, T, 2, C)
    time_att = torch.softmax(heads.fc_frame_att(x), dim=1)
    modality_att = torch.softmax(heads.fc_av_att(x), dim=2)
    pooled = time_att * frame_prob
    global_prob = (modality_att * pooled).sum(dim=2).sum(dim=1)
    a_prob = pooled[:, :, 0].sum(dim=1)
    v_prob = pooled[:, :, 1].sum(dim=1)
    return global_prob, a_prob, v_prob, frame_prob, logits


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())
