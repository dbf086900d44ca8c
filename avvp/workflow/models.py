"""The model stages' rules: train and predict (train.smk), refine (refine.smk), label denoising
(denoise.smk), evaluate (evaluate.smk) and the tables (tables.smk)."""

from __future__ import annotations

import os

from avvp import experiments, layout
from avvp.core.feature_roles import model_roles
from avvp.workflow.base import WorkflowBase, compact_json


def _report(path: str, caption: str, category: str, subcategory: str, labels: dict):
    """``path`` flagged for Snakemake's report (caption relative to the rule's .smk file)."""
    from snakemake.io import report

    return report(path, caption=caption, category=category, subcategory=subcategory, labels=labels)


class QualityReports(WorkflowBase):
    """Quality reports that compare labels with the training truth (where the data set has it)."""

    def truth_quality_outputs(self, patterns: tuple[str, str, str], caption: str, category: str,
                              subcategory: str) -> dict:
        """``quality`` (Parquet), ``quality_md`` and ``quality_png`` (both in the report) from the
        layout ``patterns``, or nothing without training truth."""
        if not self.has_train_truth():
            return {}
        parquet, md, png = patterns
        return {
            "quality": self.out(parquet),
            "quality_md": _report(self.out(md), caption, category, subcategory,
                                  {"seed": "{seed}", "file": "table"}),
            "quality_png": _report(self.out(png), caption, category, subcategory,
                                   {"seed": "{seed}", "file": "picture"}),
        }

    def quality_dir_arg(self, output_name: str):
        """A params function: `--quality-dir <the folder of output ``output_name``>` where the data
        set has training truth, else nothing."""
        def arg(wildcards, output) -> str:
            if not self.has_train_truth():
                return ""
            return f"--quality-dir {os.path.dirname(getattr(output, output_name))}"
        return arg


class TrainRules(WorkflowBase):
    """Training one variant and seed, and its predictions per split."""

    @staticmethod
    def dynamic_variant_regex() -> str:
        """Wildcard constraint of the train_denoised rule, the registry's dynamic label-denoising variants."""
        return "|".join(experiments.dynamic_variant_names())

    @staticmethod
    def static_variant_regex() -> str:
        """Wildcard constraint of the train rule, any variant name but the dynamic ones."""
        names = "|".join(experiments.dynamic_variant_names())
        return rf"(?!(?:{names})\b)[A-Za-z0-9_.]+"

    def train_variant(self, name: str):
        """(contrastive, tau, refine target or None) of a variant, from the registry (avvp.experiments).

        The default temperature is the variant's train.contrastive.tau (its recipe applied).
        """
        variant = experiments.get_variant(name)
        default_tau = self.variant_config(name)[0]["contrastive"]["tau"]
        return variant.contrastive, experiments.train_tau(variant, default_tau), variant.labels_from

    def train_labels(self, wildcards) -> str | None:
        """The refined-labels file a variant trains on, or None for the weak labels."""
        labels_from = self.train_variant(wildcards.variant)[2]
        if labels_from is None:
            return None
        return self.out(experiments.refine_path(labels_from, wildcards.seed))

    def train_ratios(self, wildcards) -> str | None:
        """The noise-ratio file a dynamic variant trains with, or None."""
        path = experiments.ratios_target(wildcards.variant, int(wildcards.seed))
        return None if path is None else self.out(path)

    def feature_inputs(self, variant: str) -> dict[str, str]:
        """The feature stores a variant's model reads, by input slot (audio, frame, clip): the
        variant's declared roles (VALOR++: clap_audio, clip_image); ResNet frames from the pooled store.
        """
        roles = model_roles(self.variant_sections(variant)["model"])
        stores = {slot: self.out(layout.fill(layout.FEATURE_STORE, role=role))
                  for slot, role in roles.items()}
        if roles["frame"] == "frame":
            stores["frame"] = self.out(layout.POOLED_FRAMES)
        return stores

    def pseudo_inputs(self, variant: str) -> dict[str, str]:
        """The teachers' pseudo-label files a variant trains with (pseudo_audio, pseudo_visual)."""
        files = experiments.pseudo_targets(variant)
        return {f"pseudo_{modality}": self.out(path) for modality, path in files.items()}

    def train_inputs(self, wildcards) -> dict[str, str]:
        """Feature stores, the manifest and (for refined variants) the labels file or (for
        dynamic variants) the noise ratios or (for pseudo-label variants) the pseudo labels."""
        inputs = self.feature_inputs(wildcards.variant)
        inputs["manifest"] = self.out(layout.MANIFEST)
        inputs.update(self.pseudo_inputs(wildcards.variant))
        labels = self.train_labels(wildcards)
        if labels is not None:
            inputs["labels"] = labels
        ratios = self.train_ratios(wildcards)
        if ratios is not None:
            inputs["ratios"] = ratios
        return inputs

    def train_flags(self, wildcards) -> str:
        """The variant's command-line flags: contrastive loss, temperature, labels, noise ratios."""
        contrastive, tau, _ = self.train_variant(wildcards.variant)
        flags = f"--contrastive {'on' if contrastive else 'off'} --tau {tau}"
        labels = self.train_labels(wildcards)
        if labels is not None:
            flags += f" --labels {labels}"
        ratios = self.train_ratios(wildcards)
        if ratios is not None:
            flags += f" --ratios {ratios}"
        for name, path in self.pseudo_inputs(wildcards.variant).items():
            flags += f" --{name.replace('_', '-')} {path}"
        return flags

    def predict_inputs(self, wildcards) -> dict[str, str]:
        """The model, the feature stores its variant reads and the manifest."""
        inputs = {"model": self.out(experiments.model_path(wildcards.variant, wildcards.seed))}
        inputs.update(self.feature_inputs(wildcards.variant))
        inputs["manifest"] = self.out(layout.MANIFEST)
        return inputs

    def train_settings_json(self, wildcards) -> str:
        """The variant's model and train settings (its recipe applied), as one --settings JSON."""
        s = self.variant_sections(wildcards.variant)
        return compact_json({"model": s["model"], "train": s["train"]})

    def predict_settings_json(self, wildcards) -> str:
        """The predict settings: the variant's training device."""
        return compact_json({"device": self.variant_config(wildcards.variant)[0]["device"]})


class RefineRules(QualityReports):
    """MA's modality-aware label refinement."""

    def refine_base_model(self, wildcards) -> str:
        """The trained base model of refine target {name} (registry), same seed."""
        return self.out(experiments.base_model_target(wildcards.name, int(wildcards.seed)))

    def refine_settings_json(self, wildcards) -> str:
        """Config `refine` with the refine target's own overrides (e.g. modalities) applied."""
        return compact_json(experiments.refine_settings(wildcards.name, self.config.get("refine", {})))

    def refine_quality_outputs(self) -> dict:
        """The refinement-quality report files, where the data set has training truth."""
        return self.truth_quality_outputs(
            (layout.REFINE_QUALITY, layout.REFINE_QUALITY_MD, layout.REFINE_QUALITY_PNG),
            "../report/refine_quality.rst", "Label refinement", "{name}")


class DenoiseRules(QualityReports):
    """JoMoLD's noise ratios, and the quality of the drops of a dynamic variant."""

    def ratio_inputs(self, wildcards) -> dict[str, str]:
        """What ratio target {name} is made from (registry): the estimator model and the features,
        a refined-labels table, or the true training labels; and the manifest."""
        target = experiments.get_ratio_target(wildcards.name)
        inputs = {"manifest": self.out(layout.MANIFEST)}
        source = experiments.ratio_source_target(wildcards.name, int(wildcards.seed))
        if target.source == "estimator":
            inputs["model"] = self.out(source)
            inputs.update({role: self.out(layout.fill(layout.FEATURE_STORE, role=role))
                           for role in ("audio", "clip")})
            inputs["frame"] = self.out(layout.POOLED_FRAMES)
        elif target.source == "exchange":
            inputs["labels"] = self.out(source)
        if target.source == "truth" or self.has_train_truth():
            inputs["truth_audio"] = self.out(layout.DENSE["train_audio"])
            inputs["truth_visual"] = self.out(layout.DENSE["train_visual"])
        return inputs

    @staticmethod
    def ratio_source_args(wildcards, input) -> str:
        """`--model M --features D`, `--labels L` or `--truth`: the source of ratio target {name}."""
        source = experiments.get_ratio_target(wildcards.name).source
        if source == "estimator":
            return f"--model {input.model} --features {os.path.dirname(input.audio)}"
        if source == "exchange":
            return f"--labels {input.labels}"
        return "--truth"

    def ratio_settings_json(self, wildcards) -> str:
        """Config `ratios` (the noise-ratio pass of JoMoLD's stage 2)."""
        return self.settings_json("ratios")

    def ratio_quality_outputs(self) -> dict:
        """The comparison with the true ratios, where the data set has training truth."""
        return self.truth_quality_outputs(
            (layout.RATIO_QUALITY, layout.RATIO_QUALITY_MD, layout.RATIO_QUALITY_PNG),
            "../report/ratio_quality.rst", "Label denoising", "noise ratios {name}")


class EvaluateRules(WorkflowBase):
    """Scoring predictions with the LLP protocol, and the tables over variants and seeds."""

    #: The {table} wildcard's pattern: the registry's tables.
    table_names = "|".join(experiments.TABLES)

    def evaluate_gate(self, wildcards) -> str:
        """The video-level gate of variant {variant}: config evaluate.gate, its recipe applied."""
        return self.variant_config(wildcards.variant)[1]["gate"]

    def evaluate_timeline_videos(self, wildcards) -> int:
        """How many videos variant {variant}'s timeline.png draws (config evaluate, recipe applied)."""
        return self.variant_config(wildcards.variant)[1]["timeline_videos"]

    def table_metrics(self, wildcards) -> list[str]:
        """The test metrics.json of every row variant and seed of table {table} (and the denoising
        table's quality reports on the demo)."""
        settings = experiments.table_settings(self.config)
        return [self.out(p) for p in experiments.table_inputs(wildcards.table, settings)]

    @staticmethod
    def table_results_folder(wildcards, output) -> str:
        """The data set's results folder (two levels above tables/{table}.md)."""
        return os.path.dirname(os.path.dirname(output.md))

    def table_settings_json(self, wildcards) -> str:
        return compact_json(experiments.table_settings(self.config))
