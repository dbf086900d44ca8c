"""The model architectures training and prediction can build: ``han`` (HAN, MA, JoMoLD) and
``valor`` (VALOR, VALOR+, VALOR++).

Config ``model`` holds the keys of both; :func:`model_config` keeps those of the chosen
architecture (``model.arch``) and refuses a VALOR-only setting on HAN.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from avvp.infra.errors import ConfigError
from avvp.core.feature_roles import STANDARD_ROLES, model_roles  # noqa: F401  (model_roles: re-exported)
from avvp.settings import default
from avvp.core.model import HAN, HANConfig
from avvp.core.valor.model import VALOR, VALORConfig

ARCHS = ("han", "valor")
#: Keys of config ``model`` that only VALOR reads, with the value HAN requires (their defaults).
VALOR_ONLY = {key: default(f"model.{key}") for key in ("num_layers", "audio_role", "frame_role")}
#: Keys of config ``model`` that only HAN reads (VALOR ignores them).
HAN_ONLY = ("cross_attention", "visual_dropout")


def model_config(model: Mapping[str, Any], dims: Mapping[str, int] | None = None,
                 n_classes: int | None = None) -> HANConfig | VALORConfig:
    """The config of config section ``model`` (plus feature sizes and classes when given).

    Raises:
        ConfigError: an unknown architecture, a VALOR-only key set on HAN, or a bad value.
    """
    m = dict(model)
    arch = m.pop("arch", "han")
    extra = dict(dims or {})
    if n_classes is not None:
        extra["n_classes"] = n_classes
    try:
        if arch == "han":
            for key, need in VALOR_ONLY.items():
                if m.pop(key, need) != need:
                    raise ConfigError(f"model.{key} = {model[key]!r} needs model.arch: valor "
                                      f"(HAN: {need!r})")
            return HANConfig(**m, **extra)
        if arch == "valor":
            for key in HAN_ONLY:
                m.pop(key, None)
            return VALORConfig(**m, **extra)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    raise ConfigError(f"model.arch = {arch!r} (allowed: {', '.join(ARCHS)})")


def build_model(model: Mapping[str, Any], dims: Mapping[str, int], n_classes: int) -> nn.Module:
    """A freshly initialised model of config section ``model``."""
    return from_config(model_config(model, dims, n_classes))


def from_config(config: HANConfig | VALORConfig) -> nn.Module:
    return VALOR.from_config(config) if isinstance(config, VALORConfig) else HAN.from_config(config)


def config_from_dict(d: Mapping[str, Any]) -> HANConfig | VALORConfig:
    """A saved config dict (``config.to_dict()``) back to its config."""
    return VALORConfig.from_dict(dict(d)) if d.get("arch") == "valor" else HANConfig(**d)


def input_roles(model_or_config: Any) -> dict[str, str]:
    """Input slot (audio, frame, clip) -> the feature role the model reads there."""
    config = getattr(model_or_config, "config", model_or_config)
    roles = getattr(config, "roles", None)
    return dict(roles()) if callable(roles) else dict(STANDARD_ROLES)
