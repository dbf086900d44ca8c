# Stage rules: features. One store per role (audio: VGGish, frame: 2-D backbone at 8 fps,
# clip: R(2+1)D), extracted in `features.shards` shards and merged; or, when `features.official`
# names the official "feats" folder, imported from the official pre-extracted features.
# Any one shard is its own target, e.g. results/demo/features/shards/frame/2.h5.


include: "features_functions.smk"


if feature_config("official"):

    rule import_features:
        """Import the official pre-extracted LLP features (vggish/, res152/, r2plus1d_18/)."""
        input:
            manifest=out("manifest.parquet"),
        output:
            stores=expand(out("features/{role}.h5"), role=FEATURE_ROLES),
            failures=out("features/failures/import.parquet"),
        log:
            out("logs/features/import.log"),
        benchmark:
            out("benchmarks/import_features.tsv")
        conda:
            "../../envs/avvp.yaml"
        params:
            folder=feature_config("official"),
            out_dir=lambda wildcards, output: os.path.dirname(output.stores[0]),
        shell:
            "avvp import-features --manifest {input.manifest} --folder {params.folder}"
            " --out-dir {params.out_dir} --no-progress > {log} 2>&1"

else:

    rule extract:
        """Extract the three roles' features for one shard of the manifest, decoding each clip
        once (resumable). The outputs are updated in place: a role whose shard store was made
        from the same clips with the same settings and weights is kept, so a change of one
        role's settings recomputes that role alone."""
        input:
            manifest=out("manifest.parquet"),
            clips=clip_lists(),
        output:
            stores=update(
                expand(out("features/shards/{role}/{{shard}}.h5"), role=FEATURE_ROLES)
            ),
            failures=update(
                expand(
                    out("features/failures/{role}_{{shard}}.parquet"),
                    role=FEATURE_ROLES,
                )
            ),
        log:
            out("logs/features/extract_{shard}.log"),
        benchmark:
            out("benchmarks/extract/{shard}.tsv")
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../../envs/avvp.yaml"
        threads: feature_config("threads", 2)
        params:
            settings=settings_json("features"),
            shards=feature_config("shards", 1),
            stores=lambda wildcards: out(
                f"features/shards/{{role}}/{wildcards.shard}.h5"
            ),
            failures=lambda wildcards: out(
                f"features/failures/{{role}}_{wildcards.shard}.parquet"
            ),
        shell:
            "avvp extract --manifest {input.manifest} --role all"
            " --settings '{params.settings}' --shard {wildcards.shard} --shards {params.shards}"
            " --out '{params.stores}' --failures '{params.failures}' --threads {threads}"
            " > {log} 2>&1"

    if TEACHER_ROLES:

        rule extract_teachers:
            """Extract VALOR's teacher roles (features.teachers) for one shard of the manifest, in a
            job of their own (large models; a GPU if there is one), resumable like extract.
            """
            input:
                manifest=out("manifest.parquet"),
                clips=clip_lists(),
            output:
                stores=update(
                    expand(
                        out("features/shards/{role}/{{shard}}.h5"), role=TEACHER_ROLES
                    )
                ),
                failures=update(
                    expand(
                        out("features/failures/{role}_{{shard}}.parquet"),
                        role=TEACHER_ROLES,
                    )
                ),
            log:
                out("logs/features/teachers_{shard}.log"),
            benchmark:
                out("benchmarks/extract_teachers/{shard}.tsv")
            wildcard_constraints:
                shard=r"\d+",
            conda:
                "../../envs/avvp.yaml"
            threads: feature_config("threads", 2)
            params:
                roles=" ".join(TEACHER_ROLES),
                settings=settings_json("features"),
                shards=feature_config("shards", 1),
                stores=lambda wildcards: out(
                    f"features/shards/{{role}}/{wildcards.shard}.h5"
                ),
                failures=lambda wildcards: out(
                    f"features/failures/{{role}}_{wildcards.shard}.parquet"
                ),
            shell:
                "avvp extract --manifest {input.manifest} --role {params.roles}"
                " --settings '{params.settings}' --shard {wildcards.shard} --shards {params.shards}"
                " --out '{params.stores}' --failures '{params.failures}' --threads {threads}"
                " > {log} 2>&1"

    rule merge_features:
        """Merge the shard stores of one role into features/<role>.h5."""
        input:
            feature_shards,
        output:
            store=out("features/{role}.h5"),
        log:
            out("logs/features/merge_{role}.log"),
        benchmark:
            out("benchmarks/merge_features/{role}.tsv")
        wildcard_constraints:
            role="audio|frame|clip|clip_image|clap_audio",
        conda:
            "../../envs/avvp.yaml"
        shell:
            "avvp merge-features --out {output.store} {input} > {log} 2>&1"


rule pool_frames:
    """Average the frame store to one row per segment, once, for train, refine and predict."""
    input:
        frame=out("features/frame.h5"),
        audio=out("features/audio.h5"),
    output:
        pooled=out("features/frame_pooled.h5"),
    log:
        out("logs/features/pool_frames.log"),
    benchmark:
        out("benchmarks/pool_frames.tsv")
    conda:
        "../../envs/avvp.yaml"
    params:
        features=lambda wildcards, input: os.path.dirname(input.frame),
    shell:
        "avvp pool-frames --features-dir {params.features} --no-progress > {log} 2>&1"


FINAL_TARGETS += expand(out("features/{role}.h5"), role=FEATURE_ROLES)
if not feature_config("official"):
    FINAL_TARGETS += expand(out("features/{role}.h5"), role=TEACHER_ROLES)
