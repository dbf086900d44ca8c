"""Every setting's one definition, and the settings handed to one ``avvp`` command.

The definition is the JSON schema with defaults packaged beside this module
(``avvp/config.schema.yaml``; ``workflow/schemas/config.schema.yaml`` links to it): each setting's
type, default, allowed values and one-line meaning. ``config.yaml`` and ``docs/configuration.md``
are generated from it (``avvp config-doc``, :mod:`avvp.config_doc`).

* :func:`defaults` / :func:`default`: the default config, or one setting's default;
* :func:`complete`: a whole config with the defaults filled in, checked once: the schema (each
  error names the dotted key, e.g. ``train.lr: -1 is less than or equal to the minimum of 0``),
  the per-variant ``recipes`` against their sections, and the checks across settings
  (:mod:`avvp.config_check`);
* :func:`complete_section`: one section (what a command's ``--settings`` holds) completed and
  checked the same way; :func:`section` takes a section out of a completed config.

Every command takes ``--settings``: inline JSON (what the Snakemake rules pass, built from one
config section), or the path of a YAML/JSON file (:func:`parse_settings`).
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from avvp.infra.errors import ConfigError

#: The packaged schema's file name (inside the ``avvp`` package).
SCHEMA_FILE = "config.schema.yaml"


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return yaml.safe_load(resources.files(__package__).joinpath(SCHEMA_FILE).read_text())


def schema() -> dict:
    """The settings schema (a deep copy: callers may change it)."""
    return copy.deepcopy(_schema())


def _resolve(node: Mapping) -> Mapping:
    """``node`` with a local ``$ref`` (``#/$defs/x``) replaced by its target (siblings kept)."""
    if "$ref" not in node:
        return node
    target = _schema()
    for part in node["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def node(key: str) -> Mapping:
    """The schema of one setting by its dotted key (``train.lr``); ConfigError if there is none."""
    current: Mapping = _schema()
    for part in key.split("."):
        props = _resolve(current).get("properties") or {}
        if part not in props:
            raise ConfigError(f"no setting '{key}' (known under it: {', '.join(sorted(props))})")
        current = props[part]
    return _resolve(current)


def _fill(instance: dict, node_schema: Mapping) -> dict:
    """Fill ``instance`` with the defaults of ``node_schema``'s properties, recursively (as
    Snakemake's ``validate(..., set_default=True)`` does)."""
    for key, sub in (node_schema.get("properties") or {}).items():
        sub = _resolve(sub)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and "properties" in sub:
            _fill(instance[key], sub)
    return instance


def defaults() -> dict:
    """The full default config (every setting that has a default)."""
    return _fill({}, _schema())


def default(key: str) -> Any:
    """One setting's default by its dotted key (``features.shards``)."""
    sub = node(key)
    if "default" not in sub:
        raise ConfigError(f"setting '{key}' has no default")
    if sub.get("properties"):
        return _fill(copy.deepcopy(sub["default"]), sub)
    return copy.deepcopy(sub["default"])


def _errors(instance: Any, node_schema: Mapping, where: str) -> list[str]:
    validator = jsonschema.Draft202012Validator({**node_schema, "$defs": _schema()["$defs"]})
    out = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        path = ".".join([where] * bool(where) + [str(p) for p in error.absolute_path])
        known = error.schema.get("properties") if error.validator == "additionalProperties" else None
        if isinstance(known, Mapping) and isinstance(error.instance, Mapping):
            for key in sorted(set(error.instance) - set(known)):
                out.append(f"unknown setting '{'.'.join(filter(None, [path, str(key)]))}' "
                           f"(known: {', '.join(known)})")
            continue
        out.append(f"{path or 'config'}: {error.message}")
    return out


def complete(config: Mapping[str, Any] | None) -> dict:
    """A new config: ``config`` with every default filled in, checked once (module doc).

    Raises:
        ConfigError: every problem found, each naming its dotted key.
    """
    from avvp.config_check import config_problems

    out = _fill(copy.deepcopy(dict(config or {})), _schema())
    problems = _errors(out, _schema(), "")
    if not problems:
        problems = config_problems(out)
    if problems:
        raise ConfigError("config: " + "; ".join(problems))
    return out


def complete_section(name: str, given: str | Mapping | None = None) -> dict:
    """One config section (``train``, ``features``, ...) from a ``--settings`` value, with the
    defaults filled in and checked against the schema (errors name ``<name>.<key>``)."""
    values = parse_settings(given)
    sub = node(name)
    out = _fill(copy.deepcopy(values), sub)
    problems = _errors(out, sub, name)
    if problems:
        raise ConfigError("; ".join(problems))
    return out


class Completed(dict):
    """Settings sections already completed and checked by :func:`complete_sections`: handing
    them to it again returns them as they are, so a command checks its settings once."""


def complete_sections(given: str | Mapping | None, names: tuple[str, ...]) -> Completed:
    """``{name: section}`` for each of ``names`` from a ``--settings`` value holding some of them
    (e.g. ``{"model": ..., "train": ...}``), each completed by :func:`complete_section`.

    Raises:
        ConfigError: a section that is not one of ``names``, or a bad setting, named.
    """
    if isinstance(given, Completed) and tuple(given) == tuple(names):
        return given
    values = parse_settings(given)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"unknown settings section(s) {', '.join(unknown)} (known: {', '.join(names)})")
    return Completed((name, complete_section(name, values.get(name) or {})) for name in names)


def section(config: Mapping[str, Any], name: str) -> dict:
    """Section ``name`` of a config completed by :func:`complete` (a deep copy)."""
    if name not in config:
        raise ConfigError(f"the config has no section '{name}' (complete it first: avvp.settings.complete)")
    return copy.deepcopy(config[name])


def override_problems(name: str, given: Any, where: str) -> list[str]:
    """Problems of ``given`` as an override of section ``name`` (checked, not filled)."""
    if name not in ("model", "train", "evaluate"):
        return [f"{where}: not a section a recipe may override (model, train, evaluate)"]
    return _errors(given, _without_defaults(node(name)), where)


def _without_defaults(node_schema: Any) -> Any:
    """``node_schema`` without its ``default`` keywords (overrides are checked, not filled)."""
    if isinstance(node_schema, Mapping):
        return {k: _without_defaults(v) for k, v in node_schema.items() if k != "default"}
    if isinstance(node_schema, list):
        return [_without_defaults(v) for v in node_schema]
    return node_schema


def leaf_keys() -> dict[str, Mapping]:
    """Every setting that holds a value (not a section), by dotted key, with its schema."""
    out: dict[str, Mapping] = {}

    def walk(prefix: str, node_schema: Mapping) -> None:
        for key, sub in (node_schema.get("properties") or {}).items():
            sub = _resolve(sub)
            dotted = f"{prefix}{key}"
            if sub.get("properties"):
                walk(dotted + ".", sub)
            else:
                out[dotted] = sub
    walk("", _schema())
    return out


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
