"""Checks of the workflow config that the schema cannot express, run when the workflow loads.

The JSON schema (``workflow/schemas/config.schema.yaml``) checks each value on its own. Settings
that depend on each other, and names that become folder names, are checked here, before any job
runs, so a bad config stops ``snakemake`` (even ``snakemake -n``) at once with one message that
lists every problem, instead of failing inside a job after hours of work:

* ``dataset`` and every part of ``parse.out`` are safe names (:mod:`avvp.infra.paths`): the results of a
  data set stay inside the results folder;
* ``features.frame.crop`` is at most ``features.frame.size`` (the crop is cut from the resized
  frame), unless ``features.official`` imports the official features instead;
* ``synth`` (for ``data.source: synth``) passes the demo generator's own checks, which include
  ``events_per_video`` against ``n_classes``;
* every per-variant override in ``recipes`` is a valid part of its section (``model``, ``train``,
  ``evaluate``) of the settings definition; overrides are checked, never filled with defaults.

Light on purpose: it imports torch only when a frame setting is left to the extractor's default.
"""

from __future__ import annotations

from typing import Any, Mapping

from avvp.infra.errors import AvvpError, ConfigError
from avvp.infra.paths import name_problem


def config_problems(config: Mapping[str, Any]) -> list[str]:
    """Every problem of ``config`` that this module checks (empty: none)."""
    problems = []
    for check in (_dataset, _parse_out, _frame_crop, _synth, _recipes):
        problem = check(config)
        if problem:
            problems.append(problem)
    return problems


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError listing every problem of ``config`` (see the module doc)."""
    problems = config_problems(config)
    if problems:
        raise ConfigError("config: " + "; ".join(problems))


def _dataset(config: Mapping[str, Any]) -> str | None:
    return name_problem(config.get("dataset"), "dataset")


def _parse_out(config: Mapping[str, Any]) -> str | None:
    out = (config.get("parse") or {}).get("out")
    if out is None:
        return None
    if not isinstance(out, str) or out.startswith("/"):
        return f"parse.out {out!r} must be a relative folder under the data set's results"
    for part in out.split("/"):
        problem = name_problem(part, "parse.out part")
        if problem:
            return problem
    return None


def _frame_crop(config: Mapping[str, Any]) -> str | None:
    features = config.get("features") or {}
    if features.get("official"):
        return None
    frame = dict(features.get("frame") or {})
    if "size" not in frame or "crop" not in frame:
        frame = {**_frame_defaults(frame.get("extractor")), **frame}
    size, crop = frame.get("size"), frame.get("crop")
    if isinstance(size, int) and isinstance(crop, int) and crop > size:
        return (f"features.frame.crop ({crop}) is larger than features.frame.size ({size}): the "
                f"centre crop is cut from the frame resized to {size} pixels on its shorter side; "
                f"set crop <= size, or crop: null to keep the whole frame")
    return None


def _frame_defaults(name: str | None) -> dict:
    """The frame extractor's own defaults (imports the extractors, and so torch)."""
    from avvp.stages.extractors import DEFAULT_EXTRACTORS, extractor_class

    try:
        return dict(getattr(extractor_class(name or DEFAULT_EXTRACTORS["frame"]), "defaults", {}))
    except ConfigError:
        return {}  # an unknown extractor is reported by the extraction job, naming the known ones


def _synth(config: Mapping[str, Any]) -> str | None:
    if (config.get("data") or {}).get("source") != "synth":
        return None
    from avvp.stages.synth.settings import resolve

    try:
        resolve(dict(config.get("synth") or {}))
    except AvvpError as exc:
        return str(exc)
    return None


def _recipes(config: Mapping[str, Any]) -> str | None:
    """Config ``recipes``: registry variants and known sections (:func:`avvp.experiments.check_recipes`),
    each override's values checked against the settings definition."""
    from avvp.experiments import check_recipes
    from avvp.settings import override_problems

    try:
        recipes = check_recipes(config.get("recipes"))
    except ConfigError as exc:
        return str(exc)
    problems = []
    for name, recipe in recipes.items():
        for part, given in (recipe or {}).items():
            problems += override_problems(part, given, f"recipes.{name}.{part}")
    return "; ".join(problems) or None
