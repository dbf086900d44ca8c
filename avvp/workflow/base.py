"""What every stage's rules share: the config, the results folder, the annotation and clip folders."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from avvp import experiments, layout, settings
from avvp.core.annotations import TRAIN_TRUTH_FILES


def compact_json(value: Any) -> str:
    """``value`` as compact JSON, for an ``avvp ... --settings`` argument."""
    return json.dumps(value, separators=(",", ":"))


class WorkflowBase:
    """The config of one workflow run, checked, and the paths derived from it.

    Args:
        config: the Snakemake config (config.yaml and its overrides), validated by the schema.

    Raises:
        ConfigError: settings that depend on each other disagree, a name that becomes a folder is
            unsafe, or config ``recipes`` names an unknown variant (checked before any job runs).
    """

    def __init__(self, config: Mapping[str, Any]):
        config = settings.complete(config)  # also checks config `recipes` (avvp.config_check)
        self.config = config
        #: This data set's results folder, ``<results>/<dataset>``.
        self.results = f"{config['results']}/{config['dataset']}"

    # ------------------------------------------------------------------- paths and settings
    def out(self, path: str) -> str:
        """A path (an :mod:`avvp.layout` pattern) under this data set's results folder."""
        return f"{self.results}/{path}"

    def log(self, name: str) -> str:
        """A job's log file (:func:`avvp.layout.log`) under the results folder."""
        return self.out(layout.log(name))

    def benchmark(self, name: str) -> str:
        """A job's benchmark table (:func:`avvp.layout.benchmark`) under the results folder."""
        return self.out(layout.benchmark(name))

    def section(self, name: str) -> dict:
        """One config section (empty when it is missing or null)."""
        return self.config.get(name) or {}

    def settings_json(self, section: str) -> str:
        """One config section as compact JSON, for an `avvp ... --settings` argument."""
        return compact_json(self.config.get(section, {}))

    def variant_sections(self, variant: str) -> dict[str, dict]:
        """{model, train, evaluate} settings of one experiment variant: the config sections, its recipe applied."""
        return experiments.variant_sections(variant, self.config, self.config.get("recipes"))

    def variant_config(self, variant: str) -> tuple[dict, dict]:
        """(train, evaluate) settings of one experiment variant: the config sections, its recipe applied."""
        s = self.variant_sections(variant)
        return s["train"], s["evaluate"]

    def allow_missing_flag(self, wildcards) -> str:
        """`--allow-missing` when evaluate.allow_missing (config, the variant's recipe applied) lets
        val/test videos without features be left out (train, predict, evaluate), else nothing."""
        allow = self.variant_config(wildcards.variant)[1]["allow_missing"]
        return "--allow-missing" if allow else ""

    # ------------------------------------------------------------------ the data set
    def is_synth(self) -> bool:
        return self.config["data"]["source"] == "synth"

    def annotation_version(self) -> str:
        """Config data.annotation_version."""
        return self.config["data"]["annotation_version"]

    def annotation_dir(self) -> str:
        """The folder of LLP-format annotation files the workflow reads."""
        if self.is_synth() or not self.config["data"].get("annotations"):
            return self.out(layout.ANNOTATIONS)
        return self.config["data"]["annotations"]

    def annotation_marker(self) -> str:
        """A file whose existence means the annotation folder is complete (a rule output or user file)."""
        return f"{self.annotation_dir()}/AVVP_train.csv"

    def has_train_truth(self) -> bool:
        """True when the data set knows its true per-modality training labels: the synthetic demo,
        or an annotation folder (data.annotations) that holds AVVP_train_audio.csv and
        AVVP_train_visual.csv (e.g. a stand-in release, `avvp rehearsal release`)."""
        if self.is_synth():
            return True
        folder = self.config["data"].get("annotations")
        return bool(folder) and all(
            os.path.isfile(os.path.join(folder, name)) for name in TRAIN_TRUTH_FILES.values())

    def clips_dir(self) -> str:
        """The folder of raw clips: the demo's rendered clips, a user folder, or the download folder."""
        if not self.is_synth() and self.config["data"].get("clips"):
            return self.config["data"]["clips"]
        return self.out(layout.CLIPS)

    def clips_param(self, wildcards) -> str:
        """The clip folder, as a params function."""
        return self.clips_dir()

    def needs_download(self) -> bool:
        """LLP videos are downloaded (rule download) when neither a clips folder nor official features is set."""
        return (not self.is_synth() and not self.config["data"].get("clips")
                and not (self.config.get("features") or {}).get("official"))

    def download_table(self) -> list[str]:
        """The table rule download writes (clips/downloads.parquet), or nothing when nothing is downloaded."""
        return [self.out(layout.DOWNLOADS)] if self.needs_download() else []

    # --------------------------------------------- params functions: folders of inputs and outputs
    @staticmethod
    def input_dir(name: str):
        """A params function: the folder of the rule's input ``name``."""
        return lambda wildcards, input: os.path.dirname(getattr(input, name))

    @staticmethod
    def output_dir(name: str):
        """A params function: the folder of the rule's output ``name``."""
        return lambda wildcards, output: os.path.dirname(getattr(output, name))

    @staticmethod
    def output_folder(wildcards, output) -> str:
        """The folder of a rule's first output (its other results go beside it)."""
        return os.path.dirname(output[0])
