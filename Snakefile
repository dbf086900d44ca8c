# avvp: weakly-supervised audio-visual video parsing as a Snakemake workflow.
# `snakemake --cores N` builds the data set named in config.yaml (the synthetic demo by default).

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
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
        all_targets(),
