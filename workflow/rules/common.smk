# Helpers shared by the rules: paths, settings and the list of final targets.

import json
import os
import sys

from avvp import config_check as avvp_config_check
from avvp import experiments as avvp_experiments
from avvp import stale_lock as avvp_stale_lock

# Settings that depend on each other (features.frame.crop <= size, synth), and names that become
# folders (dataset, parse.out), are checked before any job runs; a misspelt variant in config
# `recipes` too.
avvp_config_check.check_config(config)
avvp_experiments.check_recipes(config.get("recipes"))

RESULTS = f"{config.get('results', 'results')}/{config['dataset']}"


# A lock left by a killed Snakemake run is removed once that run and its jobs are gone, so the
# same command resumes after a crash (avvp/stale_lock.py); each run records the lock it takes.
def clear_stale_locks():
    for message in avvp_stale_lock.clear_stale():
        print(f"avvp: {message}", file=sys.stderr)


clear_stale_locks()


onstart:
    avvp_stale_lock.record_owner(workflow.persistence._lockfile.values())


def out(path):
    """A path under this data set's results folder."""
    return f"{RESULTS}/{path}"


def settings_json(section):
    """One config section as compact JSON, for an `avvp ... --settings` argument."""
    return json.dumps(config.get(section, {}), separators=(",", ":"))


def variant_sections(variant):
    """{model, train, evaluate} settings of one experiment variant: the config sections, its recipe applied."""
    return avvp_experiments.variant_sections(variant, config, config.get("recipes"))


def variant_config(variant):
    """(train, evaluate) settings of one experiment variant: the config sections, its recipe applied."""
    s = variant_sections(variant)
    return s["train"], s["evaluate"]


def allow_missing_flag(wildcards):
    """`--allow-missing` when evaluate.allow_missing (config, the variant's recipe applied) lets
    val/test videos without features be left out (train, predict, evaluate), else nothing.
    """
    allow = variant_config(wildcards.variant)[1].get("allow_missing", False)
    return "--allow-missing" if allow else ""


def is_synth():
    return config["data"]["source"] == "synth"


def annotation_dir():
    """The folder of LLP-format annotation files the workflow reads."""
    if is_synth() or not config["data"].get("annotations"):
        return out("annotations")
    return config["data"]["annotations"]


# Each stage appends its final targets here (see the stage's .smk file).
FINAL_TARGETS = []


def all_targets():
    return [out("manifest.parquet")] + FINAL_TARGETS


def annotation_marker():
    """A file whose existence means the annotation folder is complete (a rule output or user file)."""
    return f"{annotation_dir()}/AVVP_train.csv"


def clips_dir():
    """The folder of raw clips: the demo's rendered clips, a user folder, or the download folder."""
    if not is_synth() and config["data"].get("clips"):
        return config["data"]["clips"]
    return out("clips")


def needs_download():
    """LLP videos are downloaded (rule download) when neither a clips folder nor official features is set."""
    return (
        not is_synth()
        and not config["data"].get("clips")
        and not (config.get("features") or {}).get("official")
    )


def download_table():
    """The table rule download writes (clips/downloads.parquet), or nothing when nothing is downloaded."""
    return [out("clips/downloads.parquet")] if needs_download() else []


def parent_of_train_output(wildcards, output):
    """The annotation folder a fetch writes into (params function)."""
    return os.path.dirname(output.train)


def parent_of_annotations_input(wildcards, input):
    """The annotation folder the manifest reads (params function)."""
    return os.path.dirname(input.annotations)


def parent_of_manifest_output(wildcards, output):
    """The data set's results folder (params function)."""
    return os.path.dirname(output.manifest)


def clips_param(wildcards):
    """The clip folder, as a params function."""
    return clips_dir()
