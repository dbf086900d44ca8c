# Stage rules: evaluate. Scores a model's predictions on one split with the LLP protocol
# and writes metrics, the Table-1 layout and pictures for the report. The gate is
# config evaluate.gate, or the variant's own where it has a recipe (avvp/experiments/variants.py).


rule evaluate:
    """Score predictions with the LLP protocol: metrics (JSON, Parquet), Table 1, per-class F1, timelines."""
    input:
        predictions=W.out(layout.PREDICTIONS),
        annotations=W.annotation_marker(),
    output:
        metrics=W.out(layout.EVALUATION["metrics"]),
        metrics_parquet=W.out(layout.EVALUATION["metrics_parquet"]),
        per_class=W.out(layout.EVALUATION["per_class"]),
        per_video=W.out(layout.EVALUATION["per_video"]),
        table_md=W.out(layout.EVALUATION["table_md"]),
        table_csv=report(
            W.out(layout.EVALUATION["table_csv"]),
            caption="../report/evaluate_table.rst",
            category="Evaluation",
            subcategory="{variant}",
            labels={"figure": "Table 1", "seed": "{seed}", "split": "{split}"},
        ),
        per_class_png=report(
            W.out(layout.EVALUATION["per_class_png"]),
            caption="../report/evaluate_per_class.rst",
            category="Evaluation",
            subcategory="{variant}",
            labels={"figure": "per-class F1", "seed": "{seed}", "split": "{split}"},
        ),
        timeline=report(
            W.out(layout.EVALUATION["timeline"]),
            caption="../report/evaluate_timeline.rst",
            category="Evaluation",
            subcategory="{variant}",
            labels={"figure": "timeline", "seed": "{seed}", "split": "{split}"},
        ),
    log:
        W.log("evaluate/{variant}/seed{seed}/{split}"),
    benchmark:
        W.benchmark("evaluate/{variant}/seed{seed}/{split}")
    wildcard_constraints:
        seed=r"\d+",
        split="val|test",
    conda:
        "../../envs/avvp.yaml"
    params:
        folder=W.input_dir("annotations"),
        out_dir=W.output_dir("metrics"),
        gate=W.evaluate_gate,
        timeline_videos=W.evaluate_timeline_videos,
        version=W.annotation_version(),
        allow_missing=W.allow_missing_flag,
    shell:
        "avvp evaluate --predictions {input.predictions} --annotations {params.folder}"
        " --split {wildcards.split} --gate {params.gate} --version {params.version}"
        " --out {params.out_dir} --timeline-videos {params.timeline_videos}"
        " --meta variant={wildcards.variant} --meta seed={wildcards.seed} {params.allow_missing}"
        " > {log} 2>&1"
