"""The ``download`` settings: :func:`download_settings` completes the config section with the
defaults of the settings definition (:mod:`avvp.settings`) and checks it."""

from __future__ import annotations

from avvp.infra.errors import ConfigError
from avvp.settings import complete_section


def download_settings(given: dict | None = None) -> dict:
    """The download settings: ``given`` completed with the defaults and checked."""
    settings = complete_section("download", given)
    template = settings["url_template"]
    if "{id}" not in template:
        raise ConfigError(f"download.url_template must contain '{{id}}': {template!r}")
    try:
        template.format(id="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"download.url_template {template!r} is not a valid template: {exc}") from None
    return settings
