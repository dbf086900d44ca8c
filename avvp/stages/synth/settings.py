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

from avvp.infra.errors import ConfigError
from avvp.settings import complete_section
from avvp.stages.synth.classes import CATALOGUE

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
    """Parse ``--settings`` (JSON, a file path, a mapping or None), complete it with the defaults
    of the settings definition (:mod:`avvp.settings`, section ``synth``) and check it.

    Raises:
        ConfigError: for an unknown key or a value out of range, named.
    """
    settings = complete_section("synth", value)
    check(settings)
    return settings


def check(s: Mapping[str, Any]) -> None:
    """Raise ConfigError for what the schema cannot check: the classes against the catalogue and
    the number of events per video against the classes."""
    if s["n_classes"] > len(CATALOGUE):
        raise ConfigError(f"synth.n_classes = {s['n_classes']} is more than the {len(CATALOGUE)} classes of "
                          f"the catalogue (avvp/stages/synth/classes.py)")
    events = s["events_per_video"]
    if not 1 <= events[0] <= events[1] <= s["n_classes"]:
        raise ConfigError(f"synth.events_per_video = {events!r} needs 1 <= min <= max <= n_classes "
                          f"({s['n_classes']})")


def plan_part(s: Mapping[str, Any]) -> dict[str, Any]:
    """The plan keys of resolved settings (JSON-ready)."""
    return {k: list(s[k]) if isinstance(s[k], (list, tuple)) else s[k] for k in PLAN_KEYS}


def render_part(s: Mapping[str, Any]) -> dict[str, Any]:
    """The render keys of resolved settings."""
    return {k: s[k] for k in RENDER_KEYS}
