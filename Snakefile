# avvp: weakly-supervised audio-visual video parsing as a Snakemake workflow.
# `snakemake --cores N` builds the data set named in config.yaml (the synthetic demo by default).

import os
import sys

from snakemake.utils import min_version, validate

from avvp import layout
from avvp.infra import stale_lock
from avvp.workflow import Workflow as AvvpWorkflow

min_version("9.27")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")

# Every input, params and output function of the rules (avvp/workflow/); settings that depend on
# each other, names that become folders and config `recipes` are checked here, before any job runs.
# (The Snakefile runs in the namespace of the module snakemake.workflow: its names must not shadow
# that module's own, such as its class Workflow; tests/test_workflow_module.py checks.)
W = AvvpWorkflow(config)

# A lock left by a killed Snakemake run is removed once that run and its jobs are gone, so the
# same command resumes after a crash (avvp/infra/stale_lock.py); each run records the lock it takes.
for message in stale_lock.clear_stale():
    print(f"avvp: {message}", file=sys.stderr)


onstart:
    stale_lock.record_owner(stale_lock.held_lock_files(workflow))


report: "workflow/report/workflow.rst"


include: "workflow/rules/synth.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/refine.smk"
include: "workflow/rules/denoise.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/parse.smk"
include: "workflow/rules/teach.smk"


rule all:
    default_target: True
    input:
        W.targets(),
