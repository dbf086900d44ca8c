# Annotations and the manifest.


if not is_synth():

    rule fetch_annotations:
        """Fetch the six LLP annotation CSVs from their public source and check their sha256."""
        output:
            train=out("annotations/AVVP_train.csv"),
        log:
            out("logs/fetch_annotations.log"),
        conda:
            "../../envs/avvp.yaml"
        params:
            url=config["data"].get("annotations_url", ""),
            folder=parent_of_train_output,
        shell:
            "avvp annotations fetch --url {params.url} --out {params.folder} > {log} 2>&1"


rule manifest:
    """Read the LLP-format annotations into the Parquet manifest and dense tables."""
    input:
        annotations=annotation_marker(),
        clips=clip_lists(),
        downloads=download_table(),
    output:
        manifest=out("manifest.parquet"),
        audio=out("dense_audio.parquet"),
        visual=out("dense_visual.parquet"),
        train_audio=out("dense_train_audio.parquet"),
        train_visual=out("dense_train_visual.parquet"),
    log:
        out("logs/manifest.log"),
    benchmark:
        out("benchmarks/manifest.tsv")
    conda:
        "../../envs/avvp.yaml"
    params:
        folder=parent_of_annotations_input,
        outdir=parent_of_manifest_output,
        version=config["data"].get("annotation_version", "current"),
        clips=clips_param,
    shell:
        "avvp manifest {params.folder} --out {params.outdir} --version {params.version}"
        " --clips {params.clips} > {log} 2>&1"
