"""VGGish audio features: the exact VGGish log-mel front end and the network, in torch.

Front end (facts.md): mono 16 kHz; STFT with a 400-sample (25 ms) periodic Hann window, hop 160
(10 ms), FFT 512, magnitude; HTK mel filterbank (1127·ln(1 + f/700)) of 64 triangles spaced evenly
in mel between 125 and 7500 Hz (the triangles are linear in mel); log(mel + 0.01); examples of
96 frames × 64 bands with a 96-frame (0.96 s) hop, an incomplete tail dropped. The network's module
names match the PyTorch VGGish weights (``features.0`` ... ``embeddings.4``), whose last layer
flattens the conv output in (H, W, C) order like the original TensorFlow model. Optional
post-processing: PCA with the published parameters, clip to [−2, 2], 8-bit quantisation
round((x + 2)·255/4) (kept as float32, as the official features would hold it).

A clip of T whole seconds gives T rows of 128 (10 for a 10-s clip; example t covers
[0.96t, 0.96t + 0.96) s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from avvp.infra.errors import ConfigError, InputError
from avvp.infra.weights import hub_cache_file, is_url, resolve_weights, unwrap_state_dict
from avvp.stages.extractors import register_extractor
from avvp.stages.extractors.base import Extractor

SAMPLE_RATE = 16000
WINDOW = 400
HOP = 160
N_FFT = 512
N_MELS = 64
F_MIN = 125.0
F_MAX = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
PCA_CLIP = 2.0
QUANT_SCALE = 255.0 / (2 * PCA_CLIP)

VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
PCA_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth"


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127·ln(1 + f/700)."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
               f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """(n_fft//2 + 1, n_mels) weights of triangles evenly spaced, and linear, in HTK mel."""
    bins_mel = hz_to_mel(np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1))
    edges = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # no DC
    return weights


_MEL = mel_matrix()
_HANN = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)  # periodic


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, 64) log-mel spectrogram of 16-kHz mono samples (frames = 1 + (n − 400) // 160)."""
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {samples.shape}")
    n_frames = 1 + (len(samples) - WINDOW) // HOP if len(samples) >= WINDOW else 0
    if n_frames == 0:
        return np.zeros((0, N_MELS), dtype=np.float64)
    frames = np.lib.stride_tricks.as_strided(
        samples, shape=(n_frames, WINDOW), strides=(samples.strides[0] * HOP, samples.strides[0]))
    spectrum = np.abs(np.fft.rfft(frames * _HANN, n=N_FFT))
    return np.log(spectrum @ _MEL + LOG_OFFSET)


def examples(samples: np.ndarray) -> np.ndarray:
    """VGGish network input (n, 1, 96, 64) float32 from 16-kHz mono samples; tail dropped."""
    spec = log_mel(samples)
    n = len(spec) // EXAMPLE_FRAMES
    return spec[: n * EXAMPLE_FRAMES].reshape(n, 1, EXAMPLE_FRAMES, N_MELS).astype(np.float32)


class VGGish(nn.Module):
    """The VGGish network; module names match the PyTorch VGGish state dict."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for block in ((64,), (128,), (256, 256), (512, 512)):
            for width in block:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 128), nn.ReLU(inplace=True),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) initialisation, fan-in, for every layer; zero biases.

        Only matters for ``weights: none`` (loaded weights replace it). PyTorch's default layer
        init shrinks activations layer by layer in this deep ReLU stack without normalisation: a
        randomly initialised VGGish then gives near-constant embeddings (std ~0.006, ~1e-4 between
        videos) that no model downstream can learn from. He init keeps the scale of the input.
        """
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 96, 64) log-mel examples → (B, 128) embeddings."""
        x = self.features(x)
        x = x.permute(0, 2, 3, 1).flatten(1)  # (H, W, C) order, as in TensorFlow
        return self.embeddings(x)


def load_pca(spec: str) -> tuple[np.ndarray, np.ndarray, str]:
    """PCA eigenvectors (128, 128), means (128,) and the file's identity from a ``.pth`` (torch
    VGGish), a ``.npz`` (TensorFlow VGGish) file, a URL or ``pretrained``."""
    if str(spec).lower() in ("", "none"):
        raise ConfigError("features.audio.pca is true but pca_params is none: give the PCA "
                          "parameters file (or 'pretrained')")
    source = PCA_URL if str(spec).lower() == "pretrained" else str(spec)
    if not is_url(source) and Path(source).suffix == ".npz" and Path(source).is_file():
        from avvp.infra.provenance import sha256
        with np.load(source) as data:
            params = {k: data[k] for k in data.files}
        identity = sha256(source)
    else:
        resolved = resolve_weights(source, what="VGGish PCA parameters")
        params = {k: v.numpy() for k, v in unwrap_state_dict(resolved.state_dict, source).items()}
        identity = resolved.identity
    try:
        vectors = np.asarray(params["pca_eigen_vectors"], dtype=np.float64)
        means = np.asarray(params["pca_means"], dtype=np.float64).reshape(-1)
    except KeyError as exc:
        raise InputError(source if not is_url(source) else hub_cache_file(source),
                         f"PCA parameters lack {exc.args[0]!r}") from None
    if vectors.shape != (128, 128) or means.shape != (128,):
        raise InputError(source, f"PCA parameters have shapes {vectors.shape} and {means.shape}, "
                         "expected (128, 128) and (128, 1)")
    return vectors, means, identity


def pca_quantise(embeddings: torch.Tensor, vectors: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """VGGish post-processing: PCA, clip to [−2, 2], round((x + 2)·255/4) (values 0..255)."""
    projected = (embeddings - means) @ vectors.T
    clipped = projected.clamp(-PCA_CLIP, PCA_CLIP)
    return torch.round((clipped + PCA_CLIP) * QUANT_SCALE)


@register_extractor("vggish")
class VGGishExtractor(Extractor):
    """VGGish embeddings, one 128-d row per whole second (settings: weights, seed, pca,
    pca_params)."""

    role = "audio"
    defaults = {"extractor": "vggish", "weights": "none", "seed": 0, "pca": False,
                "pca_params": "pretrained"}
    default_weights_url = VGGISH_URL
    stream = "audio"
    sample_rate = SAMPLE_RATE

    def __init__(self, settings, device="cpu", **options):
        super().__init__(settings, device, **options)
        self._pca = None
        if self.settings["pca"]:
            vectors, means, identity = load_pca(self.settings["pca_params"])
            self._pca = (torch.tensor(vectors, dtype=torch.float32, device=self.device),
                         torch.tensor(means, dtype=torch.float32, device=self.device))
            self.weights_identity = f"{self.weights_identity}+pca:{identity}"

    def build_model(self) -> nn.Module:
        self.dim = 128
        return VGGish()

    def units_from(self, streams, path: str | Path, duration: float) -> torch.Tensor:
        units = examples(streams.need_audio().samples)
        need = self.units(duration)
        if len(units) < need:
            raise InputError(path, f"audio gives {len(units)} VGGish examples, need {need}")
        return torch.from_numpy(units[:need])

    def postprocess(self, output: torch.Tensor) -> torch.Tensor:
        if self._pca is None:
            return output
        return pca_quantise(output, *self._pca)
