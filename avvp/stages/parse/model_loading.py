"""Find and load the trained model a video is parsed with, and build the feature extractors it was
trained with (their settings and weight identity from the model file, given settings or a config).

The extractors follow the model's declared input roles (:func:`avvp.core.architectures.input_roles`):
VGGish, ResNet and R(2+1)D for HAN, MA, JoMoLD and VALOR; for VALOR++ the teachers CLAP
(``clap_audio``, the audio input) and CLIP (``clip_image``, the 2-D visual input) beside R(2+1)D.
Their weights come from the same settings as ``avvp extract`` (``features.clap_audio`` /
``features.clip_image``; a missing weight file is a MissingWeightsError naming it)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from avvp.core.classes import LLP_CLASSES
from avvp.infra.errors import ConfigError, InputError
from avvp.core.feature_roles import FEATURE_ROLES, TEACHER_ROLES
from avvp.stages.parse.defaults import parse_command_settings

log = logging.getLogger(__package__)  # "avvp.stages.parse", as before the split into modules

#: The model's input slots, in the order of its forward arguments.
ROLES = FEATURE_ROLES


@dataclass
class VideoParser:
    """A loaded model with the feature extractors it was trained with.

    Attributes:
        model: the HAN (or VALOR) in eval mode on ``device``.
        classes: class names in model output order.
        extractors: input slot (audio, frame, clip) -> extractor (``avvp.stages.extractors``) of the
            role the model reads there (:attr:`roles`).
        feature_source: where the extractor settings came from ("model file", "features
            settings" or the config file's path).
        settings: the parse settings.
        device: the torch device.
        model_path: the model file.
    """

    model: Any
    classes: list[str]
    extractors: dict[str, Any]
    feature_source: str
    settings: dict
    device: torch.device
    model_path: Path
    notes: list[str] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=lambda: {slot: slot for slot in ROLES})

    @property
    def windowed_audio(self) -> bool:
        """The audio input is CLAP's token map: one 64-token map per window, not one row per
        segment (the model is told each window's segments)."""
        return self.roles.get("audio") == "clap_audio"


def load_parser(model_path: str | Path, settings: Mapping | None = None,
                features: Mapping | None = None, config: str | Path | None = "config.yaml") -> VideoParser:
    """Load a model file and build the feature extractors it needs.

    The extractor settings come from, in order: ``features`` (a ``features`` config section)
    when given; the model file (avvp model files record the feature stores' attributes, i.e. each
    extractor's settings and weight identity); the ``features`` section of ``config``. A model
    trained on imported official features, or an official ``MMIL_Net`` state dict, records no
    usable extractor settings, so the config's are used (and this is noted in the output).

    Raises:
        MissingWeightsError: the model file (or a configured extractor weight file) is missing.
        InputError: the model file cannot be read.
        ConfigError: the extractors' feature sizes do not match the model, or their weights
            differ from the ones the model was trained with.
    """
    from avvp.core.checkpoint import load_model
    from avvp.infra.device import resolve_device
    from avvp.stages.extractors import create_extractor

    s = parse_command_settings(settings)
    model_path = Path(model_path)
    model, info = load_model(model_path)
    roles = _model_roles(model, model_path)
    classes = info.get("classes") or _default_classes(model, model_path)
    device = resolve_device(s["device"])
    notes: list[str] = []
    trained = _trained_attrs(info.get("meta", {}))
    role_settings, source = _feature_settings(trained, features, config, model_path, roles)
    if source != "model file":
        notes.append(f"feature-extractor settings taken from {source}, not from the model file")
        log.warning("%s: %s", model_path, notes[-1])
    extractors = {}
    for slot in ROLES:
        ext = create_extractor(role_settings[slot], roles[slot], device=device, missing_audio="silence",
                               audio_tolerance=s["audio_tolerance"], engine=s["engine"],
                               audio_min_coverage=s["audio_min_coverage"])
        _check_identity(ext, trained.get(slot), model_path, source)
        extractors[slot] = ext
    _check_dims(model.config, extractors, model_path, source)
    if roles["audio"] == "clap_audio" and int(s["window"]) != CLAP_WINDOW_S:
        notes.append(f"window {s['window']} s: CLAP's token map is computed per window and stretched to "
                     f"{CLAP_WINDOW_S} s as in training; the model was trained on {CLAP_WINDOW_S}-s clips")
    return VideoParser(model.to(device).eval(), list(classes), extractors, source, s, device,
                       model_path, notes, roles)


#: The clip length CLAP's token map covers in training (VALOR: the 10-s LLP clips).
CLAP_WINDOW_S = 10


def _model_roles(model, path: Path) -> dict[str, str]:
    """Input slot -> the feature role the model reads there; ConfigError for a role parse cannot
    extract."""
    from avvp.core.architectures import STANDARD_ROLES, input_roles

    roles = input_roles(model)
    known = set(STANDARD_ROLES.values()) | set(TEACHER_ROLES)
    other = sorted(role for role in roles.values() if role not in known)
    if other:
        raise ConfigError(f"{path}: the model reads {', '.join(other)} features; parse extracts only "
                          f"{', '.join(sorted(known))} (use avvp predict on feature stores that hold them)")
    return {slot: roles.get(slot, slot) for slot in ROLES}


def _default_classes(model, path: Path) -> list[str]:
    if model.config.n_classes == len(LLP_CLASSES):
        return list(LLP_CLASSES)
    raise InputError(path, f"the model file records no class names and has {model.config.n_classes} "
                           f"classes (not the {len(LLP_CLASSES)} LLP classes)")


def _trained_attrs(meta: Mapping) -> dict[str, dict]:
    """role -> feature-store attributes recorded in a model file's meta (``features``), if usable."""
    found = meta.get("features") if isinstance(meta, Mapping) else None
    out = {}
    if isinstance(found, Mapping):
        for role in ROLES:
            attrs = found.get(role)
            if isinstance(attrs, Mapping) and "settings" in attrs:
                out[role] = dict(attrs)
    return out


def _recorded_settings(attrs: Mapping) -> dict | None:
    """An extractor's settings from store attributes; None for imported (official) features."""
    if str(attrs.get("extractor", "")).startswith("official") or attrs.get("weights") == "official":
        return None
    value = attrs.get("settings")
    try:
        settings = json.loads(value) if isinstance(value, str) else dict(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(settings, dict) or not settings.get("extractor"):
        return None
    from avvp.stages.extractors import extractor_class

    # Keep the extractor's own keys; the rest is what was recorded beside them (e.g. missing_audio).
    known = set(extractor_class(settings["extractor"]).all_defaults()) | {"extractor"}
    return {k: v for k, v in settings.items() if k in known}


def _feature_settings(trained: Mapping, features: Mapping | None, config: str | Path | None,
                      model_path: Path, roles: Mapping[str, str]) -> tuple[dict[str, dict], str]:
    """Slot -> extractor settings, and where they came from."""
    if features is not None:
        return _roles_of(features, "the given features settings", roles), "the given features settings"
    recorded = {slot: _recorded_settings(trained[slot]) for slot in trained}
    if len(recorded) == len(ROLES) and all(recorded.values()):
        return recorded, "model file"
    if config is None:
        raise ConfigError(f"{model_path}: the model file records no usable feature-extractor settings;"
                          " give a config file (--config) whose 'features' section describes them")
    from avvp.settings import load_config

    section = load_config(config).get("features")
    if not isinstance(section, Mapping):
        raise ConfigError(f"{config}: no 'features' section (needed for {model_path}, which records"
                          " no usable feature-extractor settings)")
    return _roles_of(section, str(config), roles), str(config)


def _roles_of(section: Mapping, where: str, roles: Mapping[str, str]) -> dict[str, dict]:
    """Slot -> the settings of the role read there. A teacher role without a section takes its
    extractor's defaults (the hub ids of VALOR's checkpoints), as ``avvp extract`` does."""
    out = {}
    for slot in ROLES:
        role = roles[slot]
        value = section.get(role, {} if role in TEACHER_ROLES else None)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: no 'features.{role}' section")
        out[slot] = dict(value)
    return out


def _check_identity(ext, attrs: Mapping | None, model_path: Path, source: str) -> None:
    """Refuse extractor weights other than those the model's training features were made with."""
    if not attrs or source != "model file":
        return
    want = str(attrs.get("weights", ""))
    if want and want != ext.weights_identity:
        raise ConfigError(
            f"{model_path}: the {ext.role} features it was trained on came from weights {want}, but "
            f"the configured {ext.role} extractor loads {ext.weights_identity}; parse would compute "
            "different features. Put the same weight file in place (see the 'weights' setting).")


def _check_dims(config, extractors: Mapping, model_path: Path, source: str) -> None:
    expected = {"audio": config.audio_dim, "frame": config.frame_dim, "clip": config.clip_dim}
    wrong = [f"{ext.role} {ext.dim} (model: {expected[slot]})" for slot, ext in extractors.items()
             if ext.dim != expected[slot]]
    if wrong:
        raise ConfigError(f"{model_path}: the feature extractors from {source} give feature sizes "
                          f"that do not fit the model: {', '.join(wrong)}")
