"""The teach stage's rules (teach.smk): VALOR's pseudo labels from one of three teachers."""

from __future__ import annotations

import json

from avvp import layout
from avvp.core import feature_roles
from avvp.workflow.base import WorkflowBase, compact_json
from avvp.workflow.data import synth_plan_keys

PSEUDO_MODALITIES = ["audio", "visual"]


class TeachRules(WorkflowBase):
    """The pseudo labels per modality, the demo's stand-in teachers, and the labels' scores."""

    PSEUDO_MODALITIES = PSEUDO_MODALITIES

    def pseudo_config(self, key: str):
        """One key of the pseudo config section (defaults filled from the settings definition)."""
        return self.config["pseudo"][key]

    def pseudo_teacher(self) -> str:
        """release (VALOR's released labels), standin (the demo's) or valor (CLIP and CLAP)."""
        if self.pseudo_config("release"):
            return "release"
        teacher = self.pseudo_config("teacher")
        if teacher == "auto":
            return "standin" if self.is_synth() else "valor"
        return teacher

    def standin_config(self, key: str):
        """One key of pseudo.standin (defaults filled from the settings definition)."""
        return self.config["pseudo"]["standin"][key]

    def standin_synth(self) -> dict:
        """The synth section with the pool's overrides (another seed, other sizes)."""
        return {**self.config.get("synth", {}), **(self.standin_config("pool") or {})}

    def standin_plan_json(self) -> str:
        """The pool's plan keys as JSON."""
        s = self.standin_synth()
        return compact_json({k: s[k] for k in synth_plan_keys() if k in s})

    def standin_render_json(self) -> str:
        """The pool's synth settings as JSON (plan and render keys)."""
        return compact_json(self.standin_synth())

    def standin_teacher_json(self) -> str:
        """pseudo.standin.teacher (the stand-in teachers' training settings) as JSON."""
        return compact_json(self.standin_config("teacher"))

    def standin_shards(self) -> list[int]:
        return list(range(self.standin_config("shards")))

    def standin_clip_lists(self) -> list[str]:
        """The per-shard lists of the pool's rendered clips."""
        return [self.out(layout.fill(layout.POOL_CLIP_SHARD, shard=s)) for s in self.standin_shards()]

    def teacher_scores(self, modality: str) -> str:
        """The teacher store whose scores become one modality's pseudo labels."""
        if self.pseudo_teacher() == "standin":
            return self.out(layout.fill(layout.STANDIN_SCORES, modality=modality))
        return self.out(layout.fill(layout.FEATURE_STORE, role=feature_roles.TEACHER_OF[modality]))

    def thresholds_arg(self, modality: str) -> str:
        """`--thresholds '[...]'` when pseudo.thresholds sets this modality's, else nothing."""
        given = (self.pseudo_config("thresholds") or {}).get(modality)
        return "" if given is None else f"--thresholds '{json.dumps(given)}'"

    def pseudo_score_splits(self) -> list[str]:
        """The splits the labels are scored on: the configured ones, and train on the demo (its truth)."""
        splits = list(self.pseudo_config("score_splits"))
        return splits + (["train"] if self.is_synth() and "train" not in splits else [])

    def pseudo_targets(self) -> list[str]:
        """The outputs of the `pseudo` target: every score of the pseudo labels."""
        return [self.out(layout.fill(layout.PSEUDO_SCORE_TABLE, split=split))
                for split in self.pseudo_score_splits()]
