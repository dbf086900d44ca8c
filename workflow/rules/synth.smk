# Stage rules: synth. The embedded synthetic demo data set (data.source: synth): `synth_plan`
# writes the LLP-format annotation folder (the six CSVs, classes.txt, the training videos'
# per-modality truth and synth_plan.json); `synth_render` renders one shard of the planned videos
# into MP4 clips <results>/<dataset>/clips/<id>.mp4 and lists them in clips/shard_<i>.parquet.


include: "synth_functions.smk"


if is_synth():

    rule synth_plan:
        """Plan the synthetic data set and write its LLP-format annotation folder."""
        output:
            **synth_annotation_outputs(),
        log:
            out("logs/synth_plan.log"),
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=synth_plan_settings(),
            folder=synth_plan_folder,
        shell:
            "avvp synth plan --settings '{params.settings}' --out {params.folder} > {log} 2>&1"

    rule synth_render:
        """Render one shard of the planned videos into MP4 clips (H.264 + AAC)."""
        input:
            plan=out("annotations/synth_plan.json"),
            full=out("annotations/AVVP_dataset_full.csv"),
        output:
            clips=out("clips/shard_{shard}.parquet"),
        log:
            out("logs/synth_render_{shard}.log"),
        wildcard_constraints:
            shard=r"\d+",
        conda:
            "../../envs/avvp.yaml"
        params:
            settings=settings_json("synth"),
            annotations=synth_render_annotations,
            shards=len(synth_shards()),
            clips=synth_render_clips,
        shell:
            "avvp synth render --annotations {params.annotations} --settings '{params.settings}'"
            " --shard {wildcards.shard} --shards {params.shards} --out {params.clips}"
            " > {log} 2>&1"

    FINAL_TARGETS += clip_lists()
