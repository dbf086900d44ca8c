# Annotations and the manifest.


if not W.is_synth():

    rule fetch_annotations:
        """Fetch the six LLP annotation CSVs from their public source and check their sha256."""
        output:
            train=W.out(layout.ANNOTATIONS_TRAIN),
        log:
            W.log("fetch_annotations"),
        conda:
            "../../envs/avvp.yaml"
        params:
            url=config["data"].get("annotations_url", ""),
            folder=W.output_dir("train"),
        shell:
            "avvp annotations fetch --url {params.url} --out {params.folder} > {log} 2>&1"


rule manifest:
    """Read the LLP-format annotations into the Parquet manifest and dense tables."""
    input:
        annotations=W.annotation_marker(),
        clips=W.clip_lists(),
        downloads=W.download_table(),
    output:
        manifest=W.out(layout.MANIFEST),
        audio=W.out(layout.DENSE["audio"]),
        visual=W.out(layout.DENSE["visual"]),
        train_audio=W.out(layout.DENSE["train_audio"]),
        train_visual=W.out(layout.DENSE["train_visual"]),
    log:
        W.log("manifest"),
    benchmark:
        W.benchmark("manifest")
    conda:
        "../../envs/avvp.yaml"
    params:
        folder=W.input_dir("annotations"),
        outdir=W.output_dir("manifest"),
        version=W.annotation_version(),
        clips=W.clips_param,
    shell:
        "avvp manifest {params.folder} --out {params.outdir} --version {params.version}"
        " --clips {params.clips} > {log} 2>&1"
