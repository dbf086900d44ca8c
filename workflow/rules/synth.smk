# Stage rules: synth. The embedded synthetic demo data set (data.source: synth): `synth_plan`
# writes the LLP-format annotation folder (the six CSVs, classes.txt, the training videos'
# per-modality truth and synth_plan.json); `synth_render` renders one shard of the planned videos
# into MP4 clips <results>/<dataset>/clips/<id>.mp4 and lists them in clips/shard_<i>.parquet.


if W.is_synth():

    rule synth_plan:
        """Plan the synthetic data set and write its LLP-format annotation folder."""
        output:
            **W.synth_annotation_outputs(),
        log:
            W.log("synth_plan"),
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=W.synth_plan_settings(),
            folder=W.output_dir("plan"),
        shell:
            "avvp synth plan --settings '{params.settings}' --out {params.folder} > {log} 2>&1"

    rule synth_render:
        """Render one shard of the planned videos into MP4 clips (H.264 + AAC)."""
        input:
            plan=W.out(layout.SYNTH_PLAN),
            full=W.out(layout.ANNOTATIONS_FULL),
        output:
            clips=W.out(layout.CLIP_SHARD),
        log:
            W.log("synth_render_{shard}"),
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=W.settings_json("synth"),
            annotations=W.input_dir("plan"),
            shards=len(W.synth_shards()),
            clips=W.output_dir("clips"),
        shell:
            "avvp synth render --annotations {params.annotations} --settings '{params.settings}'"
            " --shard {wildcards.shard} --shards {params.shards} --out {params.clips}"
            " > {log} 2>&1"
