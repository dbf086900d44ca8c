# Input and parameter functions of the tables rules (tables.smk).

import os

from avvp import experiments as avvp_experiments


def table_metrics(wildcards):
    """The test metrics.json of every row variant and seed of table {table} (and the denoising
    table's quality reports on the demo)."""
    settings = avvp_experiments.table_settings(config)
    return [out(p) for p in avvp_experiments.table_inputs(wildcards.table, settings)]


def table_results_folder(wildcards, output):
    """The data set's results folder (two levels above tables/{table}.md)."""
    return os.path.dirname(os.path.dirname(output.md))


def table_settings_json(wildcards):
    return json.dumps(avvp_experiments.table_settings(config), separators=(",", ":"))
