"""The event classes of the synthetic demo data set and their audio and visual signatures.

Every class owns one frequency band (the bands do not overlap, have equal widths on the mel scale
and all lie inside the 125-7500 Hz range a VGGish front end sees) and a temporal pattern in it; visually it owns one hue (12 hues,
30 degrees apart, fully saturated, while background, clutter and decoys are nearly grey), a
shape, a texture and a motion. A data set with ``n_classes`` classes uses the first
``n_classes`` entries of :data:`CATALOGUE`.

Each class also has its own modality propensity: how much more often than the configured minimum
its events are single-modality (``single``), and which share of those are audible only
(``audio_bias``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioSignature:
    """How a class sounds.

    Attributes:
        kind: the generator in :mod:`avvp.stages.synth.audio` (``gated``, ``sweep``, ``thump``, ...).
        band: (low, high) Hz; the class puts (nearly) all its energy inside and owns this band.
        freqs: the generator's frequencies in Hz (tones, partials, or band edges of noise).
        rate: the generator's temporal rate in Hz (gating, modulation, pulses per second).
    """

    kind: str
    band: tuple[float, float]
    freqs: tuple[float, ...]
    rate: float


@dataclass(frozen=True)
class VisualSignature:
    """How a class looks.

    Attributes:
        hue: hue in degrees (0 red, 120 green, 240 blue), drawn at full saturation.
        shape: the mask in :mod:`avvp.stages.synth.visual` (``square``, ``circle``, ``triangle``, ...).
        texture: the pattern (``solid``, ``hstripes``, ``checker``, ``dots``, ...).
        motion: how it moves (``pulse``, ``orbit``, ``bounce``, ``sway``, ...).
    """

    hue: float
    shape: str
    texture: str
    motion: str


@dataclass(frozen=True)
class ClassSignature:
    """One event class: name, signatures and modality propensity.

    Attributes:
        name: the class name written to the annotation files.
        audio: the audio signature.
        visual: the visual signature.
        single: in [0, 1]; the class's probability of a single-modality event is
            ``m + (1 - m) * single`` for the configured minimum share ``m``.
        audio_bias: share of the class's single-modality events that are audible only.
    """

    name: str
    audio: AudioSignature
    visual: VisualSignature
    single: float
    audio_bias: float


def _c(name, audio, visual, single, audio_bias) -> ClassSignature:
    return ClassSignature(name, AudioSignature(*audio), VisualSignature(*visual), single, audio_bias)


#: All classes, in index order. The 12 bands split 150-7200 Hz into equal steps on the mel scale
#: (about five VGGish mel bands each).
CATALOGUE: tuple[ClassSignature, ...] = (
    _c("Beeper", ("gated", (1452, 1891), (1650.0,), 4.0), (0, "square", "grid", "pulse"), 0.35, 0.8),
    _c("Siren", ("sweep", (784, 1087), (830.0, 1040.0), 0.6), (240, "circle", "rings", "orbit"), 0.25, 0.7),
    _c("Drum", ("thump", (150, 324), (220.0,), 2.5), (30, "diamond", "checker", "bounce"), 0.1, 0.5),
    _c("Whistle", ("vibrato", (3056, 3823), (3420.0, 150.0), 6.0), (60, "triangle", "hstripes", "sway"),
       0.3, 0.65),
    _c("Engine", ("noise_am", (324, 533), (345.0, 510.0), 11.0), (120, "hexagon", "diagonal", "shake"),
       0.15, 0.4),
    _c("Chirper", ("chirps", (3823, 4746), (3950.0, 4600.0), 5.0), (300, "cross", "dots", "hop"), 0.2, 0.6),
    _c("Bell", ("bell", (1891, 2420), (1960.0, 2130.0, 2340.0), 1.25), (180, "ring", "solid", "swing"),
       0.05, 0.5),
    _c("Horn", ("chord", (533, 784), (560.0, 700.0), 0.5), (270, "ellipse", "vstripes", "still"), 0.25, 0.3),
    _c("Ticker", ("clicks", (4746, 5858), (4880.0, 5720.0), 10.0), (90, "square", "fine_checker", "tick"),
       0.2, 0.35),
    _c("Hiss", ("noise", (5858, 7200), (6000.0, 7000.0), 0.0), (210, "circle", "speckle", "drift"),
       0.3, 0.75),
    _c("Buzzer", ("harmonic", (1087, 1452), (105.0, 11.0, 13.0), 0.0), (150, "triangle_down", "antidiagonal",
                                                                      "vibrate"), 0.15, 0.25),
    _c("Alarm", ("alternating", (2420, 3056), (2550.0, 2900.0), 2.5), (330, "diamond", "hstripes", "pulse"),
       0.2, 0.55),
)

BY_NAME: dict[str, ClassSignature] = {c.name: c for c in CATALOGUE}


def class_names(n_classes: int) -> list[str]:
    """The names of the first ``n_classes`` catalogue classes, in index order."""
    return [c.name for c in CATALOGUE[:n_classes]]
