"""The ``parse`` settings: their defaults (:data:`DEFAULTS`) and :func:`parse_command_settings`,
which merges given settings over them and checks them."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError
from ..extractors.base import AUDIO_MIN_COVERAGE, AUDIO_TOLERANCE_S
from ..extractors.engine import check_engine
from ..metrics import GATES
from ..settings import merge_settings

DEFAULTS: dict[str, Any] = {
    "gate": "ma",  # ma: each modality's own video probability; han: the global probability
    "threshold": 0.5,  # for frame and video probabilities, as in the evaluation
    "device": "auto",
    "batch_size": 64,  # extractor inputs per forward pass
    "window": 10,  # seconds decoded and embedded at a time (10: the LLP clip length)
    "timeline": True,  # draw timeline.png
    "audio_tolerance": AUDIO_TOLERANCE_S,  # seconds of a window the audio may leave uncovered
    "audio_min_coverage": AUDIO_MIN_COVERAGE,  # beyond that, the share it must still cover
    "engine": "jit",  # how the extractor networks run (avvp.extractors.engine)
}


def parse_command_settings(given: Mapping | None = None) -> dict:
    """The ``parse`` settings: ``given`` merged over :data:`DEFAULTS`, checked."""
    s = merge_settings(DEFAULTS, given or {}, "parse")
    if s["gate"] not in GATES:
        raise ConfigError(f"parse.gate must be one of {', '.join(GATES)}, got {s['gate']!r}")
    if not 0.0 <= float(s["threshold"]) <= 1.0:
        raise ConfigError(f"parse.threshold = {s['threshold']!r} is outside [0, 1]")
    for key in ("batch_size", "window"):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 1:
            raise ConfigError(f"parse.{key} = {s[key]!r} must be an integer >= 1")
    if isinstance(s["audio_tolerance"], bool) or not isinstance(s["audio_tolerance"], (int, float)) \
            or s["audio_tolerance"] < 0:
        raise ConfigError(f"parse.audio_tolerance = {s['audio_tolerance']!r} must be a number >= 0")
    if isinstance(s["audio_min_coverage"], bool) or not isinstance(s["audio_min_coverage"], (int, float)) \
            or not 0 <= s["audio_min_coverage"] <= 1:
        raise ConfigError(f"parse.audio_min_coverage = {s['audio_min_coverage']!r} must be a number in [0, 1]")
    check_engine(s["engine"], "parse")
    return s
