# Stage rules: refine. MA's exchange-based modality-aware label refinement (avvp refine).
# The refine target {name} and its base model come from the registry avvp.experiments: e.g.
# refine/ma/seed1/labels.parquet is made by models/baseline_c/seed1/model.pt.


include: "refine_functions.smk"


rule refine:
    """Modality-aware labels of the training videos from the registry's base model (the
    "refined labels" target; rebuild one alone with e.g. `snakemake <results>/<dataset>/refine/ma/seed1/labels.parquet`).
    """
    input:
        model=refine_base_model,
        audio=out("features/audio.h5"),
        frame=out("features/frame_pooled.h5"),
        clip=out("features/clip.h5"),
        manifest=out("manifest.parquet"),
        truth_audio=out("dense_train_audio.parquet"),
        truth_visual=out("dense_train_visual.parquet"),
    output:
        **refine_quality_outputs(),
        labels=out("refine/{name}/seed{seed}/labels.parquet"),
    log:
        out("logs/refine/{name}/seed{seed}.log"),
    benchmark:
        out("benchmarks/refine/{name}/seed{seed}.tsv")
    wildcard_constraints:
        name=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    params:
        settings=refine_settings_json,
        features=refine_features_folder,
        quality=refine_quality_arg,
    shell:
        "avvp refine --model {input.model} --features {params.features} --manifest {input.manifest}"
        " --out {output.labels} --run-seed {wildcards.seed} --settings '{params.settings}'"
        " {params.quality} > {log} 2>&1"


rule refine_pkl:
    """A refined-labels table in the official need_to_change.pkl layout (built only on request)."""
    input:
        labels=out("refine/{name}/seed{seed}/labels.parquet"),
        manifest=out("manifest.parquet"),
    output:
        pkl=out("refine/{name}/seed{seed}/need_to_change.pkl"),
    log:
        out("logs/refine/{name}/seed{seed}_pkl.log"),
    wildcard_constraints:
        name=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    shell:
        "avvp refine --to-pkl {input.labels} --manifest {input.manifest} --pkl {output.pkl} > {log} 2>&1"
