"""Settings of the synthetic demo data set (the ``synth`` section of config.yaml).

The keys fall in two groups. *Plan* keys fix the event plan, i.e. the annotations
(:data:`PLAN_KEYS`); ``avvp synth plan`` stores them in ``synth_plan.json`` and
``avvp synth render`` refuses settings that disagree with them. *Render* keys only change how the
planned events look and sound (frame size, frame rate, sample rate, noise, contrast, clutter, ...),
so they may change without re-planning; every clip records a fingerprint of what it was rendered
from, and a clip whose fingerprint differs is rendered again.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError
from ..settings import merge_settings, parse_settings, require_range
from .classes import CATALOGUE

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "shards": 4,
    "n_train": 240,
    "n_val": 40,
    "n_test": 60,
    "n_classes": 10,
    "width": 128,
    "height": 96,
    "fps": 25,
    "sample_rate": 44100,
    "channels": 2,
    "duration": 10,
    "events_per_video": [1, 3],
    "min_single_modality": 0.4,
    "extent_jitter": 0.3,
    "audio_snr_db": 0.0,
    "visual_contrast": 0.6,
    "object_area": 0.28,
    "clutter": 3,
    "cross_modal_decoy": 0.3,
    "crf": 20,
    "audio_bitrate": 128000,
}

#: Keys that determine the event plan (the annotation files).
PLAN_KEYS: tuple[str, ...] = (
    "seed", "n_train", "n_val", "n_test", "n_classes", "duration", "events_per_video",
    "min_single_modality", "extent_jitter", "cross_modal_decoy",
)

#: Keys that determine how a planned video is rendered (part of each clip's fingerprint).
RENDER_KEYS: tuple[str, ...] = (
    "width", "height", "fps", "sample_rate", "channels", "audio_snr_db", "visual_contrast",
    "object_area", "clutter", "crf", "audio_bitrate",
)


def resolve(value: str | Mapping | None = None) -> dict[str, Any]:
    """Parse ``--settings`` (JSON, a file path, a mapping or None), merge over the defaults, check.

    Raises:
        ConfigError: for an unknown key or a value out of range.
    """
    settings = merge_settings(DEFAULTS, parse_settings(value), "synth")
    check(settings)
    return settings


def check(s: Mapping[str, Any]) -> None:
    """Raise ConfigError for any value out of range."""
    for key in ("seed", "shards", "n_train", "n_val", "n_test", "n_classes", "width", "height",
                "fps", "sample_rate", "channels", "duration", "clutter", "crf", "audio_bitrate"):
        if not isinstance(s[key], int) or isinstance(s[key], bool):
            raise ConfigError(f"synth.{key} must be an integer, got {s[key]!r}")
    for key in ("min_single_modality", "extent_jitter", "audio_snr_db", "visual_contrast", "object_area",
                "cross_modal_decoy"):
        if not isinstance(s[key], (int, float)) or isinstance(s[key], bool):
            raise ConfigError(f"synth.{key} must be a number, got {s[key]!r}")
    for key in ("shards", "n_train", "n_val", "n_test", "fps", "duration"):
        require_range(f"synth.{key}", s[key], 1)
    require_range("synth.n_classes", s["n_classes"], 8, len(CATALOGUE))
    require_range("synth.width", s["width"], 32)
    require_range("synth.height", s["height"], 32)
    if s["width"] % 2 or s["height"] % 2:
        raise ConfigError(f"synth.width and synth.height must be even (H.264 4:2:0), got "
                          f"{s['width']}x{s['height']}")
    require_range("synth.sample_rate", s["sample_rate"], 16000)
    require_range("synth.channels", s["channels"], 1, 2)
    require_range("synth.clutter", s["clutter"], 0)
    require_range("synth.crf", s["crf"], 0, 51)
    require_range("synth.audio_bitrate", s["audio_bitrate"], 16000)
    events = s["events_per_video"]
    if (not isinstance(events, (list, tuple)) or len(events) != 2
            or not all(isinstance(v, int) for v in events)):
        raise ConfigError(f"synth.events_per_video must be [min, max], got {events!r}")
    if not 1 <= events[0] <= events[1] <= s["n_classes"]:
        raise ConfigError(f"synth.events_per_video = {events!r} needs 1 <= min <= max <= n_classes "
                          f"({s['n_classes']})")
    for key in ("min_single_modality", "extent_jitter", "cross_modal_decoy", "visual_contrast"):
        require_range(f"synth.{key}", s[key], 0, 1)
    require_range("synth.object_area", s["object_area"], 0.02, 0.5)
    require_range("synth.audio_snr_db", s["audio_snr_db"], -40, 40)


def plan_part(s: Mapping[str, Any]) -> dict[str, Any]:
    """The plan keys of resolved settings (JSON-ready)."""
    return {k: list(s[k]) if isinstance(s[k], (list, tuple)) else s[k] for k in PLAN_KEYS}


def render_part(s: Mapping[str, Any]) -> dict[str, Any]:
    """The render keys of resolved settings."""
    return {k: s[k] for k in RENDER_KEYS}
