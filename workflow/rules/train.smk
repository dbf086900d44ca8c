# Stage rules: train a model per experiment variant and seed, and write its predictions per split.
# Variants (what is trained: contrastive loss, temperature, refined labels, recipe) come from the
# registry in avvp/experiments/variants.py, e.g. models/ma/seed1/model.pt trains on
# refine/ma/seed1/labels.parquet; a variant's model and train settings are config model and train
# with its recipe (registry, then config recipes) applied, e.g. models/han/ trains 40 epochs,
# select best. Dynamic label-denoising variants (JoMoLD: models/jomold/ trains with
# ratios/jomold/seed1/ratios.parquet) run as rule train_denoised, which also records the drops.
# Pseudo-label variants (VALOR: models/valor/) also read pseudo/audio.parquet and
# pseudo/visual.parquet (the teachers' rules) and the feature roles their model declares.


rule train:
    """Train HAN (optionally with MA's contrastive loss and refined labels) or VALOR (with the
    teachers' pseudo labels) for one variant and seed."""
    input:
        unpack(W.train_inputs),
    output:
        model=W.out(layout.MODEL),
        history=W.out(layout.HISTORY),
        curve=report(
            W.out(layout.CURVE),
            caption="../report/train_curve.rst",
            category="Training",
            subcategory="{variant}",
            labels={"figure": "training curve", "seed": "{seed}"},
        ),
    log:
        W.log("train/{variant}/seed{seed}"),
    benchmark:
        W.benchmark("train/{variant}/seed{seed}")
    wildcard_constraints:
        variant=W.static_variant_regex(),
        seed=r"\d+",
    conda:
        "../../envs/avvp.yaml"
    params:
        settings=W.train_settings_json,
        flags=W.train_flags,
        features=W.input_dir("audio"),
        annotations=W.annotation_dir(),
        allow_missing=W.allow_missing_flag,
    shell:
        "avvp train --features-dir {params.features} --manifest {input.manifest}"
        " --annotations {params.annotations} --out {output.model}"
        " --seed {wildcards.seed} {params.flags} {params.allow_missing}"
        " --settings '{params.settings}' --no-progress > {log} 2>&1"


use rule train as train_denoised with:
    output:
        model=W.out(layout.MODEL),
        history=W.out(layout.HISTORY),
        curve=report(
            W.out(layout.CURVE),
            caption="../report/train_curve.rst",
            category="Training",
            subcategory="{variant}",
            labels={"figure": "training curve", "seed": "{seed}"},
        ),
        drops=W.out(layout.DROPS),
    wildcard_constraints:
        variant=W.dynamic_variant_regex(),
        seed=r"\d+",


rule predict:
    """Write a trained model's predictions for one split."""
    input:
        unpack(W.predict_inputs),
    output:
        predictions=W.out(layout.PREDICTIONS),
    log:
        W.log("predict/{variant}/seed{seed}/{split}"),
    benchmark:
        W.benchmark("predict/{variant}/seed{seed}/{split}")
    wildcard_constraints:
        variant=r"[A-Za-z0-9_.]+",
        seed=r"\d+",
        split="train|val|test",
    conda:
        "../../envs/avvp.yaml"
    params:
        settings=W.predict_settings_json,
        features=W.input_dir("audio"),
        allow_missing=W.allow_missing_flag,
    shell:
        "avvp predict --model {input.model} --features-dir {params.features}"
        " --manifest {input.manifest} --split {wildcards.split} --out {output.predictions}"
        " {params.allow_missing} --settings '{params.settings}' --no-progress > {log} 2>&1"
