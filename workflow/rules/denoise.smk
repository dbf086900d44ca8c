# Stage rules: dynamic label denoising (JoMoLD). The noise ratios a dynamic variant trains with
# (avvp noise-ratios; registry avvp.experiments.RATIO_TARGETS: ratios/jomold/ from the noise
# estimator models/jomold_ne/, ratios/ma/ from MA's refined labels refine/ma/, ratios/truth/ from
# the demo's true labels), and the quality of the drops a dynamic variant recorded while training.


include: "denoise_functions.smk"


rule noise_ratios:
    """Per-class noise ratios of the training labels (ratios.parquet and the official
    noise_ratios.npz), compared with the true ratios where the data set knows them."""
    input:
        unpack(ratio_inputs),
    output:
        **ratio_quality_outputs(),
        ratios=out("ratios/{name}/seed{seed}/ratios.parquet"),
        npz=out("ratios/{name}/seed{seed}/noise_ratios.npz"),
    log:
        out("logs/ratios/{name}/seed{seed}.log"),
    benchmark:
        out("benchmarks/ratios/{name}/seed{seed}.tsv")
    wildcard_constraints:
        name=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    params:
        source=ratio_source_args,
        settings=ratio_settings_json,
        quality=ratio_quality_arg,
    shell:
        "avvp noise-ratios --manifest {input.manifest} {params.source} --out {output.ratios}"
        " --npz {output.npz} --run-seed {wildcards.seed} --settings '{params.settings}'"
        " {params.quality} --no-progress > {log} 2>&1"


rule drop_quality:
    """Precision and recall of the labels a dynamic variant dropped while training (demo only)."""
    input:
        drops=out("models/{variant}/seed{seed}/drops.parquet"),
        manifest=out("manifest.parquet"),
        truth_audio=out("dense_train_audio.parquet"),
        truth_visual=out("dense_train_visual.parquet"),
    output:
        quality=out("denoise/{variant}/seed{seed}/quality.parquet"),
        epochs=out("denoise/{variant}/seed{seed}/quality_epochs.parquet"),
        counts=out("denoise/{variant}/seed{seed}/drop_counts.parquet"),
        quality_md=report(
            out("denoise/{variant}/seed{seed}/quality.md"),
            caption="../report/drop_quality.rst",
            category="Label denoising",
            subcategory="{variant}",
            labels={"seed": "{seed}", "file": "table"},
        ),
        quality_png=report(
            out("denoise/{variant}/seed{seed}/quality.png"),
            caption="../report/drop_quality.rst",
            category="Label denoising",
            subcategory="{variant}",
            labels={"seed": "{seed}", "file": "picture"},
        ),
    log:
        out("logs/denoise/{variant}/seed{seed}.log"),
    benchmark:
        out("benchmarks/denoise/{variant}/seed{seed}.tsv")
    wildcard_constraints:
        variant=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    params:
        folder=lambda wildcards, output: os.path.dirname(output.quality),
    shell:
        "avvp drop-quality --drops {input.drops} --manifest {input.manifest}"
        " --out-dir {params.folder} > {log} 2>&1"
