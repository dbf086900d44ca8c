"""The experiment-variant registry: each variant's recipe, refine and ratio targets, and the
files they make (see :mod:`avvp.experiments`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from avvp.infra.errors import ConfigError
from avvp.settings import merge_settings
from avvp.core.valor.variants import valor_recipe, valor_variant
from avvp import layout

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
        official_seed: the seed the method's official code trains with (the ``official`` table
            runs the variant once with it); None for a variant no official code runs.
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
    official_seed: int | None = None

    @property
    def refined(self) -> bool:
        return self.labels_from is not None

    @property
    def dynamic(self) -> bool:
        return self.ratios_from is not None


#: The seeds of the official code: MA's and HAN's ``torch.manual_seed(1)`` (MA's label
#: refinement, step 2 of its code, seeds 2: config ``refine.seed``, drawn with the training seed), JoMoLD's
#: ``set_random_seed(6)`` in each of its stages.
MA_SEED, JOMOLD_SEED = 1, 6

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
    "baseline": Variant("baseline", False, label="HAN (baseline)", official_seed=MA_SEED),
    "baseline_c": Variant("baseline_c", True, label="+C"),
    "baseline_r": Variant("baseline_r", False, labels_from="baseline_r", base="baseline", label="+R"),
    "ma": Variant("ma", True, labels_from="ma", base="baseline_c", label="+C+R (MA)", official_seed=MA_SEED),
    "ma_audio": Variant("ma_audio", True, labels_from="ma_audio", base="baseline_c",
                        refine={"modalities": "audio"}, label="refine audio only"),
    "ma_visual": Variant("ma_visual", True, labels_from="ma_visual", base="baseline_c",
                         refine={"modalities": "visual"}, label="refine visual only"),
    "han": Variant("han", False, label="HAN (HAN recipe)",
                   recipe={"train": {"epochs": 40, "select": "best", "gate": "han"},
                           "evaluate": {"gate": "han"}}, official_seed=MA_SEED),
    "jomold_ne": Variant("jomold_ne", True, label="JoMoLD noise estimator",
                         recipe=_jomold(cross_attention=False, denoise=False), official_seed=JOMOLD_SEED),
    "jomold": Variant("jomold", True, label="JoMoLD (w/ CL)", recipe=_jomold(), ratios_from="jomold",
                      official_seed=JOMOLD_SEED),
    "jomold_nocl": Variant("jomold_nocl", False, label="JoMoLD w/o CL", recipe=_jomold(), ratios_from="jomold"),
    "jomold_ma": Variant("jomold_ma", True, label="JoMoLD, MA's ratios", recipe=_jomold(), ratios_from="ma"),
    "jomold_truth": Variant("jomold_truth", True, label="JoMoLD, true ratios (oracle)", recipe=_jomold(),
                            ratios_from="truth"),
    **{name: Variant(name, False, label=valor_variant(name).title, recipe=valor_recipe(name), pseudo=True,
                     official_seed=valor_variant(name).official_seed) for name in ("valor", "valor_plus", "valor_pp")},
    "valor_ma": Variant("valor_ma", False, labels_from="ma", base="baseline_c", label="VALOR, MA's labels",
                        recipe=valor_recipe("valor"), pseudo=True),
    "valor_jomold": Variant("valor_jomold", False, label="VALOR, JoMoLD's denoising", pseudo=True,
                            recipe=valor_recipe("valor", denoise="jomold"), ratios_from="jomold"),
}

#: The teachers' segment-level pseudo labels per modality (:mod:`avvp.core.pseudo_labels`).
PSEUDO_LABELS = {m: layout.fill(layout.PSEUDO_LABELS, modality=m) for m in ("audio", "visual")}


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
# (patterns in avvp.layout; relative to the data set's results folder)

def model_path(variant: str, seed: int) -> str:
    return layout.fill(layout.MODEL, variant=variant, seed=seed)


def refine_path(name: str, seed: int) -> str:
    return layout.fill(layout.REFINED_LABELS, name=name, seed=seed)


def metrics_path(variant: str, seed: int, split: str = "test") -> str:
    return layout.fill(layout.METRICS, variant=variant, seed=seed, split=split)


def ratios_path(name: str, seed: int) -> str:
    return layout.fill(layout.RATIOS, name=name, seed=seed)


def quality_path(variant: str, seed: int) -> str | None:
    """The drop-quality report of a variant's labels (refined or dynamically denoised), or None
    for a variant that trains on the weak labels."""
    v = get_variant(variant)
    if v.dynamic:
        return layout.fill(layout.DROP_QUALITY, variant=variant, seed=seed)
    if v.refined:
        return layout.fill(layout.REFINE_QUALITY, name=v.labels_from, seed=seed)
    return None


def ratio_quality_path(name: str, seed: int) -> str:
    """The comparison of ratio target ``name`` with the true ratios."""
    return layout.fill(layout.RATIO_QUALITY, name=name, seed=seed)


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
