"""Settings handed from the Snakemake config (or a user) to one ``avvp`` command.

Every command takes ``--settings``: inline JSON (what the Snakemake rules pass, built from one
config section), or the path of a YAML/JSON file. Values are merged over the command's defaults;
an unknown key is an error that names it, so a misspelling never passes silently.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError


def parse_settings(value: str | Mapping | None) -> dict:
    """Turn a ``--settings`` value (inline JSON, a file path, a mapping or None) into a dict."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    text = value.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--settings is not valid JSON: {exc}") from exc
    path = Path(text)
    if not path.exists():
        raise ConfigError(f"settings file not found: {path}")
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: settings must be a mapping")
    return loaded


def merge_settings(defaults: Mapping, given: Mapping, where: str = "settings", strict: bool = True) -> dict:
    """Recursively merge ``given`` over a deep copy of ``defaults``, mappings key by key.

    With ``strict`` (the default) a key of ``given`` that ``defaults`` lacks raises a ConfigError
    naming it; otherwise it is added. A default of ``None`` or an empty dict accepts any value.
    """
    out = copy.deepcopy(dict(defaults))
    for key, val in given.items():
        if strict and key not in out:
            known = ", ".join(sorted(out))
            raise ConfigError(f"unknown key '{where}.{key}' (known: {known})")
        if isinstance(out.get(key), dict) and isinstance(val, Mapping) and out[key]:
            out[key] = merge_settings(out[key], val, f"{where}.{key}", strict)
        else:
            out[key] = copy.deepcopy(val)
    return out


def load_config(path: str | Path) -> dict:
    """Read a whole avvp config file (the same file Snakemake reads)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping")
    return data


def require_range(name: str, value: Any, low: float | None = None, high: float | None = None) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (bounds optional)."""
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"{name} = {value!r} is out of range {bounds}")
