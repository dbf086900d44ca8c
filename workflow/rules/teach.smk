# Stage rules: teach. VALOR's segment-level pseudo labels per modality
# (<results>/<dataset>/pseudo/{audio,visual}.parquet), from one of three sources (config `pseudo`):
# the CLIP/CLAP teacher stores (features/clip_image.h5, features/clap_audio.h5), VALOR's released
# CLIP/ and CLAP/ folders (pseudo.release), or, on the demo, stand-in teachers trained on a
# disjoint synthetic pool (teachers/pool/). The labels are scored as predictions
# (eval/pseudo/<split>/). Not part of the default target: build `snakemake --cores 2 pseudo`.


if W.pseudo_teacher() == "release":

    rule teach_release:
        """Import VALOR's released features and pseudo labels (broken files: the failure table)."""
        input:
            annotations=W.annotation_marker(),
        output:
            audio=W.out(layout.fill(layout.PSEUDO_LABELS, modality="audio")),
            visual=W.out(layout.fill(layout.PSEUDO_LABELS, modality="visual")),
            clap=W.feature_store("clap_audio"),
            clip=W.feature_store("clip_image"),
            failures=W.out(layout.PSEUDO_RELEASE_FAILURES),
        log:
            W.log("teach/release"),
        conda:
            "../../envs/avvp.yaml"
        params:
            folder=W.pseudo_config("release"),
            annotations=W.input_dir("annotations"),
            version=W.annotation_version(),
            features=W.output_dir("clap"),
            pseudo=W.output_dir("audio"),
        shell:
            "avvp teach release --folder {params.folder} --annotations {params.annotations}"
            " --version {params.version} --features-dir {params.features}"
            " --pseudo-dir {params.pseudo} --failures {output.failures} > {log} 2>&1"

else:
    for _modality in W.PSEUDO_MODALITIES:

        rule:
            name:
                f"teach_{_modality}"
            input:
                annotations=W.annotation_marker(),
                scores=W.teacher_scores(_modality),
            output:
                labels=W.out(layout.fill(layout.PSEUDO_LABELS, modality=_modality)),
            log:
                W.log(f"teach/{_modality}"),
            conda:
                "../../envs/avvp.yaml"
            params:
                modality=_modality,
                annotations=W.input_dir("annotations"),
                version=W.annotation_version(),
                thresholds=W.thresholds_arg(_modality),
            shell:
                "avvp teach labels --modality {params.modality} --scores {input.scores}"
                " --annotations {params.annotations} --version {params.version}"
                " {params.thresholds} --out {output.labels} > {log} 2>&1"


if W.pseudo_teacher() == "standin":

    rule standin_pool_plan:
        """Plan the stand-in teachers' pool: synthetic videos no split of the demo holds."""
        output:
            train=W.out(layout.POOL_ANNOTATIONS_TRAIN),
            plan=W.out(layout.POOL_PLAN),
        log:
            W.log("teach/pool_plan"),
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=W.standin_plan_json(),
            folder=W.output_dir("train"),
            prefix=W.standin_config("id_prefix"),
        shell:
            "avvp synth plan --settings '{params.settings}' --out {params.folder}"
            " --id-prefix {params.prefix} > {log} 2>&1"

    rule standin_pool_render:
        """Render one shard of the pool's clips."""
        input:
            plan=W.out(layout.POOL_PLAN),
        output:
            clips=W.out(layout.POOL_CLIP_SHARD),
        log:
            W.log("teach/pool_render_{shard}"),
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=W.standin_render_json(),
            annotations=W.input_dir("plan"),
            shards=len(W.standin_shards()),
            clips=W.output_dir("clips"),
        shell:
            "avvp synth render --annotations {params.annotations} --settings '{params.settings}'"
            " --shard {wildcards.shard} --shards {params.shards} --out {params.clips}"
            " --no-progress > {log} 2>&1"

    rule standin_pool_features:
        """The pool's manifest, and its features from the demo's own extractors (one job)."""
        input:
            annotations=W.out(layout.POOL_ANNOTATIONS_TRAIN),
            clips=W.standin_clip_lists(),
        output:
            manifest=W.out(layout.POOL_MANIFEST),
            stores=W.feature_stores(W.FEATURE_ROLES, layout.POOL_FEATURE_STORE),
        log:
            W.log("teach/pool_features"),
        benchmark:
            W.benchmark("teach/pool_features")
        conda:
            "../../envs/avvp.yaml"
        threads: W.feature_config("threads")
        params:
            settings=W.settings_json("features"),
            pool=W.output_dir("manifest"),
        shell:
            "(avvp manifest {params.pool}/annotations --out {params.pool} --clips {params.pool}/clips"
            " && avvp extract --manifest {output.manifest} --role all --settings '{params.settings}'"
            " --shard 0 --shards 1 --out '{params.pool}/features/{{role}}.h5'"
            " --failures '{params.pool}/features/failures/{{role}}.parquet'"
            " --threads {threads} --no-progress) > {log} 2>&1"

    rule standin_teacher:
        """Train one modality's stand-in teacher on the pool; score every demo video."""
        input:
            annotations=W.annotation_marker(),
            pool=W.feature_stores(W.FEATURE_ROLES, layout.POOL_FEATURE_STORE),
            features=W.feature_stores(["audio", "clip"]),
            pooled=W.out(layout.POOLED_FRAMES),
        output:
            model=W.out(layout.STANDIN_MODEL),
            scores=W.out(layout.STANDIN_SCORES),
        log:
            W.log("teach/standin_{modality}"),
        wildcard_constraints:
            modality="audio|visual",
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=W.standin_teacher_json(),
            annotations=W.input_dir("annotations"),
            pool=lambda wildcards, input: os.path.dirname(
                os.path.dirname(input.pool[0])
            ),
            features=W.input_dir("pooled"),
        shell:
            "avvp teach standin --modality {wildcards.modality} --pool {params.pool}"
            " --features-dir {params.features} --annotations {params.annotations}"
            " --settings '{params.settings}' --model {output.model} --scores {output.scores}"
            " > {log} 2>&1"


rule score_pseudo:
    """Score the pseudo labels as predictions with the LLP protocol (train: against the truth)."""
    input:
        annotations=W.annotation_marker(),
        audio=W.out(layout.fill(layout.PSEUDO_LABELS, modality="audio")),
        visual=W.out(layout.fill(layout.PSEUDO_LABELS, modality="visual")),
    output:
        metrics=W.out(layout.PSEUDO_SCORE_METRICS),
        table=W.out(layout.PSEUDO_SCORE_TABLE),
        png=W.out(layout.PSEUDO_SCORE_PNG),
    log:
        W.log("teach/score_{split}"),
    wildcard_constraints:
        split="train|val|test",
    conda:
        "../../envs/avvp.yaml"
    params:
        annotations=W.input_dir("annotations"),
        version=W.annotation_version(),
        folder=W.output_dir("metrics"),
    shell:
        "avvp teach score --audio {input.audio} --visual {input.visual}"
        " --annotations {params.annotations} --version {params.version}"
        " --split {wildcards.split} --out {params.folder} > {log} 2>&1"


localrules:
    pseudo,


rule pseudo:
    """The pseudo labels and their scores: `snakemake --cores 2 pseudo`."""
    input:
        W.pseudo_targets(),
