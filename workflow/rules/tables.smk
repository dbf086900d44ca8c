# Stage rules: tables. The paper's tables and the label-denoising table (mean ± std over config
# train.seeds) from the test metrics of the variants each table lists (registry:
# avvp.experiments), on the demo also the drops' quality; the tables switched on in config
# `experiments` are final targets.


include: "tables_functions.smk"


rule table:
    """One of the paper's tables: Markdown, CSV and grouped bars with std error bars."""
    input:
        table_metrics,
    output:
        md=out("tables/{table}.md"),
        csv=report(
            out("tables/{table}.csv"),
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}", "file": "csv"},
        ),
        png=report(
            out("tables/{table}.png"),
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}", "file": "picture"},
        ),
    log:
        out("logs/tables/{table}.log"),
    benchmark:
        out("benchmarks/table/{table}.tsv")
    wildcard_constraints:
        table=r"table[1-4]|denoising|methods",
    conda:
        "../../envs/avvp.yaml"
    params:
        settings=table_settings_json,
        results=table_results_folder,
    shell:
        "avvp table {wildcards.table} --results {params.results} --settings '{params.settings}'"
        " --out {output.md} > {log} 2>&1"


FINAL_TARGETS.extend(out(p) for p in avvp_experiments.table_targets(config))
