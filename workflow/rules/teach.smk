# Stage rules: teach. VALOR's segment-level pseudo labels per modality
# (<results>/<dataset>/pseudo/{audio,visual}.parquet), from one of three sources (config `pseudo`):
# the CLIP/CLAP teacher stores (features/clip_image.h5, features/clap_audio.h5), VALOR's released
# CLIP/ and CLAP/ folders (pseudo.release), or, on the demo, stand-in teachers trained on a
# disjoint synthetic pool (teachers/pool/). The labels are scored as predictions
# (eval/pseudo/<split>/). Not part of the default target: build `snakemake --cores 2 pseudo`.


include: "teach_functions.smk"


if pseudo_teacher() == "release":

    rule teach_release:
        """Import VALOR's released features and pseudo labels (broken files: the failure table)."""
        input:
            annotations=annotation_marker(),
        output:
            audio=out("pseudo/audio.parquet"),
            visual=out("pseudo/visual.parquet"),
            clap=out("features/clap_audio.h5"),
            clip=out("features/clip_image.h5"),
            failures=out("pseudo/failures/release.parquet"),
        log:
            out("logs/teach/release.log"),
        conda:
            "../../envs/avvp.yaml"
        params:
            folder=pseudo_config("release"),
            annotations=parent_of_annotations_input,
            version=config["data"].get("annotation_version", "current"),
            features=lambda wildcards, output: os.path.dirname(output.clap),
            pseudo=lambda wildcards, output: os.path.dirname(output.audio),
        shell:
            "avvp teach release --folder {params.folder} --annotations {params.annotations}"
            " --version {params.version} --features-dir {params.features}"
            " --pseudo-dir {params.pseudo} --failures {output.failures} > {log} 2>&1"

else:
    for _modality in PSEUDO_MODALITIES:

        rule:
            name:
                f"teach_{_modality}"
            input:
                annotations=annotation_marker(),
                scores=teacher_scores(_modality),
            output:
                labels=out(f"pseudo/{_modality}.parquet"),
            log:
                out(f"logs/teach/{_modality}.log"),
            conda:
                "../../envs/avvp.yaml"
            params:
                modality=_modality,
                annotations=parent_of_annotations_input,
                version=config["data"].get("annotation_version", "current"),
                thresholds=thresholds_arg(_modality),
            shell:
                "avvp teach labels --modality {params.modality} --scores {input.scores}"
                " --annotations {params.annotations} --version {params.version}"
                " {params.thresholds} --out {output.labels} > {log} 2>&1"


if pseudo_teacher() == "standin":

    rule standin_pool_plan:
        """Plan the stand-in teachers' pool: synthetic videos no split of the demo holds."""
        output:
            train=out("teachers/pool/annotations/AVVP_train.csv"),
            plan=out("teachers/pool/annotations/synth_plan.json"),
        log:
            out("logs/teach/pool_plan.log"),
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=standin_plan_json(),
            folder=parent_of_train_output,
            prefix=standin_config("id_prefix", "P"),
        shell:
            "avvp synth plan --settings '{params.settings}' --out {params.folder}"
            " --id-prefix {params.prefix} > {log} 2>&1"

    rule standin_pool_render:
        """Render one shard of the pool's clips."""
        input:
            plan=out("teachers/pool/annotations/synth_plan.json"),
        output:
            clips=out("teachers/pool/clips/shard_{shard}.parquet"),
        log:
            out("logs/teach/pool_render_{shard}.log"),
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=standin_render_json(),
            annotations=synth_render_annotations,
            shards=len(standin_shards()),
            clips=synth_render_clips,
        shell:
            "avvp synth render --annotations {params.annotations} --settings '{params.settings}'"
            " --shard {wildcards.shard} --shards {params.shards} --out {params.clips}"
            " --no-progress > {log} 2>&1"

    rule standin_pool_features:
        """The pool's manifest, and its features from the demo's own extractors (one job)."""
        input:
            annotations=out("teachers/pool/annotations/AVVP_train.csv"),
            clips=expand(
                out("teachers/pool/clips/shard_{shard}.parquet"),
                shard=standin_shards(),
            ),
        output:
            manifest=out("teachers/pool/manifest.parquet"),
            stores=expand(out("teachers/pool/features/{role}.h5"), role=FEATURE_ROLES),
        log:
            out("logs/teach/pool_features.log"),
        benchmark:
            out("benchmarks/teach/pool_features.tsv")
        conda:
            "../../envs/avvp.yaml"
        threads: feature_config("threads", 2)
        params:
            settings=settings_json("features"),
            pool=lambda wildcards, output: os.path.dirname(output.manifest),
        shell:
            "(avvp manifest {params.pool}/annotations --out {params.pool} --clips {params.pool}/clips"
            " && avvp extract --manifest {output.manifest} --role all --settings '{params.settings}'"
            " --shard 0 --shards 1 --out '{params.pool}/features/{{role}}.h5'"
            " --failures '{params.pool}/features/failures/{{role}}.parquet'"
            " --threads {threads} --no-progress) > {log} 2>&1"

    rule standin_teacher:
        """Train one modality's stand-in teacher on the pool; score every demo video."""
        input:
            annotations=annotation_marker(),
            pool=expand(out("teachers/pool/features/{role}.h5"), role=FEATURE_ROLES),
            features=expand(out("features/{role}.h5"), role=["audio", "clip"]),
            pooled=out("features/frame_pooled.h5"),
        output:
            model=out("teachers/standin/{modality}.pt"),
            scores=out("teachers/standin/{modality}_scores.h5"),
        log:
            out("logs/teach/standin_{modality}.log"),
        wildcard_constraints:
            modality="audio|visual",
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=json.dumps(standin_config("teacher", {}), separators=(",", ":")),
            annotations=parent_of_annotations_input,
            pool=lambda wildcards, input: os.path.dirname(
                os.path.dirname(input.pool[0])
            ),
            features=lambda wildcards, input: os.path.dirname(input.pooled),
        shell:
            "avvp teach standin --modality {wildcards.modality} --pool {params.pool}"
            " --features-dir {params.features} --annotations {params.annotations}"
            " --settings '{params.settings}' --model {output.model} --scores {output.scores}"
            " > {log} 2>&1"


rule score_pseudo:
    """Score the pseudo labels as predictions with the LLP protocol (train: against the truth)."""
    input:
        annotations=annotation_marker(),
        audio=out("pseudo/audio.parquet"),
        visual=out("pseudo/visual.parquet"),
    output:
        metrics=out("eval/pseudo/{split}/metrics.json"),
        table=out("eval/pseudo/{split}/table.md"),
        png=out("eval/pseudo/{split}/per_class.png"),
    log:
        out("logs/teach/score_{split}.log"),
    wildcard_constraints:
        split="train|val|test",
    conda:
        "../../envs/avvp.yaml"
    params:
        annotations=parent_of_annotations_input,
        version=config["data"].get("annotation_version", "current"),
        folder=lambda wildcards, output: os.path.dirname(output.metrics),
    shell:
        "avvp teach score --audio {input.audio} --visual {input.visual}"
        " --annotations {params.annotations} --version {params.version}"
        " --split {wildcards.split} --out {params.folder} > {log} 2>&1"


localrules:
    pseudo,


rule pseudo:
    """The pseudo labels and their scores: `snakemake --cores 2 pseudo`."""
    input:
        pseudo_targets(),
