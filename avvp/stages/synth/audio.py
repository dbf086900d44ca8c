"""Audio of one planned video: pink background noise, class signatures and decoy bursts.

Each audible event is generated over its extent only (with 10-ms fades), scaled to unit RMS,
then to the background level times ``10 ** ((audio_snr_db + gain_db) / 20)`` and panned. The
background is pink noise (decorrelated channels) with a slow level wobble. An audio decoy is
a train of broadband noise bursts, which belong to no class band. All of it is vectorised numpy.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from avvp.stages.synth.classes import BY_NAME, AudioSignature

NOISE_RMS = 0.05   # background level (about -26 dBFS)
FADE_S = 0.01      # fade in/out of every event
HEADROOM = 0.95    # peak after mixing


def band_noise(rng: np.random.Generator, n: int, sr: int, low: float, high: float) -> np.ndarray:
    """White noise band-limited to [low, high] Hz by zeroing FFT bins (unit RMS)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(freqs < low) | (freqs > high)] = 0
    return _unit(np.fft.irfft(spec, n))


def pink_noise(rng: np.random.Generator, channels: int, n: int, sr: int) -> np.ndarray:
    """(channels, n) pink noise (power ~ 1/f from 20 Hz), unit RMS.

    One FFT-shaped channel; further channels are circular shifts of it by a third of its length
    and more, which decorrelates them at half the cost of shaping each.
    """
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= 1.0 / np.sqrt(np.maximum(freqs, 20.0))
    spec[freqs < 20.0] = 0
    mono = _unit(np.fft.irfft(spec, n))
    return np.stack([np.roll(mono, k * (n // 3)) for k in range(channels)])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _fm(freq: np.ndarray, sr: int, phase0: float = 0.0) -> np.ndarray:
    """A sine whose instantaneous frequency is ``freq`` (Hz, per sample)."""
    return np.sin(2 * np.pi * (np.cumsum(freq) / sr + phase0))


def _local(t: np.ndarray, rate: float, phase: float) -> np.ndarray:
    """Time since the last pulse of a pulse train at ``rate`` Hz."""
    period = 1.0 / rate
    return np.mod(t + phase * period, period)


# Generators: (signature, t seconds from the event start, sr, freq scale, rate scale, phase, rng).
Generator = Callable[[AudioSignature, np.ndarray, int, float, float, float, np.random.Generator], np.ndarray]


def _gated(sig, t, sr, fs, rs, ph, rng):
    gate = np.clip(2.0 * np.sin(2 * np.pi * (sig.rate * rs * t + ph)), 0.0, 1.0)
    return gate * np.sin(2 * np.pi * sig.freqs[0] * fs * t)


def _sweep(sig, t, sr, fs, rs, ph, rng):
    lo, hi = sig.freqs
    centre, depth = (lo + hi) / 2 * fs, (hi - lo) / 2 * fs
    return _fm(centre + depth * np.sin(2 * np.pi * (sig.rate * rs * t + ph)), sr)


def _vibrato(sig, t, sr, fs, rs, ph, rng):
    centre, depth = sig.freqs[0] * fs, sig.freqs[1] * fs
    return _fm(centre + depth * np.sin(2 * np.pi * (sig.rate * rs * t + ph)), sr)


def _alternating(sig, t, sr, fs, rs, ph, rng):
    high = np.floor(2 * (sig.rate * rs * t + ph)) % 2 == 1
    return _fm(np.where(high, sig.freqs[1], sig.freqs[0]) * fs, sr)


def _thump(sig, t, sr, fs, rs, ph, rng):
    tau = _local(t, sig.rate * rs, ph)
    return np.exp(-tau / 0.15) * np.sin(2 * np.pi * sig.freqs[0] * fs * tau)


def _bell(sig, t, sr, fs, rs, ph, rng):
    tau = _local(t, sig.rate * rs, ph)
    partials = sum(np.sin(2 * np.pi * f * fs * tau) / (k + 1) for k, f in enumerate(sig.freqs))
    return np.exp(-tau / 0.35) * partials


def _chirps(sig, t, sr, fs, rs, ph, rng):
    length = 0.08
    tau = _local(t, sig.rate * rs, ph)
    f0, f1 = sig.freqs[0] * fs, sig.freqs[1] * fs
    on = tau < length
    window = np.where(on, np.sin(np.pi * np.minimum(tau, length) / length) ** 2, 0.0)
    return window * np.sin(2 * np.pi * (f0 * tau + (f1 - f0) * tau**2 / (2 * length)))


def _clicks(sig, t, sr, fs, rs, ph, rng):
    tau = _local(t, sig.rate * rs, ph)
    return np.exp(-tau / 0.006) * band_noise(rng, t.size, sr, sig.freqs[0] * fs, sig.freqs[1] * fs)


def _noise(sig, t, sr, fs, rs, ph, rng):
    return band_noise(rng, t.size, sr, sig.freqs[0] * fs, sig.freqs[1] * fs)


def _noise_am(sig, t, sr, fs, rs, ph, rng):
    am = 0.55 + 0.45 * np.sin(2 * np.pi * (sig.rate * rs * t + ph))
    return am * band_noise(rng, t.size, sr, sig.freqs[0] * fs, sig.freqs[1] * fs)


def _chord(sig, t, sr, fs, rs, ph, rng):
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * (sig.rate * rs * t + ph))
    return swell * sum(np.sin(2 * np.pi * (f * fs * t + k / 3)) for k, f in enumerate(sig.freqs))


def _harmonic(sig, t, sr, fs, rs, ph, rng):
    f0, first, last = sig.freqs
    return sum(np.sin(2 * np.pi * (k * f0 * fs * t + rng.random())) for k in range(int(first), int(last) + 1))


GENERATORS: dict[str, Generator] = {
    "gated": _gated, "sweep": _sweep, "vibrato": _vibrato, "alternating": _alternating,
    "thump": _thump, "bell": _bell, "chirps": _chirps, "clicks": _clicks, "noise": _noise,
    "noise_am": _noise_am, "chord": _chord, "harmonic": _harmonic,
}


def _fade(n: int, sr: int) -> np.ndarray:
    ramp = min(int(FADE_S * sr), n // 2)
    env = np.ones(n)
    if ramp:
        r = np.sin(0.5 * np.pi * (np.arange(ramp) + 0.5) / ramp) ** 2
        env[:ramp], env[n - ramp:] = r, r[::-1]
    return env


def class_sound(name: str, n: int, sr: int, params: Mapping[str, float], rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of a class's signature with per-event parameters, faded, unit RMS."""
    sig = BY_NAME[name].audio
    t = np.arange(n) / sr
    x = GENERATORS[sig.kind](sig, t, sr, params["freq_scale"], params["rate_scale"], params["phase"], rng)
    return _unit(x * _fade(n, sr))


def decoy_sound(n: int, sr: int, params: Mapping[str, float], rng: np.random.Generator) -> np.ndarray:
    """Broadband noise bursts (no class band), faded, unit RMS."""
    tau = _local(np.arange(n) / sr, params["rate"], params["phase"])
    bursts = np.exp(-tau / 0.05) * pink_noise(rng, 1, n, sr)[0]
    return _unit(bursts * _fade(n, sr))


def _pan(channels: int, pan: float) -> np.ndarray:
    if channels == 1:
        return np.ones(1)
    angle = (pan + 1) * np.pi / 4  # -1 left, +1 right, equal power
    return np.array([np.cos(angle), np.sin(angle)]) * np.sqrt(2)


def synthesize(video: Mapping, settings: Mapping) -> np.ndarray:
    """The video's audio as float32 (channels, duration * sample_rate) in [-1, 1].

    Args:
        video: one video of the plan (see :mod:`avvp.stages.synth.plan`).
        settings: resolved synth settings (``sample_rate``, ``channels``, ``duration``,
            ``audio_snr_db``).
    """
    sr, channels, duration = settings["sample_rate"], settings["channels"], settings["duration"]
    n = duration * sr
    rng = np.random.default_rng([video["seed"], 1])
    t = np.arange(n) / sr
    wobble = 1.0 + 0.2 * np.sin(2 * np.pi * (rng.uniform(0.05, 0.3) * t + rng.random()))
    mix = NOISE_RMS * wobble * pink_noise(rng, channels, n, sr)
    level = NOISE_RMS * 10 ** (settings["audio_snr_db"] / 20)
    for event in video["events"]:
        if event["audio"] is None:
            continue
        p = event["audio_params"]
        a, b = event["audio"][0] * sr, event["audio"][1] * sr
        sound = class_sound(event["class"], b - a, sr, p, rng) * level * 10 ** (p["gain_db"] / 20)
        mix[:, a:b] += _pan(channels, p["pan"])[:, None] * sound
    decoy = video.get("decoy")
    if decoy and decoy["modality"] == "audio":
        p = decoy["params"]
        a, b = decoy["onset"] * sr, decoy["offset"] * sr
        mix[:, a:b] += decoy_sound(b - a, sr, p, rng) * level * 10 ** (p["gain_db"] / 20)
    peak = np.abs(mix).max()
    if peak > HEADROOM:
        mix *= HEADROOM / peak
    return mix.astype(np.float32)
