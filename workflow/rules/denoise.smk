# Stage rules: dynamic label denoising (JoMoLD). The noise ratios a dynamic variant trains with
# (avvp noise-ratios; registry avvp.experiments.RATIO_TARGETS: ratios/jomold/ from the noise
# estimator models/jomold_ne/, ratios/ma/ from MA's refined labels refine/ma/, ratios/truth/ from
# the demo's true labels), and the quality of the drops a dynamic variant recorded while training.


rule noise_ratios:
    """Per-class noise ratios of the training labels (ratios.parquet and the official
    noise_ratios.npz), compared with the true ratios where the data set knows them."""
    input:
        unpack(W.ratio_inputs),
    output:
        **W.ratio_quality_outputs(),
        ratios=W.out(layout.RATIOS),
        npz=W.out(layout.RATIOS_NPZ),
    log:
        W.log("ratios/{name}/seed{seed}"),
    benchmark:
        W.benchmark("ratios/{name}/seed{seed}")
    wildcard_constraints:
        name=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    params:
        source=W.ratio_source_args,
        settings=W.ratio_settings_json,
        quality=W.quality_dir_arg("ratios"),
    shell:
        "avvp noise-ratios --manifest {input.manifest} {params.source} --out {output.ratios}"
        " --npz {output.npz} --run-seed {wildcards.seed} --settings '{params.settings}'"
        " {params.quality} --no-progress > {log} 2>&1"


rule drop_quality:
    """Precision and recall of the labels a dynamic variant dropped while training (demo only)."""
    input:
        drops=W.out(layout.DROPS),
        manifest=W.out(layout.MANIFEST),
        truth_audio=W.out(layout.DENSE["train_audio"]),
        truth_visual=W.out(layout.DENSE["train_visual"]),
    output:
        quality=W.out(layout.DROP_QUALITY),
        epochs=W.out(layout.DROP_QUALITY_EPOCHS),
        counts=W.out(layout.DROP_COUNTS),
        quality_md=report(
            W.out(layout.DROP_QUALITY_MD),
            caption="../report/drop_quality.rst",
            category="Label denoising",
            subcategory="{variant}",
            labels={"seed": "{seed}", "file": "table"},
        ),
        quality_png=report(
            W.out(layout.DROP_QUALITY_PNG),
            caption="../report/drop_quality.rst",
            category="Label denoising",
            subcategory="{variant}",
            labels={"seed": "{seed}", "file": "picture"},
        ),
    log:
        W.log("denoise/{variant}/seed{seed}"),
    benchmark:
        W.benchmark("denoise/{variant}/seed{seed}")
    wildcard_constraints:
        variant=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    params:
        folder=W.output_dir("quality"),
    shell:
        "avvp drop-quality --drops {input.drops} --manifest {input.manifest}"
        " --out-dir {params.folder} > {log} 2>&1"
