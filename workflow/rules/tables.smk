# Stage rules: tables. The paper's tables, the label-denoising and methods tables (mean ± std over
# config train.seeds) and the official table (each method once, at its official seed), from the
# test metrics of the variants each table lists (registry: avvp.experiments), on the demo also the
# drops' quality; the tables switched on in config `experiments` are final targets.


rule table:
    """One of the paper's tables: Markdown, CSV and grouped bars with std error bars."""
    input:
        W.table_metrics,
    output:
        md=W.out(layout.fill(layout.TABLE, ext="md")),
        csv=report(
            W.out(layout.fill(layout.TABLE, ext="csv")),
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}", "file": "csv"},
        ),
        png=report(
            W.out(layout.fill(layout.TABLE, ext="png")),
            caption="../report/tables.rst",
            category="Tables",
            labels={"table": "{table}", "file": "picture"},
        ),
    log:
        W.log("tables/{table}"),
    benchmark:
        W.benchmark("table/{table}")
    wildcard_constraints:
        table=W.table_names,
    conda:
        "../../envs/avvp.yaml"
    params:
        settings=W.table_settings_json,
        results=W.table_results_folder,
    shell:
        "avvp table {wildcards.table} --results {params.results} --settings '{params.settings}'"
        " --out {output.md} > {log} 2>&1"
