"""Feature extractors, registered by name and built from one role's config section.

``features.<role>.extractor`` names the class: ``vggish`` (audio), ``resnet152`` (frames; any
torchvision or timm 2-D backbone through ``backbone``) and ``r2plus1d_18`` (8-frame clips); VALOR's
teachers ``clip_vit_l14`` (role ``clip_image``) and ``clap_htsat_fusion`` (role ``clap_audio``). Add an
extractor by subclassing :class:`~avvp.stages.extractors.base.Extractor` in a module here and decorating it
with :func:`register_extractor`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

from avvp.infra.errors import ConfigError

if TYPE_CHECKING:
    from avvp.stages.extractors.base import Extractor

_REGISTRY: dict[str, type] = {}

#: The extractor each role uses when its section names none (the official ones).
DEFAULT_EXTRACTORS = {"audio": "vggish", "frame": "resnet152", "clip": "r2plus1d_18",
                      "clip_image": "clip_vit_l14", "clap_audio": "clap_htsat_fusion"}


def register_extractor(name: str) -> Callable[[type], type]:
    """Class decorator: make the extractor available as ``extractor: <name>`` in the config."""
    def wrap(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"extractor {name!r} is registered twice")
        _REGISTRY[name] = cls
        cls.names = (*getattr(cls, "names", ()), name)
        return cls
    return wrap


def extractor_names() -> list[str]:
    """All registered extractor names."""
    return sorted(_REGISTRY)


def extractor_class(name: str) -> type:
    """The class registered as ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown extractor {name!r} (known: {', '.join(extractor_names())})") from None


def create_extractor(role_settings: Mapping, role: str | None = None, device="cpu",
                     **options) -> Extractor:
    """Build the extractor a role's settings describe.

    Args:
        role_settings: one role section of the ``features`` config (``extractor`` plus that
            extractor's own keys; unknown keys are errors).
        role: ``audio``, ``frame``, ``clip``, ``clip_image`` or ``clap_audio``; when given, the
            extractor must serve that role and
            a missing ``extractor`` key means the role's default.
        device: a torch device (or its name).
        options: ``missing_audio`` (``error`` or ``silence`` for clips without an audio stream),
            ``audio_tolerance`` (s) and ``engine`` (``jit`` or ``eager``), see
            :class:`~avvp.stages.extractors.base.Extractor`.
    """
    settings = dict(role_settings)
    name = settings.get("extractor") or (DEFAULT_EXTRACTORS.get(role) if role else None)
    if not name:
        raise ConfigError("features: no extractor named")
    settings["extractor"] = name
    cls = extractor_class(name)
    if role is not None and cls.role != role:
        raise ConfigError(f"features.{role}.extractor: {name!r} extracts {cls.role} features, "
                          f"not {role}")
    return cls(settings, device=device, **options)


# Importing the modules registers their extractors.
from avvp.stages.extractors import clap_audio, clip_image, frame2d, r2plus1d, vggish  # noqa: E402,F401
