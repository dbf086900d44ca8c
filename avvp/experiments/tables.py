"""The paper's tables and the methods' tables: their rows, settings and input files (see
:mod:`avvp.experiments`)."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any, Mapping

from avvp import layout
from avvp.core import feature_roles
from avvp.settings import complete, defaults as default_config
from avvp.infra.errors import ConfigError
from avvp.experiments.variants import (get_ratio_target, get_variant, metrics_path, quality_path, ratio_quality_path,
                       tau_name, variant_settings)

#: The split every table reports.
TABLE_SPLIT = "test"
TABLES = ("table1", "table2", "table3", "table4", "denoising", "methods", "official")
TABLE_TITLES = {  # settings: display titles, not defaults
    "table1": "Main result: HAN against MA",
    "table2": "Ablation: contrastive loss (C) and label refinement (R)",
    "table3": "Label refinement per modality",
    "table4": "Contrastive temperature τ",
    "denoising": "Label denoising: MA and JoMoLD",
    "methods": "Weak-label methods: HAN, MA, JoMoLD, VALOR",
    "official": "Each method as its official code runs it: one run at the official seed",
}
#: The methods table's rows; ``valor_pp`` joins them where the teachers' feature roles are configured.
METHODS_ROWS = ("baseline", "ma", "jomold", "valor", "valor_ma", "valor_jomold")
#: The official table's rows and labels (``experiments.official``), each trained once with its official seed
#: (:attr:`avvp.experiments.Variant.official_seed`); its HAN row is ``experiments.table1_baseline``,
#: and ``valor_pp`` joins where the teachers' feature roles are configured.
OFFICIAL_ROWS = {"ma": "MA", "jomold": "JoMoLD", "valor": None, "valor_plus": None}  # None: the variant's label
#: Published LLP test F1 (%) beside the methods table (``experiments.published``): segment level
#: A, V, AV, Type@AV, Event@AV, then event level. HAN, JoMoLD, VALOR and VALOR++ as reported by
#: Lai et al. (UWAV, CVPR 2025, Table 1 and Table A6); MA from its paper (Wu & Yang, CVPR 2021).
_HAN_PUBLISHED = ("HAN", (60.1, 52.9, 48.9, 54.0, 55.4, 51.3, 48.9, 43.0, 47.7, 48.0))
PUBLISHED = {
    "baseline": _HAN_PUBLISHED,
    "han": _HAN_PUBLISHED,
    "ma": ("MA", (60.3, 60.0, 55.1, 58.9, 57.9, 53.6, 56.4, 49.0, 53.0, 50.6)),
    "jomold": ("JoMoLD", (61.3, 63.8, 57.2, 60.8, 59.9, 53.9, 59.9, 49.6, 54.5, 52.5)),
    "valor": ("VALOR", (61.8, 65.9, 58.4, 62.0, 61.5, 55.4, 62.6, 52.2, 56.7, 54.2)),
    "valor_pp": ("VALOR++", (68.1, 68.4, 61.9, 66.2, 66.8, 61.2, 64.7, 55.5, 60.4, 59.0)),
}
#: The tables that show :data:`PUBLISHED` beside their cells (with ``experiments.published``).
PUBLISHED_TABLES = ("methods", "official")
#: The denoising table's rows (``experiments.denoising_oracle`` adds ``jomold_truth``).
DENOISING_ROWS = ("baseline", "ma", "jomold_nocl", "jomold", "jomold_ma")


@dataclass(frozen=True)
class TableRow:
    """One row of a table: the variant it averages, the row's display label, and the seeds it
    averages over where they are the row's own (None: the table's, config ``train.seeds``)."""

    variant: str
    label: str
    seeds: tuple[int, ...] | None = None


#: The feature roles VALOR++ reads.
TEACHER_ROLES = feature_roles.TEACHER_ROLES


def teacher_features(config: Mapping[str, Any]) -> bool:
    """Whether the data set has VALOR++'s feature roles: extracted (config ``features.teachers``
    names both) or imported from VALOR's release (config ``pseudo.release``)."""
    extracted = set((config.get("features", {}) or {}).get("teachers") or ())
    released = bool((config.get("pseudo", {}) or {}).get("release"))
    return released or set(TEACHER_ROLES) <= extracted


#: The variants Table 1's HAN row may be (config ``experiments.table1_baseline``).
TABLE1_BASELINES = ("baseline", "han")


def table_settings(config: Mapping[str, Any]) -> dict:
    """What the tables need from a whole workflow config: seeds, Table-4 τ values, the default τ.

    Keys: ``seeds`` (config ``train.seeds``), ``taus`` (``experiments.taus``), ``tau`` (the
    temperature ``ma`` trains with: ``train.contrastive.tau`` unless a recipe changes it),
    ``split`` (always ``test``), ``table1_baseline`` (``experiments.table1_baseline``), ``truth``
    (the data set knows its true per-modality training labels: the demo; the denoising table then
    scores the drops) and ``denoising_oracle`` (``experiments.denoising_oracle``).
    """
    config = complete(config)
    train, exp = config["train"], config["experiments"]
    ma_train, _ = variant_settings("ma", train, config["evaluate"], config["recipes"])
    return {
        "seeds": [int(s) for s in train["seeds"]],
        "taus": [float(t) for t in exp["taus"]],
        "tau": float(ma_train["contrastive"]["tau"]),
        "split": TABLE_SPLIT,
        "table1_baseline": exp["table1_baseline"],
        "truth": config["data"]["source"] == "synth",
        "denoising_oracle": bool(exp["denoising_oracle"]),
        "teacher_features": teacher_features(config),
        "published": bool(exp["published"]),
    }


@functools.lru_cache(maxsize=1)
def _defaults() -> dict:
    return table_settings(default_config())


def table_defaults() -> dict:
    """A table's settings where a command names none: :func:`table_settings` of the default config
    (the settings definition, :mod:`avvp.settings`)."""
    return copy.deepcopy(_defaults())


def table_rows(table: str, settings: Mapping[str, Any]) -> list[TableRow]:
    """The rows of ``table`` (Table 1 its HAN row from ``settings["table1_baseline"]``, Table 4
    its τ values from ``settings["taus"]``).

    A τ equal to the default temperature ``settings["tau"]`` reuses the ``ma`` variant, which is
    the same recipe.
    """
    def row(name: str, label: str | None = None) -> TableRow:
        return TableRow(name, label or get_variant(name).label)

    def official(name: str, label: str | None = None) -> TableRow:
        seed = get_variant(name).official_seed
        return TableRow(name, f"{label or get_variant(name).label} (seed {seed})", (seed,))

    baseline = settings.get("table1_baseline", _defaults()["table1_baseline"])
    if table in ("table1", "official") and baseline not in TABLE1_BASELINES:
        raise ConfigError(f"experiments.table1_baseline = {baseline!r} "
                          f"(allowed: {', '.join(TABLE1_BASELINES)})")
    if table == "table1":
        return [row(baseline, "HAN"), row("ma", "MA")]
    if table == "official":
        names = {**OFFICIAL_ROWS, **({"valor_pp": None} if settings.get("teacher_features") else {})}
        return [official(baseline, "HAN")] + [official(n, label) for n, label in names.items()]
    if table == "table2":
        return [row(n) for n in ("baseline", "baseline_c", "baseline_r", "ma")]
    if table == "table3":
        return [row("ma_audio"), row("ma_visual"), row("ma", "refine both")]
    if table == "table4":
        default = float(settings.get("tau", _defaults()["tau"]))
        taus = settings.get("taus", _defaults()["taus"])
        if not taus:
            raise ConfigError("experiments.taus is empty: Table 4 needs at least one temperature")
        return [row("ma" if abs(float(t) - default) < 1e-12 else tau_name("ma", float(t)),
                    f"τ = {float(t):g}") for t in taus]
    if table == "denoising":
        names = list(DENOISING_ROWS) + (["jomold_truth"] if settings.get("denoising_oracle") else [])
        return [row(n) for n in names]
    if table == "methods":
        names = list(METHODS_ROWS) + (["valor_pp"] if settings.get("teacher_features") else [])
        return [row(n) for n in names]
    raise ConfigError(f"unknown table {table!r} (known: {', '.join(TABLES)})")


def table_seeds(settings: Mapping[str, Any]) -> list[int]:
    """The training seeds a table averages over (where a row has none of its own)."""
    values = settings.get("seeds", _defaults()["seeds"])
    if not values:
        raise ConfigError("train.seeds is empty")
    return [int(s) for s in values]


def row_seeds(row: TableRow, settings: Mapping[str, Any]) -> list[int]:
    """The seeds one table row averages over: its own, else the table's (:func:`table_seeds`)."""
    return list(row.seeds) if row.seeds is not None else table_seeds(settings)


def enabled_tables(config: Mapping[str, Any]) -> list[str]:
    """The tables switched on in config ``experiments``, in order."""
    exp = config.get("experiments", {}) or {}
    return [t for t in TABLES if exp.get(t, False)]


def table_quality(table: str, settings: Mapping[str, Any]) -> bool:
    """Whether ``table`` scores the drops against the truth (the denoising table, on the demo)."""
    return table == "denoising" and bool(settings.get("truth"))


def table_ratio_targets(table: str, settings: Mapping[str, Any]) -> list[str]:
    """The ratio targets whose estimates ``table`` compares with the true ratios."""
    if not table_quality(table, settings):
        return []
    names: list[str] = []
    for r in table_rows(table, settings):
        name = get_variant(r.variant).ratios_from
        if name is not None and get_ratio_target(name).source != "truth" and name not in names:
            names.append(name)
    return names


def table_inputs(table: str, settings: Mapping[str, Any]) -> list[str]:
    """The files ``table`` averages: the metrics of every row variant and seed, and for a table
    that scores drops (:func:`table_quality`) their quality and the ratio comparisons."""
    split = settings.get("split", _defaults()["split"])
    rows = table_rows(table, settings)
    files = [metrics_path(r.variant, s, split) for r in rows for s in row_seeds(r, settings)]
    if table_quality(table, settings):
        files += [q for r in rows for s in row_seeds(r, settings) if (q := quality_path(r.variant, s)) is not None]
        files += [ratio_quality_path(n, s) for n in table_ratio_targets(table, settings)
                  for s in table_seeds(settings)]
    return files


def table_outputs(table: str) -> dict[str, str]:
    """The files of one table: Markdown, CSV and picture."""
    return {ext: layout.fill(layout.TABLE, table=table, ext=ext) for ext in layout.TABLE_EXTENSIONS}


def table_targets(config: Mapping[str, Any]) -> list[str]:
    """The files of every enabled table (to build by default)."""
    return [p for t in enabled_tables(config) for p in table_outputs(t).values()]


def table_variants(config: Mapping[str, Any]) -> list[str]:
    """Every variant the enabled tables need, without repeats, in table order."""
    names: list[str] = []
    settings = table_settings(config)
    for t in enabled_tables(config):
        for r in table_rows(t, settings):
            if r.variant not in names:
                names.append(r.variant)
    return names
