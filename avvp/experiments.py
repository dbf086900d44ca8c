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
``jomold_ne``               yes (NCE)    0.2        weak labels: JoMoLD's noise estimator (no
                                                    cross-attention)
``jomold``                  yes (NCE)    0.2        denoised per batch with the ratios of
                                                    ``jomold_ne`` (JoMoLD w/ CL)
``jomold_nocl``             no           –          as ``jomold``, without the contrastive term
``jomold_ma``               yes (NCE)    0.2        as ``jomold``, with the ratios of MA's drops
``jomold_truth``            yes (NCE)    0.2        as ``jomold``, with the true ratios (demo only)
``valor``                   no           –          weak labels + the teachers' segment-level
                                                    pseudo labels (VALOR, :mod:`avvp.valor`)
``valor_plus``              no           –          as ``valor``, 4 layers of width 256 (VALOR+)
``valor_pp``                no           –          as ``valor_plus`` on the CLAP token map and
                                                    CLIP embeddings (VALOR++)
``valor_ma``                no           –          as ``valor``, pseudo labels of a class set to 0
                                                    in a modality where MA's refinement (refine
                                                    target ``ma``) dropped that modality's label
``valor_jomold``            no           –          as ``valor``, pseudo labels of a class set to 0
                                                    for a step in a modality where JoMoLD's
                                                    per-batch denoising (ratios of ``jomold_ne``)
                                                    drops that modality's label
==========================  ===========  =========  ==============================================

A *pseudo-label* variant (``pseudo``) trains with the segment-level pseudo labels of the two
teachers, ``pseudo/audio.parquet`` and ``pseudo/visual.parquet`` (:data:`PSEUDO_LABELS`), with
VALOR's recipe (:func:`avvp.valor.variants.valor_recipe`).

A refined variant's labels are the *refine target* of the same name:
``refine/<name>/seed<k>/labels.parquet``, made by ``avvp refine`` from the model
``models/<base>/seed<k>/model.pt`` with the variant's refine options over config ``refine``.

A *dynamic* variant (``ratios_from``) trains with per-batch label denoising
(:mod:`avvp.refine.jomold`) driven by the noise ratios of the *ratio target* of that name
(:data:`RATIO_TARGETS`): ``ratios/<name>/seed<k>/ratios.parquet``, made by ``avvp noise-ratios``
from a trained estimator (``jomold``), from a refine target's drops (``ma``) or from the truth
(``truth``). Its drops are recorded (``models/<variant>/seed<k>/drops.parquet``) and scored
(``denoise/<variant>/seed<k>/quality.*``).

A variant may carry a *recipe*: overrides of config ``model``, ``train`` and ``evaluate`` for it
alone. ``han`` carries the HAN paper's (40 epochs, the epoch with the best validation
segment-level Type@AV, gate ``han`` for validation and evaluation); the JoMoLD variants carry
JoMoLD's (:data:`JOMOLD_RECIPE`); the others carry none. Config
``recipes`` overrides the registry's recipes, per variant (:func:`variant_sections`).

Tables (config ``experiments``): ``table1`` the main result (HAN against MA; its HAN row is
``baseline`` or, with ``experiments.table1_baseline: han``, ``han``), ``table2`` the
ablation (baseline, +C, +R, +C+R), ``table3`` refining audio only / visual only / both, ``table4``
the contrastive temperature τ (config ``experiments.taus``), ``methods`` the weak-label methods
(baseline, MA, JoMoLD, VALOR, VALOR with MA's labels and, where the teachers' CLAP and CLIP
feature roles are configured, VALOR++; with ``experiments.published`` the published LLP numbers
below it), ``denoising`` label denoising
(baseline, MA, JoMoLD without and with its contrastive term, JoMoLD with MA's ratios; with
``experiments.denoising_oracle`` also with the true ratios), with the drops' precision and recall
where the true per-modality training labels are known. Every cell is the mean ± std over seeds
of ``eval/<variant>/seed<k>/test/metrics.json`` (and of the quality files).

All paths here are relative to the data set's results folder (``<results>/<dataset>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError
from .settings import merge_settings
from .valor.variants import valor_recipe

TAU_PATTERN = re.compile(r"^(?P<stem>baseline_c|ma)_tau(?P<tau>[0-9]+(?:\.[0-9]+)?)$")


@dataclass(frozen=True)
class Variant:
    """One training recipe.

    Attributes:
        name: the registry name (also the folder name under ``models/``, ``eval/``, ``refine/``).
        contrastive: train with the contrastive loss (MA's).
        tau: the contrastive temperature; None means config ``train.contrastive.tau``.
        labels_from: the refine target whose labels this variant trains on (None: weak labels).
        base: the variant whose trained model refines the labels (None when not refined).
        refine: refine options that override config ``refine`` for this variant's labels.
        label: a short display name for tables.
        recipe: overrides of config ``model``, ``train`` and ``evaluate`` for this variant,
            keyed by section (:data:`RECIPE_SECTIONS`; see :func:`variant_sections`).
        ratios_from: the ratio target (:data:`RATIO_TARGETS`) whose noise ratios drive this
            variant's dynamic label denoising (None: no dynamic denoising).
        pseudo: trains with the teachers' segment-level pseudo labels (:data:`PSEUDO_LABELS`).
    """

    name: str
    contrastive: bool
    tau: float | None = None
    labels_from: str | None = None
    base: str | None = None
    refine: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    recipe: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ratios_from: str | None = None
    pseudo: bool = False

    @property
    def refined(self) -> bool:
        return self.labels_from is not None

    @property
    def dynamic(self) -> bool:
        return self.ratios_from is not None


#: JoMoLD's model and recipe: visual dropout 0.5; Adam 5e-4, StepLR(6, 0.25),
#: 25 epochs, batch 128, the epoch with the best validation event-level audio F1 (ties to the
#: later one), the per-modality gate; the contrastive term on post-HAN features, −log Σ q σ.
JOMOLD_RECIPE: dict[str, dict[str, Any]] = {
    "model": {"visual_dropout": 0.5, "cross_attention": True},
    "train": {"epochs": 25, "batch_size": 128, "lr": 5e-4, "step_size": 6, "gamma": 0.25,
              "select": "best", "select_metric": "event_audio", "gate": "ma",
              "contrastive": {"weight": 1.0, "tau": 0.2, "smoothing": 0.1, "negatives": "video",
                              "symmetric": False, "visual": "post", "loss": "nce"}},
    "evaluate": {"gate": "ma"},
}


def _jomold(cross_attention: bool = True, denoise: bool = True) -> dict[str, dict[str, Any]]:
    """JoMoLD's recipe for the estimator (no cross-attention, loss weights 1/1/1) or for the
    denoised model (loss weights 2/1/1, joint-modal denoising)."""
    recipe = {k: dict(v) for k, v in JOMOLD_RECIPE.items()}
    recipe["model"]["cross_attention"] = cross_attention
    if denoise:
        recipe["train"].update({"loss_weights": {"global": 1.0, "audio": 2.0, "visual": 1.0},
                                "denoise": {"method": "jomold"}})
    return recipe


@dataclass(frozen=True)
class RatioTarget:
    """A noise-ratio target ``ratios/<name>/seed<k>/ratios.parquet`` (``avvp noise-ratios``).

    Attributes:
        name: the registry name (the folder name under ``ratios/``).
        source: ``estimator`` (from the trained model of variant ``base``), ``exchange`` (from the
            refined labels of refine target ``base``) or ``truth`` (the demo's true labels).
        base: the variant or refine target it is made from (None for ``truth``).
        label: a short display name.
    """

    name: str
    source: str
    base: str | None
    label: str


RATIO_TARGETS: dict[str, RatioTarget] = {
    "jomold": RatioTarget("jomold", "estimator", "jomold_ne", "JoMoLD noise estimator"),
    "ma": RatioTarget("ma", "exchange", "ma", "MA's exchange estimate"),
    "truth": RatioTarget("truth", "truth", None, "true ratios"),
}


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
    "jomold_ne": Variant("jomold_ne", True, label="JoMoLD noise estimator",
                         recipe=_jomold(cross_attention=False, denoise=False)),
    "jomold": Variant("jomold", True, label="JoMoLD (w/ CL)", recipe=_jomold(), ratios_from="jomold"),
    "jomold_nocl": Variant("jomold_nocl", False, label="JoMoLD w/o CL", recipe=_jomold(), ratios_from="jomold"),
    "jomold_ma": Variant("jomold_ma", True, label="JoMoLD, MA's ratios", recipe=_jomold(), ratios_from="ma"),
    "jomold_truth": Variant("jomold_truth", True, label="JoMoLD, true ratios (oracle)", recipe=_jomold(),
                            ratios_from="truth"),
    "valor": Variant("valor", False, label="VALOR", recipe=valor_recipe("valor"), pseudo=True),
    "valor_plus": Variant("valor_plus", False, label="VALOR+", recipe=valor_recipe("valor_plus"), pseudo=True),
    "valor_pp": Variant("valor_pp", False, label="VALOR++", recipe=valor_recipe("valor_pp"), pseudo=True),
    "valor_ma": Variant("valor_ma", False, labels_from="ma", base="baseline_c", label="VALOR, MA's labels",
                        recipe=valor_recipe("valor"), pseudo=True),
    "valor_jomold": Variant("valor_jomold", False, label="VALOR, JoMoLD's denoising", pseudo=True,
                            recipe=valor_recipe("valor", denoise="jomold"), ratios_from="jomold"),
}

#: The teachers' segment-level pseudo labels per modality (:mod:`avvp.teachers.labels`).
PSEUDO_LABELS = {"audio": "pseudo/audio.parquet", "visual": "pseudo/visual.parquet"}


def pseudo_targets(name: str) -> dict[str, str]:
    """The pseudo-label files variant ``name`` trains with (empty: none)."""
    return dict(PSEUDO_LABELS) if get_variant(name).pseudo else {}


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


def dynamic_variant_names() -> list[str]:
    """The variants trained with dynamic label denoising (they also write ``drops.parquet``)."""
    return [name for name, v in _FIXED.items() if v.dynamic]


def get_ratio_target(name: str) -> RatioTarget:
    """The ratio target ``name``; ConfigError naming the known ones."""
    try:
        return RATIO_TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown noise-ratio target {name!r} (known: {', '.join(RATIO_TARGETS)})") from None


def ratios_target(name: str, seed: int) -> str | None:
    """The noise-ratio file variant ``name`` trains with for ``seed`` (None: no dynamic denoising)."""
    variant = get_variant(name)
    return None if variant.ratios_from is None else ratios_path(variant.ratios_from, seed)


def ratio_source_target(name: str, seed: int) -> str | None:
    """What ratio target ``name`` is made from: a model file (estimator), a refined-labels file
    (exchange) or None (truth)."""
    target = get_ratio_target(name)
    if target.source == "estimator":
        return model_path(target.base, seed)
    if target.source == "exchange":
        return refine_path(target.base, seed)
    return None


def refine_settings(name: str, refine_config: Mapping[str, Any] | None) -> dict:
    """Config ``refine`` with the overrides of refine target ``name`` applied."""
    variant = get_variant(name)
    if not variant.refined:
        raise ConfigError(f"variant {name!r} trains on weak labels: it has no refine target")
    settings = dict(refine_config or {})
    settings.update(variant.refine)
    return settings


#: The config sections a recipe may override.
RECIPE_SECTIONS = ("train", "evaluate", "model")


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


def variant_sections(name: str, config: Mapping[str, Any],
                     recipes_config: Mapping[str, Any] | None = None) -> dict[str, dict]:
    """The ``model``, ``train`` and ``evaluate`` settings variant ``name`` runs with.

    Each is the config section (``config[section]``), overlaid with the variant's registry
    recipe, overlaid with its entry in config ``recipes`` (:func:`check_recipes`); nested
    mappings (``train.contrastive``) merge key by key. Without a recipe the sections come back
    unchanged (same keys, same order).
    """
    variant = get_variant(name)
    given = check_recipes(recipes_config).get(name) or {}
    out = {}
    for section in RECIPE_SECTIONS:
        merged = merge_settings(config.get(section) or {}, variant.recipe.get(section) or {}, section,
                                strict=False)
        out[section] = merge_settings(merged, given.get(section) or {}, section, strict=False)
    return out


def variant_settings(name: str, train_config: Mapping[str, Any] | None,
                     evaluate_config: Mapping[str, Any] | None,
                     recipes_config: Mapping[str, Any] | None = None) -> tuple[dict, dict]:
    """The ``train`` and ``evaluate`` settings variant ``name`` runs with (:func:`variant_sections`)."""
    s = variant_sections(name, {"train": train_config, "evaluate": evaluate_config}, recipes_config)
    return s["train"], s["evaluate"]


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


def ratios_path(name: str, seed: int) -> str:
    return f"ratios/{name}/seed{seed}/ratios.parquet"


def drops_path(variant: str, seed: int) -> str:
    return f"models/{variant}/seed{seed}/drops.parquet"


def quality_path(variant: str, seed: int) -> str | None:
    """The drop-quality report of a variant's labels (refined or dynamically denoised), or None
    for a variant that trains on the weak labels."""
    v = get_variant(variant)
    if v.dynamic:
        return f"denoise/{variant}/seed{seed}/quality.parquet"
    if v.refined:
        return f"refine/{v.labels_from}/seed{seed}/quality.parquet"
    return None


def ratio_quality_path(name: str, seed: int) -> str:
    """The comparison of ratio target ``name`` with the true ratios."""
    return f"ratios/{name}/seed{seed}/quality.parquet"


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

TABLES = ("table1", "table2", "table3", "table4", "denoising", "methods")
TABLE_TITLES = {
    "table1": "Main result: HAN against MA",
    "table2": "Ablation: contrastive loss (C) and label refinement (R)",
    "table3": "Label refinement per modality",
    "table4": "Contrastive temperature τ",
    "denoising": "Label denoising: MA and JoMoLD",
    "methods": "Weak-label methods: HAN, MA, JoMoLD, VALOR",
}
#: The methods table's rows; ``valor_pp`` joins them where the teachers' feature roles are configured.
METHODS_ROWS = ("baseline", "ma", "jomold", "valor", "valor_ma", "valor_jomold")
#: Published LLP test F1 (%) beside the methods table (``experiments.published``): segment level
#: A, V, AV, Type@AV, Event@AV, then event level. HAN, JoMoLD, VALOR and VALOR++ as reported by
#: Lai et al. (UWAV, CVPR 2025, Table 1 and Table A6); MA from its paper (Wu & Yang, CVPR 2021).
PUBLISHED = {
    "baseline": ("HAN", (60.1, 52.9, 48.9, 54.0, 55.4, 51.3, 48.9, 43.0, 47.7, 48.0)),
    "ma": ("MA", (60.3, 60.0, 55.1, 58.9, 57.9, 53.6, 56.4, 49.0, 53.0, 50.6)),
    "jomold": ("JoMoLD", (61.3, 63.8, 57.2, 60.8, 59.9, 53.9, 59.9, 49.6, 54.5, 52.5)),
    "valor": ("VALOR", (61.8, 65.9, 58.4, 62.0, 61.5, 55.4, 62.6, 52.2, 56.7, 54.2)),
    "valor_pp": ("VALOR++", (68.1, 68.4, 61.9, 66.2, 66.8, 61.2, 64.7, 55.5, 60.4, 59.0)),
}
#: The denoising table's rows (``experiments.denoising_oracle`` adds ``jomold_truth``).
DENOISING_ROWS = ("baseline", "ma", "jomold_nocl", "jomold", "jomold_ma")


@dataclass(frozen=True)
class TableRow:
    """One row of a table: the variant it averages and the row's display label."""

    variant: str
    label: str


#: Defaults of a table's settings (see :func:`table_settings`).
TABLE_DEFAULTS: dict[str, Any] = {"seeds": [1], "taus": [0.1, 0.2, 0.3, 0.4], "tau": 0.2, "split": "test",
                                  "table1_baseline": "baseline", "truth": False, "denoising_oracle": False,
                                  "teacher_features": False, "published": False}
#: The feature roles VALOR++ reads.
TEACHER_ROLES = ("clap_audio", "clip_image")


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
    train = config.get("train", {}) or {}
    exp = config.get("experiments", {}) or {}
    ma_train, _ = variant_settings("ma", train, config.get("evaluate"), config.get("recipes"))
    return {
        "seeds": [int(s) for s in train.get("seeds", TABLE_DEFAULTS["seeds"])],
        "taus": [float(t) for t in exp.get("taus", TABLE_DEFAULTS["taus"])],
        "tau": float((ma_train.get("contrastive", {}) or {}).get("tau", TABLE_DEFAULTS["tau"])),
        "split": TABLE_DEFAULTS["split"],
        "table1_baseline": exp.get("table1_baseline", TABLE_DEFAULTS["table1_baseline"]),
        "truth": (config.get("data", {}) or {}).get("source") == "synth",
        "denoising_oracle": bool(exp.get("denoising_oracle", TABLE_DEFAULTS["denoising_oracle"])),
        "teacher_features": teacher_features(config),
        "published": bool(exp.get("published", TABLE_DEFAULTS["published"])),
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
    if table == "denoising":
        names = list(DENOISING_ROWS) + (["jomold_truth"] if settings.get("denoising_oracle") else [])
        return [row(n) for n in names]
    if table == "methods":
        names = list(METHODS_ROWS) + (["valor_pp"] if settings.get("teacher_features") else [])
        return [row(n) for n in names]
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
    split = settings.get("split", TABLE_DEFAULTS["split"])
    seeds = table_seeds(settings)
    rows = table_rows(table, settings)
    files = [metrics_path(r.variant, s, split) for r in rows for s in seeds]
    if table_quality(table, settings):
        files += [q for r in rows for s in seeds if (q := quality_path(r.variant, s)) is not None]
        files += [ratio_quality_path(n, s) for n in table_ratio_targets(table, settings) for s in seeds]
    return files


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
