"""The experiment-variant registry: what each trained variant is, and the paper's tables.

A *variant* is one training recipe; each is trained once per seed (config ``train.seeds``):

==========================  ===========  =========  ==============================================
name                        contrastive  tau        labels
==========================  ===========  =========  ==============================================
``baseline``                no           –          weak labels (HAN)
``baseline_c``              yes          config     weak labels (+C)
``baseline_r``              no           –          refined by ``baseline`` of the same seed (+R)
``ma``                      yes          config     refined by ``baseline_c`` (+C+R, MA)
``ma_audio``                yes          config     as ``ma``, only audio labels refined
``ma_visual``               yes          config     as ``ma``, only visual labels refined
``baseline_c_tau<t>``       yes          t          weak labels (the base of ``ma_tau<t>``)
``ma_tau<t>``               yes          t          refined by ``baseline_c_tau<t>``
``han``                     no           –          weak labels, with the HAN recipe (see below)
==========================  ===========  =========  ==============================================

A refined variant's labels are the *refine target* of the same name:
``refine/<name>/seed<k>/labels.parquet``, made by ``avvp refine`` from the model
``models/<base>/seed<k>/model.pt`` with the variant's refine options over config ``refine``.

A variant may carry a *recipe*: overrides of config ``train`` and ``evaluate`` for it alone.
``han`` carries the HAN paper's (40 epochs, the epoch with the best validation segment-level
Type@AV, gate ``han`` for validation and evaluation); the others carry none. Config ``recipes``
overrides the registry's recipes, per variant (:func:`variant_settings`).

Tables (config ``experiments``): ``table1`` the main result (HAN against MA; its HAN row is
``baseline`` or, with ``experiments.table1_baseline: han``, ``han``), ``table2`` the
ablation (baseline, +C, +R, +C+R), ``table3`` refining audio only / visual only / both, ``table4``
the contrastive temperature τ (config ``experiments.taus``). Every cell is the mean ± std over seeds
of ``eval/<variant>/seed<k>/test/metrics.json``.

All paths here are relative to the data set's results folder (``<results>/<dataset>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError
from .settings import merge_settings

TAU_PATTERN = re.compile(r"^(?P<stem>baseline_c|ma)_tau(?P<tau>[0-9]+(?:\.[0-9]+)?)$")


@dataclass(frozen=True)
class Variant:
    """One training recipe.

    Attributes:
        name: the registry name (also the folder name under ``models/``, ``eval/``, ``refine/``).
        contrastive: train with the contrastive loss (official.md §e3).
        tau: the contrastive temperature; None means config ``train.contrastive.tau``.
        labels_from: the refine target whose labels this variant trains on (None: weak labels).
        base: the variant whose trained model refines the labels (None when not refined).
        refine: refine options that override config ``refine`` for this variant's labels.
        label: a short display name for tables.
        recipe: overrides of config ``train`` and ``evaluate`` for this variant, keyed by section
            (:data:`RECIPE_SECTIONS`; see :func:`variant_settings`).
    """

    name: str
    contrastive: bool
    tau: float | None = None
    labels_from: str | None = None
    base: str | None = None
    refine: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    recipe: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def refined(self) -> bool:
        return self.labels_from is not None


_FIXED: dict[str, Variant] = {
    "baseline": Variant("baseline", False, label="HAN (baseline)"),
    "baseline_c": Variant("baseline_c", True, label="+C"),
    "baseline_r": Variant("baseline_r", False, labels_from="baseline_r", base="baseline", label="+R"),
    "ma": Variant("ma", True, labels_from="ma", base="baseline_c", label="+C+R (MA)"),
    "ma_audio": Variant("ma_audio", True, labels_from="ma_audio", base="baseline_c",
                        refine={"modalities": "audio"}, label="refine audio only"),
    "ma_visual": Variant("ma_visual", True, labels_from="ma_visual", base="baseline_c",
                         refine={"modalities": "visual"}, label="refine visual only"),
    "han": Variant("han", False, label="HAN (HAN recipe)",
                   recipe={"train": {"epochs": 40, "select": "best", "gate": "han"},
                           "evaluate": {"gate": "han"}}),
}


def tau_name(stem: str, tau: float) -> str:
    """The variant name of ``stem`` (``ma`` or ``baseline_c``) trained with temperature ``tau``."""
    return f"{stem}_tau{tau:g}"


def get_variant(name: str) -> Variant:
    """The registry entry of ``name``; raises ConfigError naming the known variants."""
    if name in _FIXED:
        return _FIXED[name]
    match = TAU_PATTERN.match(name)
    if match:
        tau = float(match["tau"])
        if tau <= 0:
            raise ConfigError(f"variant {name!r}: the temperature must be positive")
        if match["stem"] == "baseline_c":
            return Variant(name, True, tau=tau, label=f"+C, τ = {tau:g}")
        return Variant(name, True, tau=tau, labels_from=name, base=tau_name("baseline_c", tau),
                       label=f"τ = {tau:g}")
    known = ", ".join(list(_FIXED) + ["baseline_c_tau<t>", "ma_tau<t>"])
    raise ConfigError(f"unknown experiment variant {name!r} (known: {known})")


def variant_names() -> list[str]:
    """The fixed variant names (the temperature variants are made on demand)."""
    return list(_FIXED)


def refine_settings(name: str, refine_config: Mapping[str, Any] | None) -> dict:
    """Config ``refine`` with the overrides of refine target ``name`` applied."""
    variant = get_variant(name)
    if not variant.refined:
        raise ConfigError(f"variant {name!r} trains on weak labels: it has no refine target")
    settings = dict(refine_config or {})
    settings.update(variant.refine)
    return settings


#: The config sections a recipe may override, in the order :func:`variant_settings` returns them.
RECIPE_SECTIONS = ("train", "evaluate")


def check_recipes(recipes_config: Mapping[str, Any] | None) -> dict:
    """Config ``recipes`` (variant name -> ``{train: {...}, evaluate: {...}}``), checked.

    Raises:
        ConfigError: a name that is no registry variant, an unknown section, or ``train.seeds``
            (every variant trains with the same seeds, so the tables can average them), named.
    """
    recipes = dict(recipes_config or {})
    for name, recipe in recipes.items():
        try:
            get_variant(name)
        except ConfigError as exc:
            raise ConfigError(f"recipes: {exc}") from None
        recipe = recipe or {}
        if not isinstance(recipe, Mapping):
            raise ConfigError(f"recipes.{name} must be a mapping of {' and '.join(RECIPE_SECTIONS)}")
        unknown = sorted(set(recipe) - set(RECIPE_SECTIONS))
        if unknown:
            raise ConfigError(f"unknown section(s) recipes.{name}.{', '.join(unknown)} "
                              f"(known: {', '.join(RECIPE_SECTIONS)})")
        if "seeds" in (recipe.get("train") or {}):
            raise ConfigError(f"recipes.{name}.train.seeds: the seeds are set for all variants "
                              "(config train.seeds)")
    return recipes


def variant_settings(name: str, train_config: Mapping[str, Any] | None,
                     evaluate_config: Mapping[str, Any] | None,
                     recipes_config: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """The ``train`` and ``evaluate`` settings variant ``name`` runs with.

    Each is the config section, overlaid with the variant's registry recipe, overlaid with its
    entry in config ``recipes`` (:func:`check_recipes`); nested mappings (``train.contrastive``)
    merge key by key. Without a recipe the sections come back unchanged (same keys, same order).
    """
    variant = get_variant(name)
    given = check_recipes(recipes_config).get(name) or {}
    sections = []
    for section, config in zip(RECIPE_SECTIONS, (train_config, evaluate_config)):
        merged = merge_settings(config or {}, variant.recipe.get(section) or {}, section, strict=False)
        sections.append(merge_settings(merged, given.get(section) or {}, section, strict=False))
    return sections[0], sections[1]


def train_tau(variant: Variant, default_tau: float) -> float:
    """The contrastive temperature a variant trains with."""
    return default_tau if variant.tau is None else variant.tau


# ----------------------------------------------------------------------------------- paths

def model_path(variant: str, seed: int) -> str:
    return f"models/{variant}/seed{seed}/model.pt"


def refine_path(name: str, seed: int) -> str:
    return f"refine/{name}/seed{seed}/labels.parquet"


def metrics_path(variant: str, seed: int, split: str = "test") -> str:
    return f"eval/{variant}/seed{seed}/{split}/metrics.json"


def labels_target(name: str, seed: int) -> str | None:
    """The refined-labels file variant ``name`` trains on for ``seed`` (None: weak labels)."""
    variant = get_variant(name)
    return None if variant.labels_from is None else refine_path(variant.labels_from, seed)


def base_model_target(name: str, seed: int) -> str:
    """The trained model that refine target ``name`` is made from."""
    variant = get_variant(name)
    if variant.base is None:
        raise ConfigError(f"variant {name!r} trains on weak labels: it has no refine target")
    return model_path(variant.base, seed)


# ---------------------------------------------------------------------------------- tables

TABLES = ("table1", "table2", "table3", "table4")
TABLE_TITLES = {
    "table1": "Main result: HAN against MA",
    "table2": "Ablation: contrastive loss (C) and label refinement (R)",
    "table3": "Label refinement per modality",
    "table4": "Contrastive temperature τ",
}


@dataclass(frozen=True)
class TableRow:
    """One row of a table: the variant it averages and the row's display label."""

    variant: str
    label: str


#: Defaults of a table's settings (see :func:`table_settings`).
TABLE_DEFAULTS: dict[str, Any] = {"seeds": [1], "taus": [0.1, 0.2, 0.3, 0.4], "tau": 0.2, "split": "test",
                                  "table1_baseline": "baseline"}
#: The variants Table 1's HAN row may be (config ``experiments.table1_baseline``).
TABLE1_BASELINES = ("baseline", "han")


def table_settings(config: Mapping[str, Any]) -> dict:
    """What the tables need from a whole workflow config: seeds, Table-4 τ values, the default τ.

    Keys: ``seeds`` (config ``train.seeds``), ``taus`` (``experiments.taus``), ``tau`` (the
    temperature ``ma`` trains with: ``train.contrastive.tau`` unless a recipe changes it),
    ``split`` (always ``test``) and ``table1_baseline`` (``experiments.table1_baseline``).
    """
    train = config.get("train", {}) or {}
    exp = config.get("experiments", {}) or {}
    ma_train, _ = variant_settings("ma", train, config.get("evaluate"), config.get("recipes"))
    return {
        "seeds": [int(s) for s in train.get("seeds", TABLE_DEFAULTS["seeds"])],
        "taus": [float(t) for t in exp.get("taus", TABLE_DEFAULTS["taus"])],
        "tau": float((ma_train.get("contrastive", {}) or {}).get("tau", TABLE_DEFAULTS["tau"])),
        "split": TABLE_DEFAULTS["split"],
        "table1_baseline": exp.get("table1_baseline", TABLE_DEFAULTS["table1_baseline"]),
    }


def table_rows(table: str, settings: Mapping[str, Any]) -> list[TableRow]:
    """The rows of ``table`` (Table 1 its HAN row from ``settings["table1_baseline"]``, Table 4
    its τ values from ``settings["taus"]``).

    A τ equal to the default temperature ``settings["tau"]`` reuses the ``ma`` variant, which is
    the same recipe.
    """
    def row(name: str, label: str | None = None) -> TableRow:
        return TableRow(name, label or get_variant(name).label)

    if table == "table1":
        baseline = settings.get("table1_baseline", TABLE_DEFAULTS["table1_baseline"])
        if baseline not in TABLE1_BASELINES:
            raise ConfigError(f"experiments.table1_baseline = {baseline!r} "
                              f"(allowed: {', '.join(TABLE1_BASELINES)})")
        return [row(baseline, "HAN"), row("ma", "MA")]
    if table == "table2":
        return [row(n) for n in ("baseline", "baseline_c", "baseline_r", "ma")]
    if table == "table3":
        return [row("ma_audio"), row("ma_visual"), row("ma", "refine both")]
    if table == "table4":
        default = float(settings.get("tau", TABLE_DEFAULTS["tau"]))
        taus = settings.get("taus", TABLE_DEFAULTS["taus"])
        if not taus:
            raise ConfigError("experiments.taus is empty: Table 4 needs at least one temperature")
        return [row("ma" if abs(float(t) - default) < 1e-12 else tau_name("ma", float(t)),
                    f"τ = {float(t):g}") for t in taus]
    raise ConfigError(f"unknown table {table!r} (known: {', '.join(TABLES)})")


def table_seeds(settings: Mapping[str, Any]) -> list[int]:
    """The training seeds a table averages over."""
    values = settings.get("seeds", TABLE_DEFAULTS["seeds"])
    if not values:
        raise ConfigError("train.seeds is empty")
    return [int(s) for s in values]


def enabled_tables(config: Mapping[str, Any]) -> list[str]:
    """The tables switched on in config ``experiments``, in order."""
    exp = config.get("experiments", {}) or {}
    return [t for t in TABLES if exp.get(t, False)]


def table_inputs(table: str, settings: Mapping[str, Any]) -> list[str]:
    """The metrics files ``table`` averages: one per row variant and seed."""
    split = settings.get("split", TABLE_DEFAULTS["split"])
    return [metrics_path(r.variant, s, split) for r in table_rows(table, settings)
            for s in table_seeds(settings)]


def table_outputs(table: str) -> dict[str, str]:
    """The files of one table: Markdown, CSV and picture."""
    return {ext: f"tables/{table}.{ext}" for ext in ("md", "csv", "png")}


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
