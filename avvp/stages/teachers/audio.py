"""The CLAP teacher's audio front end: 1-s windows, repeat-padding, nearest-index resampling, the
log-mel spectrogram and the regrouping of HTS-AT's last Swin layer into a (64, 768) token map.

All functions work on mono float32 audio at :data:`SAMPLE_RATE` (48 kHz). The teacher embeds

* each 1-s segment for the pseudo labels: segment k of a clip of N samples covers samples
  [b_k, b_k + L) with b_k = round(k·N/T) and L = ⌊N/T⌋ (:func:`segment_windows`), is round-tripped
  through int16 (:func:`int16_round_trip`) and tiled (then zero-padded) to 480,000 samples
  (:func:`repeat_pad`), so the model sees the one second repeated over 10 s;
* the whole clip for the feature map: forced to exactly 480,000 samples by nearest-index
  selection (:func:`nearest_resample`), not by filtering.

The model input is 10·log10(max(mel power, 1e-10)) with a 1024-point periodic Hann window, hop
480, centred frames with reflect padding, 64 HTK mel bands from 50 to 14,000 Hz and no filter-bank
normalisation (:func:`log_mel`): (1001, 64) for 480,000 samples.
"""

from __future__ import annotations

import numpy as np
import torch

SAMPLE_RATE = 48000
#: Samples of the model's 10-s input.
CLIP_SAMPLES = 480000
N_FFT = 1024
HOP = 480
N_MELS = 64
F_MIN = 50.0
F_MAX = 14000.0
#: The feature map: 2 frequency halves × 32 time steps of 768 channels.
MAP_FREQ, MAP_TIME = 2, 32


def round_half_even(x) -> np.ndarray:
    """numpy's rounding (halves to the even neighbour) as int64."""
    return np.round(np.asarray(x, dtype=np.float64)).astype(np.int64)


def segment_windows(n: int, segments: int) -> list[tuple[int, int]]:
    """The ``segments`` windows [b_k, b_k + L) of a signal of ``n`` samples (b_k = round(k·n/T),
    L = ⌊n/T⌋; Python's round, halves to even)."""
    length = n // segments
    return [(round(k * n / segments), round(k * n / segments) + length) for k in range(segments)]


def int16_round_trip(x: np.ndarray) -> np.ndarray:
    """int16(clip(x, −1, 1)·32767)/32767 in float32 (truncation toward zero, as a cast does)."""
    clipped = np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0)
    return ((clipped * 32767.0).astype(np.int16) / 32767.0).astype(np.float32)


def repeat_pad(x: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """``x`` tiled ⌊length/len(x)⌋ times and zero-padded to ``length`` samples (a longer signal is
    cut to ``length``)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) >= length:
        return x[:length].copy()
    if len(x) == 0:
        return np.zeros(length, dtype=np.float32)
    out = np.zeros(length, dtype=np.float32)
    tiled = np.tile(x, length // len(x))
    out[:len(tiled)] = tiled
    return out


def nearest_resample(x: np.ndarray, length: int = CLIP_SAMPLES) -> np.ndarray:
    """``x[round(linspace(0, N−1, length))]``: exactly ``length`` samples by nearest-index
    selection (numpy rounding, halves to even)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        raise ValueError("cannot resample an empty signal")
    return x[round_half_even(np.linspace(0, len(x) - 1, length))]


class LogMel(torch.nn.Module):
    """(B, samples) float32 → (B, frames, 64) log-mel (dB, floor 1e-10), frames = samples // 480 + 1."""

    def __init__(self):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=N_FFT, hop_length=HOP, f_min=F_MIN, f_max=F_MAX,
            n_mels=N_MELS, window_fn=torch.hann_window, power=2.0, center=True, pad_mode="reflect",
            norm=None, mel_scale="htk")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        power = self.mel(x.float())
        return (10.0 * torch.log10(torch.clamp(power, min=1e-10))).transpose(-1, -2)


def token_map(grouped: torch.Tensor) -> torch.Tensor:
    """HTS-AT's regrouped last layer (B, 768, 2, 32) → (B, 64, 768), row f·32 + j = frequency half
    f, time step j."""
    b, c, f, t = grouped.shape
    return grouped.reshape(b, c, f * t).transpose(1, 2)

