"""``config.yaml`` and ``docs/configuration.md``, generated from the settings definition.

Both files are derived from ``avvp/config.schema.yaml`` (:mod:`avvp.settings`) and never edited
by hand: ``avvp config-doc`` rewrites them, and a test fails when either differs from what this
module generates. ``config.yaml`` is the default config with each setting's meaning as a comment;
``docs/configuration.md`` has one reference table per section.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping

import yaml

from avvp import settings
from avvp.infra.atomic import write_text

#: Where the generated files go, relative to the repository root.
CONFIG_FILE = "config.yaml"
REFERENCE_FILE = "docs/configuration.md"
#: Column of the comments in config.yaml.
COMMENT_COLUMN = 30
WIDTH = 100

_CONFIG_HEAD = """\
# avvp configuration. The default builds the embedded synthetic demo data set end to end:
#   snakemake --cores 2
# Other configs (config/llp.yaml, ...) are merged over this file; every key is checked against
# the settings definition (avvp/config.schema.yaml): a misspelt key is an error.
#
# GENERATED from avvp/config.schema.yaml by `avvp config-doc`: do not edit by hand. To change a
# default or add a setting, edit the schema and run `avvp config-doc` (docs/development.md).
# The reference of every setting: docs/configuration.md.
"""

_REFERENCE_HEAD = """\
# Configuration reference

<!-- GENERATED from avvp/config.schema.yaml by `avvp config-doc`: do not edit by hand. -->

Every setting of `config.yaml`: its type, default, allowed values and meaning, one table per
section. This page and `config.yaml` are generated from one definition, the settings schema
`avvp/config.schema.yaml`; `avvp` checks a config against it once, when a run starts, and names
the key of every problem (`train.lr: -1 is less than or equal to the minimum of 0`).

A config file given with `snakemake --configfile FILE` is merged over `config.yaml` key by key;
a command run by hand takes one section as `--settings` (inline JSON or a file) and fills in the
defaults below. To add a setting or change a default, see
[Adding a setting](development.md#adding-a-setting).
"""


def _value(value: Any) -> str:
    """A value as one line of YAML flow style."""
    text = yaml.safe_dump([value], default_flow_style=True, width=10**6, allow_unicode=True).strip()
    return text[1:-1]


def _comment_lines(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width=max(width, 30)) or [""]


def _yaml_lines(values: Mapping[str, Any], node: Mapping, indent: int) -> list[str]:
    lines: list[str] = []
    props = node.get("properties") or {}
    for key, value in values.items():
        sub = settings._resolve(props.get(key, {}))
        pad = " " * indent
        for note in sub.get("$comment") or []:
            lines.append(f"{pad}# {note}")
        description = sub.get("description", "")
        nested = isinstance(value, dict) and value and sub.get("properties")
        head = f"{pad}{key}:" if nested else f"{pad}{key}: {_value(value)}"
        if description and len(head) >= WIDTH - 40:  # too long for a comment beside it
            lines.extend(f"{pad}# {line}" for line in _comment_lines(description, WIDTH - indent - 2))
            lines.append(head)
        elif description:
            column = max(COMMENT_COLUMN, len(head) + 1)
            wrapped = _comment_lines(description, WIDTH - column - 2)
            lines.append(f"{head.ljust(column)}# {wrapped[0]}")
            lines.extend(" " * column + f"# {more}" for more in wrapped[1:])
        else:
            lines.append(head)
        if nested:
            lines.extend(_yaml_lines(value, sub, indent + 2))
    return lines


def config_yaml() -> str:
    """The text of the generated ``config.yaml``: the default config, commented."""
    schema = settings.schema()
    values = settings.defaults()
    body = []
    for key, value in values.items():
        block = _yaml_lines({key: value}, schema, 0)
        if isinstance(value, dict) or body and body[-1] != "":
            body.append("")
        body.extend(block)
    return _CONFIG_HEAD + "\n".join(body).lstrip("\n").join(["\n", "\n"])


def _type(sub: Mapping) -> str:
    if "oneOf" in sub:
        return " or ".join(_type(option) for option in sub["oneOf"])
    kind = sub.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    if "array" in kinds and "items" in sub:
        kinds = [f"array of {_type(sub['items'])}" if k == "array" else k for k in kinds]
    return " or ".join(kinds)


def _allowed(sub: Mapping) -> str:
    parts = []
    if "enum" in sub:
        parts.append(" | ".join(_value(v) for v in sub["enum"]))
    for word, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                       ("exclusiveMaximum", "<"), ("multipleOf", "multiple of")):
        if word in sub:
            parts.append(f"{sign} {sub[word]}")
    if "minItems" in sub and sub.get("minItems") == sub.get("maxItems"):
        parts.append(f"{sub['minItems']} items")
    elif "minItems" in sub:
        parts.append(f"≥ {sub['minItems']} items")
    if "pattern" in sub:
        parts.append(f"matches `{sub['pattern']}`")
    items = sub.get("items") or {}
    if items.get("enum"):
        parts.append("each " + " | ".join(_value(v) for v in items["enum"]))
    return ", ".join(parts)


def _cell(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\n", " "))


_MISSING = object()


def _rows(prefix: str, node: Mapping, default: Mapping) -> list[str]:
    rows = []
    for key, sub in (node.get("properties") or {}).items():
        sub = settings._resolve(sub)
        dotted = f"{prefix}{key}"
        value = default[key] if key in default else sub.get("default", _MISSING)
        if sub.get("properties"):
            rows.extend(_rows(dotted + ".", sub, value if isinstance(value, dict) else {}))
            continue
        shown = "–" if value is _MISSING else f"`{_value(value)}`"
        rows.append(f"| `{dotted}` | {_cell(_type(sub))} | {_cell(shown)} | {_cell(_allowed(sub))} | "
                    f"{_cell(sub.get('description', ''))} |")
    return rows


def reference_markdown() -> str:
    """The text of the generated ``docs/configuration.md``."""
    schema = settings.schema()
    values = settings.defaults()
    out = [_REFERENCE_HEAD]
    top = [key for key, sub in schema["properties"].items() if not settings._resolve(sub).get("properties")]
    out.append("## Top level\n")
    out.append("| key | type | default | allowed | meaning |\n|---|---|---|---|---|")
    out.extend(_rows("", {"properties": {k: schema["properties"][k] for k in top}}, values))
    for key, sub in schema["properties"].items():
        sub = settings._resolve(sub)
        if not sub.get("properties"):
            continue
        out.append(f"\n## `{key}`\n")
        if sub.get("description"):
            out.append(sub["description"] + "\n")
        out.append("| key | type | default | allowed | meaning |\n|---|---|---|---|---|")
        out.extend(_rows(f"{key}.", sub, values.get(key, {})))
    return "\n".join(out) + "\n"


def generated(root: str | Path = ".") -> dict[Path, str]:
    """The generated files (path under ``root`` -> text)."""
    root = Path(root)
    return {root / CONFIG_FILE: config_yaml(), root / REFERENCE_FILE: reference_markdown()}


def write(root: str | Path = ".") -> list[Path]:
    """Write the generated files under ``root`` (atomically); the paths written."""
    written = []
    for path, text in generated(root).items():
        write_text(path, text, provenance=None)
        written.append(path)
    return written
