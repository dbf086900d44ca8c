"""The workflow's rule helpers: one :class:`Workflow` per Snakemake run.

The Snakefile makes ``W = Workflow(config)`` once; the rules (``workflow/rules/*.smk``) hold only
rules and call its methods as input functions, params and output lists. The methods are grouped
by stage, one mixin per module: :mod:`.base` (config, results folder, annotation and clip
folders), :mod:`.data` (synth, features, download, parse), :mod:`.models` (train, predict,
refine, label denoising, evaluate, tables), :mod:`.teach` (pseudo labels). Paths come from
:mod:`avvp.layout`.

Building the DAG imports neither torch nor model code: this package imports only light modules
(tests/test_workflow_module.py checks it).
"""

from __future__ import annotations

from avvp import experiments, layout
from avvp.workflow.base import WorkflowBase
from avvp.workflow.data import FeatureRules, ParseRules, SynthRules
from avvp.workflow.models import DenoiseRules, EvaluateRules, RefineRules, TrainRules
from avvp.workflow.teach import TeachRules

__all__ = ["Workflow"]


class Workflow(SynthRules, FeatureRules, ParseRules, TrainRules, RefineRules, DenoiseRules,
               EvaluateRules, TeachRules, WorkflowBase):
    """Every input, params and output function of the rules, for one checked config."""

    def targets(self) -> list[str]:
        """The default target (rule ``all``): the manifest, the demo's clip lists, the feature
        stores (and the teacher roles' where they are extracted), the tables switched on in
        config ``experiments`` and, once config parse.videos is set, the parse summary."""
        files = [self.out(layout.MANIFEST)]
        files += self.clip_lists()
        files += self.feature_stores(self.FEATURE_ROLES)
        if not self.feature_config("official"):
            files += self.feature_stores(self.teacher_roles())
        files += [self.out(p) for p in experiments.table_targets(self.config)]
        if self.parse_config("videos"):
            files.append(self.parse_summary())
        return files
