# Stage rules: refine. MA's exchange-based modality-aware label refinement (avvp refine).
# The refine target {name} and its base model come from the registry avvp.experiments: e.g.
# refine/ma/seed1/labels.parquet is made by models/baseline_c/seed1/model.pt.


rule refine:
    """Modality-aware labels of the training videos from the registry's base model (the
    "refined labels" target; rebuild one alone with e.g. `snakemake <results>/<dataset>/refine/ma/seed1/labels.parquet`).
    """
    input:
        model=W.refine_base_model,
        audio=W.feature_store("audio"),
        frame=W.out(layout.POOLED_FRAMES),
        clip=W.feature_store("clip"),
        manifest=W.out(layout.MANIFEST),
        truth_audio=W.out(layout.DENSE["train_audio"]),
        truth_visual=W.out(layout.DENSE["train_visual"]),
    output:
        **W.refine_quality_outputs(),
        labels=W.out(layout.REFINED_LABELS),
    log:
        W.log("refine/{name}/seed{seed}"),
    benchmark:
        W.benchmark("refine/{name}/seed{seed}")
    wildcard_constraints:
        name=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    params:
        settings=W.refine_settings_json,
        features=W.input_dir("audio"),
        quality=W.quality_dir_arg("labels"),
    shell:
        "avvp refine --model {input.model} --features {params.features} --manifest {input.manifest}"
        " --out {output.labels} --run-seed {wildcards.seed} --settings '{params.settings}'"
        " {params.quality} > {log} 2>&1"


rule refine_pkl:
    """A refined-labels table in the official need_to_change.pkl layout (built only on request)."""
    input:
        labels=W.out(layout.REFINED_LABELS),
        manifest=W.out(layout.MANIFEST),
    output:
        pkl=W.out(layout.REFINED_PKL),
    log:
        W.log("refine/{name}/seed{seed}_pkl"),
    wildcard_constraints:
        name=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    shell:
        "avvp refine --to-pkl {input.labels} --manifest {input.manifest} --pkl {output.pkl} > {log} 2>&1"
