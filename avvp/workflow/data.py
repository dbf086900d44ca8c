"""The data stages' rules: the synthetic demo (synth.smk), features (features.smk), download and
parse (parse.smk)."""

from __future__ import annotations

import json
import os

from avvp import layout
from avvp.core.feature_roles import FEATURE_ROLES
from avvp.infra.paths import VIDEO_EXTENSIONS
from avvp.workflow.base import WorkflowBase, compact_json

#: The files `avvp synth plan` writes into the annotation folder, by output name.
SYNTH_ANNOTATION_FILES = {
    "full": "AVVP_dataset_full.csv",
    "val": "AVVP_val_pd.csv",
    "test": "AVVP_test_pd.csv",
    "audio": "AVVP_eval_audio.csv",
    "visual": "AVVP_eval_visual.csv",
    "train_audio": "AVVP_train_audio.csv",
    "train_visual": "AVVP_train_visual.csv",
    "classes": "classes.txt",
    "plan": "synth_plan.json",
    "train": "AVVP_train.csv",
}
#: Keys of config `parse` that belong to the rule, not to `avvp parse --settings`.
PARSE_RULE_KEYS = ("videos", "model", "out")


def synth_plan_keys() -> tuple[str, ...]:
    """The synth settings that fix the plan (the annotations); render-only keys may change."""
    from avvp.stages.synth.settings import PLAN_KEYS

    return tuple(PLAN_KEYS)


class SynthRules(WorkflowBase):
    """The embedded synthetic demo: plan and render shards."""

    def synth_shards(self) -> list[int]:
        """Indices of the render shards."""
        return list(range(self.config["synth"]["shards"]))

    def clip_lists(self) -> list[str]:
        """The per-shard lists of rendered clips (synth); none for other data sets."""
        if not self.is_synth():
            return []
        return [self.out(layout.fill(layout.CLIP_SHARD, shard=s)) for s in self.synth_shards()]

    def synth_annotation_outputs(self) -> dict[str, str]:
        """The files `avvp synth plan` writes, by name."""
        return {key: self.out(f"{layout.ANNOTATIONS}/{name}")
                for key, name in SYNTH_ANNOTATION_FILES.items()}

    def synth_plan_settings(self) -> str:
        """The plan keys of the synth section as JSON: render-only changes keep the annotations."""
        section = self.config.get("synth", {})
        return compact_json({k: section[k] for k in synth_plan_keys() if k in section})


class FeatureRules(WorkflowBase):
    """Feature extraction per shard and role, merging, pooling, or the official features' import."""

    #: The standard feature roles (one store each): extracted together, merged, read by HAN.
    FEATURE_ROLES = list(FEATURE_ROLES)

    def feature_config(self, key: str):
        """One key of the features config section (defaults filled from the settings definition)."""
        return self.config["features"][key]

    def teacher_roles(self) -> list[str]:
        """VALOR's teacher roles to extract (features.teachers, docs/teachers.md; none by default)."""
        return list(self.config.get("features", {}).get("teachers") or [])

    def feature_store(self, role: str) -> str:
        """The merged store of one feature role."""
        return self.out(layout.fill(layout.FEATURE_STORE, role=role))

    def feature_stores(self, roles, pattern: str = layout.FEATURE_STORE) -> list[str]:
        """``pattern`` (a per-role layout pattern) under the results folder, for each of ``roles``."""
        return [self.out(layout.fill(pattern, role=role)) for role in roles]

    def feature_shards(self, wildcards) -> list[str]:
        """The shard stores of one role, in shard order."""
        return [self.out(layout.fill(layout.FEATURE_SHARD, role=wildcards.role, shard=i))
                for i in range(self.feature_config("shards"))]

    def shard_pattern(self, pattern: str):
        """A params function: ``pattern`` (FEATURE_SHARD or FEATURE_FAILURES) for the job's shard,
        ``{role}`` left for `avvp extract` to fill."""
        return lambda wildcards: self.out(layout.fill(pattern, shard=wildcards.shard))


class ParseRules(WorkflowBase):
    """Downloading the LLP videos, and parsing a folder of videos with a trained model."""

    def parse_config(self, key: str):
        """One key of config `parse` (defaults filled from the settings definition)."""
        return self.config["parse"][key]

    def parse_video_files(self, wildcards) -> list[str]:
        """The video files of the folder config parse.videos, sorted."""
        folder = self.parse_config("videos")
        if not folder:
            raise ValueError("snakemake parse: set config parse.videos to a folder of videos "
                             "(e.g. --config parse='{videos: my_videos}')")
        if not os.path.isdir(folder):
            raise ValueError(f"config parse.videos: folder not found: {folder}")
        return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                      if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS)

    def parse_model(self) -> str:
        """The model that parses: config parse.model, or this data set's MA model (first seed)."""
        model = self.parse_config("model")
        if model:
            return model
        seeds = self.config.get("train", {}).get("seeds") or [1]
        return self.out(layout.fill(layout.MODEL, variant="ma", seed=seeds[0]))

    def parse_summary(self) -> str:
        """The summary table `avvp parse` writes (config parse.out, under the results folder)."""
        return self.out(layout.fill(layout.PARSE_SUMMARY, out=self.parse_config("out")))

    def parse_settings_json(self) -> str:
        """Config `parse` without the rule's own keys, as JSON for --settings."""
        return compact_json({k: v for k, v in (self.config.get("parse") or {}).items()
                             if k not in PARSE_RULE_KEYS})

    def parse_features_flag(self) -> str:
        """Models trained on imported official features record no extractor settings: pass the config's."""
        features = self.config.get("features") or {}
        if not features.get("official"):
            return ""
        roles = {role: features[role] for role in FEATURE_ROLES if role in features}
        return f"--features '{json.dumps(roles, separators=(',', ':'))}'"

    def download_settings_json(self, wildcards) -> str:
        """Config `download` without retry_failed (a flag), as JSON for --settings.

        A params function, so that "{id}" in the URL template is not taken for a wildcard.
        """
        return compact_json({k: v for k, v in (self.config.get("download") or {}).items()
                             if k != "retry_failed"})

    def download_flags(self) -> str:
        return "--retry-failed" if (self.config.get("download") or {}).get("retry_failed") else ""
