"""The VALOR model: HAN's MMIL network with a configurable, sequential, multi-layer encoder.

Differences from :class:`avvp.core.model.HAN`:

* width, heads, feed-forward width and the number of layers are configurable (VALOR 512/8/1024/1,
  VALOR+ and VALOR++ 256/8/1024/4); the layer is built once and deep-copied, so all layers start
  with identical weights;
* the encoder is **sequential**: in each layer the audio stream is updated first,
  ``a <- H(a, v)``, then the visual stream attends to the *updated* audio, ``v <- H(v, a)``
  (HAN updates both from the original streams);
* the forward pass also returns the segment logits (the pseudo-label loss needs them);
* the input branch of each stream is chosen by the declared feature **role** of its store, never
  by array shapes: audio ``audio`` (one row per segment, e.g. VGGish) or ``clap_audio`` (CLAP's
  64-token map: 2 frequency halves x 32 time steps of 768 channels, upsampled bicubically in time
  to 1024 steps, projected, averaged over the halves and pooled to the segments); 2-D visual
  ``frame`` (ResNet frames; 8 rows per segment are averaged after the projection, or the pooled
  store's one row per segment) or ``clip_image`` (one CLIP embedding per segment, no pooling).

State-dict keys follow the official network, so the released checkpoints load
(:mod:`avvp.core.valor.checkpoint`): ``fc_prob``, ``fc_frame_att``, ``fc_av_att``, ``fc_a``, ``fc_v``,
``fc_st``, ``fc_fusion``, ``hat_encoder.layers.<i>.{self_attn,cm_attn,linear1,linear2,norm1,norm2}``
and ``hat_encoder.final_norm_{a,v}`` (built but unused: the official code applies them only in a
pre-norm mode no recipe uses).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from avvp.core.model import HANLayer, HANOutput, InputStandardizer, check_config, mmil_pool

#: The roles a VALOR input stream may read, per slot (the first is the standard one).
AUDIO_ROLES = ("audio", "clap_audio")
FRAME_ROLES = ("frame", "clip_image")
#: CLAP token map layout: frequency halves x time steps.
CLAP_GRID = (2, 32)
#: Time steps the CLAP map is upsampled to before it is pooled to segments.
CLAP_UPSAMPLE = 1024
ARCH = "valor"


@dataclass
class VALORConfig:
    """Sizes and input roles of a VALOR model (the constructor arguments of :class:`VALOR`).

    Attributes:
        audio_dim, frame_dim, clip_dim: input feature sizes (768 for CLAP and CLIP).
        n_classes: event classes.
        d_model, nhead, dim_feedforward, num_layers: encoder width, heads, FFN width, layers.
        dropout: dropout of the layers (attention weights, residual branches, feed-forward).
        standardize: standardise each input dimension with training statistics kept in buffers
            (not in the official model; for the demo's randomly initialised extractors).
        audio_role: ``audio`` (one row per segment) or ``clap_audio`` (CLAP token map).
        frame_role: ``frame`` (ResNet frames) or ``clip_image`` (CLIP embeddings).
    """

    audio_dim: int = 128
    frame_dim: int = 2048
    clip_dim: int = 512
    n_classes: int = 25
    d_model: int = 512
    nhead: int = 8
    dim_feedforward: int = 1024
    num_layers: int = 1
    dropout: float = 0.1
    standardize: bool = False
    audio_role: str = "audio"
    frame_role: str = "frame"

    def __post_init__(self) -> None:
        check_config(self, ("standardize",), ("dropout",), {"audio_role": AUDIO_ROLES, "frame_role": FRAME_ROLES})

    def to_dict(self) -> dict:
        return {"arch": ARCH, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "VALORConfig":
        d = dict(d)
        arch = d.pop("arch", ARCH)
        if arch != ARCH:
            raise ValueError(f"model arch = {arch!r} is not {ARCH!r}")
        return cls(**d)

    def roles(self) -> dict[str, str]:
        """Input slot -> feature role (store) it reads."""
        return {"audio": self.audio_role, "frame": self.frame_role, "clip": "clip"}


@dataclass
class VALOROutput(HANOutput):
    """:class:`avvp.core.model.HANOutput` plus ``frame_logits`` (B, T, 2, C), whose sigmoid is
    ``frame_prob``."""

    frame_logits: torch.Tensor | None = None


def pool_windows(length: int, n_out: int) -> list[tuple[int, int]]:
    """The input windows ``[start, end)`` of ``adaptive_avg_pool1d(length -> n_out)``: output t
    averages positions ``floor(t L / n)`` .. ``ceil((t + 1) L / n) - 1`` (neighbours may share one)."""
    return [((t * length) // n_out, ((t + 1) * length + n_out - 1) // n_out) for t in range(n_out)]


class _SegmentPool(torch.autograd.Function):
    """``F.adaptive_avg_pool1d`` with a deterministic backward.

    The forward is the official op itself. Its CUDA backward adds into the shared positions of
    overlapping windows with atomics, which ``torch.use_deterministic_algorithms(True)``
    refuses (``adaptive_avg_pool2d_backward_cuda``), so VALOR++ could not train on a GPU with
    ``train.deterministic``. Here each window's share ``g_t / n_t`` is added window after
    window, in the CPU kernel's order and with no atomics: the gradient equals the CPU kernel's,
    bit for bit (with L >= n a position lies in at most two windows, so it is also the float any
    order of the CUDA atomics gives).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, n_out: int) -> torch.Tensor:
        ctx.length = x.shape[-1]
        return F.adaptive_avg_pool1d(x, n_out)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        out = grad.new_zeros(*grad.shape[:-1], ctx.length)
        for t, (start, end) in enumerate(pool_windows(ctx.length, grad.shape[-1])):
            out[..., start:end] += (grad[..., t] / (end - start)).unsqueeze(-1)
        return out, None


def segment_pool(x: torch.Tensor, n_out: int) -> torch.Tensor:
    """(B, d, L) -> (B, d, n_out) by ``adaptive_avg_pool1d``, usable in training on CUDA with
    deterministic algorithms (see :class:`_SegmentPool`)."""
    return _SegmentPool.apply(x, n_out)


class VALOREncoder(nn.Module):
    """``num_layers`` deep copies of one layer (identical initial weights), applied sequentially."""

    def __init__(self, layer: nn.Module, num_layers: int, d_model: int):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.final_norm_a = nn.LayerNorm(d_model)  # unused (post-norm), kept for the key layout
        self.final_norm_v = nn.LayerNorm(d_model)

    def forward(self, a: torch.Tensor, v: torch.Tensor, with_ca: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            a = layer(a, v, with_ca)
            v = layer(v, a, with_ca)  # the updated audio stream
        return a, v


class VALOR(InputStandardizer, nn.Module):
    """VALOR / VALOR+ / VALOR++ (see the module docstring); arguments as :class:`VALORConfig`."""

    ROLES = ("audio", "frame", "clip")

    def __init__(self, audio_dim: int = 128, frame_dim: int = 2048, clip_dim: int = 512,
                 n_classes: int = 25, d_model: int = 512, nhead: int = 8, dim_feedforward: int = 1024,
                 num_layers: int = 1, dropout: float = 0.1, standardize: bool = False,
                 audio_role: str = "audio", frame_role: str = "frame"):
        super().__init__()
        self.config = VALORConfig(audio_dim, frame_dim, clip_dim, n_classes, d_model, nhead,
                                  dim_feedforward, num_layers, dropout, standardize, audio_role, frame_role)
        # Construction order as in the official network (it decides the default initialisation).
        self.fc_prob = nn.Linear(d_model, n_classes)
        self.fc_frame_att = nn.Linear(d_model, n_classes)
        self.fc_av_att = nn.Linear(d_model, n_classes)
        self.fc_a = nn.Linear(audio_dim, d_model)
        self.fc_v = nn.Linear(frame_dim, d_model)
        self.fc_st = nn.Linear(clip_dim, d_model)
        self.fc_fusion = nn.Linear(2 * d_model, d_model)
        self.hat_encoder = VALOREncoder(HANLayer(d_model, nhead, dim_feedforward, dropout), num_layers, d_model)
        if standardize:
            self._register_input_stats(dict(zip(self.ROLES, (audio_dim, frame_dim, clip_dim))))

    @classmethod
    def from_config(cls, config: VALORConfig | dict) -> "VALOR":
        if isinstance(config, dict):
            config = VALORConfig.from_dict(config)
        return cls(**asdict(config))

    def embed_audio(self, audio: torch.Tensor, n_segments: int,
                    audio_windows: Sequence[int] | None = None) -> torch.Tensor:
        """(B, T, d) audio embeddings from the audio input of the configured role.

        ``audio_windows`` (``clap_audio`` only): the input holds one 64-token map per window of a
        longer video, in order, and window k is pooled to ``audio_windows[k]`` segments (they sum
        to T); ``avvp parse`` embeds a video window by window like this.
        """
        if self.config.audio_role == "audio":
            if audio.shape[1] != n_segments:
                raise ValueError(f"audio features have {audio.shape[1]} rows, expected {n_segments} segments")
            return self.fc_a(audio)
        tokens = CLAP_GRID[0] * CLAP_GRID[1]
        if audio_windows is not None:
            if sum(audio_windows) != n_segments or audio.shape[1] != tokens * len(audio_windows):
                raise ValueError(f"clap_audio features have {audio.shape[1]} rows for windows of "
                                 f"{list(audio_windows)} segments; expected {tokens} rows per window "
                                 f"and {n_segments} segments in all")
            return torch.cat([self.embed_audio(audio[:, k * tokens:(k + 1) * tokens], t)
                              for k, t in enumerate(audio_windows)], dim=1)
        b, rows, dim = audio.shape
        halves, steps = CLAP_GRID
        if rows != tokens:
            raise ValueError(f"clap_audio features have {rows} rows, expected {tokens} tokens")
        grid = audio.transpose(1, 2).reshape(b, dim, halves, steps)          # row f*32+j -> (f, j)
        up = F.interpolate(grid, size=(halves, CLAP_UPSAMPLE), mode="bicubic", align_corners=False)
        x = self.fc_a(up.permute(0, 2, 3, 1)).mean(dim=1)                    # (B, 1024, d)
        return segment_pool(x.transpose(1, 2), n_segments).transpose(1, 2)

    def embed_frames(self, frame: torch.Tensor, n_segments: int) -> torch.Tensor:
        """(B, T, d) 2-D visual embeddings from the frame input of the configured role."""
        b, rows = frame.shape[:2]
        v = self.fc_v(frame)
        if self.config.frame_role == "clip_image":
            if rows != n_segments:
                raise ValueError(f"clip_image features have {rows} rows, expected {n_segments} segments")
            return v
        if rows % n_segments:
            raise ValueError(f"frame features have {rows} rows, expected a multiple of {n_segments}")
        if rows != n_segments:
            v = v.reshape(b, n_segments, rows // n_segments, v.shape[2]).mean(dim=2)
        return v

    def forward(self, audio: torch.Tensor, frame: torch.Tensor, clip: torch.Tensor,
                with_ca: bool = True, audio_windows: Sequence[int] | None = None) -> VALOROutput:
        """Run the model.

        Args:
            audio: (B, T, audio_dim), or (B, 64, 768) for ``clap_audio``.
            frame: (B, k*T, frame_dim) for ``frame`` (k = 1: pooled, 8: official frames), or
                (B, T, 768) for ``clip_image``.
            clip: (B, T, clip_dim); T (the segments) is taken from it.
            with_ca: use the cross-modal attention (always, in VALOR's recipes; JoMoLD's label
                denoising ranks labels with it off, see ``valor_jomold``).
            audio_windows: ``clap_audio`` only: segments per window when ``audio`` holds one
                64-token map per window (see :meth:`embed_audio`).

        Returns:
            :class:`VALOROutput` (``a_feat``/``v_feat``: the encoder outputs; ``v_feat_pre``: the
            fused visual input).
        """
        b, t = clip.shape[:2]
        if audio.shape[0] != b or frame.shape[0] != b:
            raise ValueError(f"batch sizes differ: audio {audio.shape[0]}, frame {frame.shape[0]}, clip {b}")
        audio, frame, clip = (self._standardize(r, x) for r, x in zip(self.ROLES, (audio, frame, clip)))
        x_a = self.embed_audio(audio, t, audio_windows)
        x_v = self.fc_fusion(torch.cat([self.embed_frames(frame, t), self.fc_st(clip)], dim=-1))
        a, v = self.hat_encoder(x_a, x_v, with_ca)
        x = torch.stack([a, v], dim=2)  # (B, T, 2, d)
        global_prob, a_prob, v_prob, frame_prob, logits = mmil_pool(self, x)
        return VALOROutput(global_prob, a_prob, v_prob, frame_prob, a, x_v, v, logits)
