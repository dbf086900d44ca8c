# Stage rules: features. One store per role (audio: VGGish, frame: 2-D backbone at 8 fps,
# clip: R(2+1)D), extracted in `features.shards` shards and merged; or, when `features.official`
# names the official "feats" folder, imported from the official pre-extracted features.
# Any one shard is its own target, e.g. results/demo/features/shards/frame/2.h5.


if W.feature_config("official"):

    rule import_features:
        """Import the official pre-extracted LLP features (vggish/, res152/, r2plus1d_18/)."""
        input:
            manifest=W.out(layout.MANIFEST),
        output:
            stores=W.feature_stores(W.FEATURE_ROLES),
            failures=W.out(layout.IMPORT_FAILURES),
        log:
            W.log("features/import"),
        benchmark:
            W.benchmark("import_features")
        conda:
            "../../envs/avvp.yaml"
        params:
            folder=W.feature_config("official"),
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
            manifest=W.out(layout.MANIFEST),
            clips=W.clip_lists(),
        output:
            stores=update(W.feature_stores(W.FEATURE_ROLES, layout.FEATURE_SHARD)),
            failures=update(W.feature_stores(W.FEATURE_ROLES, layout.FEATURE_FAILURES)),
        log:
            W.log("features/extract_{shard}"),
        benchmark:
            W.benchmark("extract/{shard}")
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../../envs/avvp.yaml"
        threads: W.feature_config("threads")
        params:
            settings=W.settings_json("features"),
            shards=W.feature_config("shards"),
            stores=W.shard_pattern(layout.FEATURE_SHARD),
            failures=W.shard_pattern(layout.FEATURE_FAILURES),
        shell:
            "avvp extract --manifest {input.manifest} --role all"
            " --settings '{params.settings}' --shard {wildcards.shard} --shards {params.shards}"
            " --out '{params.stores}' --failures '{params.failures}' --threads {threads}"
            " > {log} 2>&1"

    if W.teacher_roles():

        rule extract_teachers:
            """Extract VALOR's teacher roles (features.teachers) for one shard of the manifest, in a
            job of their own (large models; a GPU if there is one), resumable like extract.
            """
            input:
                manifest=W.out(layout.MANIFEST),
                clips=W.clip_lists(),
            output:
                stores=update(W.feature_stores(W.teacher_roles(), layout.FEATURE_SHARD)),
                failures=update(
                    W.feature_stores(W.teacher_roles(), layout.FEATURE_FAILURES)
                ),
            log:
                W.log("features/teachers_{shard}"),
            benchmark:
                W.benchmark("extract_teachers/{shard}")
            wildcard_constraints:
                shard=r"\d+",
            conda:
                "../../envs/avvp.yaml"
            threads: W.feature_config("threads")
            params:
                roles=" ".join(W.teacher_roles()),
                settings=W.settings_json("features"),
                shards=W.feature_config("shards"),
                stores=W.shard_pattern(layout.FEATURE_SHARD),
                failures=W.shard_pattern(layout.FEATURE_FAILURES),
            shell:
                "avvp extract --manifest {input.manifest} --role {params.roles}"
                " --settings '{params.settings}' --shard {wildcards.shard} --shards {params.shards}"
                " --out '{params.stores}' --failures '{params.failures}' --threads {threads}"
                " > {log} 2>&1"

    rule merge_features:
        """Merge the shard stores of one role into features/<role>.h5."""
        input:
            W.feature_shards,
        output:
            store=W.out(layout.FEATURE_STORE),
        log:
            W.log("features/merge_{role}"),
        benchmark:
            W.benchmark("merge_features/{role}")
        wildcard_constraints:
            role="audio|frame|clip|clip_image|clap_audio",
        conda:
            "../../envs/avvp.yaml"
        shell:
            "avvp merge-features --out {output.store} {input} > {log} 2>&1"


rule pool_frames:
    """Average the frame store to one row per segment, once, for train, refine and predict."""
    input:
        frame=W.feature_store("frame"),
        audio=W.feature_store("audio"),
    output:
        pooled=W.out(layout.POOLED_FRAMES),
    log:
        W.log("features/pool_frames"),
    benchmark:
        W.benchmark("pool_frames")
    conda:
        "../../envs/avvp.yaml"
    params:
        features=W.input_dir("frame"),
    shell:
        "avvp pool-frames --features-dir {params.features} --no-progress > {log} 2>&1"
