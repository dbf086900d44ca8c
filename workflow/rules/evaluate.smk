# Stage rules: evaluate. Scores a model's predictions on one split with the LLP protocol
# and writes metrics, the Table-1 layout and pictures for the report. The gate is
# config evaluate.gate, or the variant's own where it has a recipe (avvp/experiments.py).

import os


include: "evaluate_functions.smk"


rule evaluate:
    """Score predictions with the LLP protocol: metrics (JSON, Parquet), Table 1, per-class F1, timelines."""
    input:
        predictions=out("predictions/{variant}/seed{seed}/{split}.npz"),
        annotations=annotation_marker(),
    output:
        metrics=out("eval/{variant}/seed{seed}/{split}/metrics.json"),
        metrics_parquet=out("eval/{variant}/seed{seed}/{split}/metrics.parquet"),
        per_class=out("eval/{variant}/seed{seed}/{split}/per_class.parquet"),
        per_video=out("eval/{variant}/seed{seed}/{split}/per_video.parquet"),
        table_md=out("eval/{variant}/seed{seed}/{split}/table.md"),
        table_csv=report(
            out("eval/{variant}/seed{seed}/{split}/table.csv"),
            caption="../report/evaluate_table.rst",
            category="Evaluation",
            subcategory="{variant}",
            labels={"figure": "Table 1", "seed": "{seed}", "split": "{split}"},
        ),
        per_class_png=report(
            out("eval/{variant}/seed{seed}/{split}/per_class.png"),
            caption="../report/evaluate_per_class.rst",
            category="Evaluation",
            subcategory="{variant}",
            labels={"figure": "per-class F1", "seed": "{seed}", "split": "{split}"},
        ),
        timeline=report(
            out("eval/{variant}/seed{seed}/{split}/timeline.png"),
            caption="../report/evaluate_timeline.rst",
            category="Evaluation",
            subcategory="{variant}",
            labels={"figure": "timeline", "seed": "{seed}", "split": "{split}"},
        ),
    log:
        out("logs/evaluate/{variant}/seed{seed}/{split}.log"),
    benchmark:
        out("benchmarks/evaluate/{variant}/seed{seed}/{split}.tsv")
    wildcard_constraints:
        seed=r"\d+",
        split="val|test",
    conda:
        "../../envs/avvp.yaml"
    params:
        folder=lambda wildcards, input: os.path.dirname(input.annotations),
        out_dir=lambda wildcards, output: os.path.dirname(output.metrics),
        gate=evaluate_gate,
        timeline_videos=evaluate_timeline_videos,
        version=config["data"].get("annotation_version", "current"),
        allow_missing=allow_missing_flag,
    shell:
        "avvp evaluate --predictions {input.predictions} --annotations {params.folder}"
        " --split {wildcards.split} --gate {params.gate} --version {params.version}"
        " --out {params.out_dir} --timeline-videos {params.timeline_videos}"
        " --meta variant={wildcards.variant} --meta seed={wildcards.seed} {params.allow_missing}"
        " > {log} 2>&1"
