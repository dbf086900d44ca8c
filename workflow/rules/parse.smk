# Stage rules: download and parse.
# `download` fetches the LLP videos with yt-dlp into <results>/<dataset>/clips/ (data.source: llp
# with no data.clips folder and no official features); the files are kept uncut and
# clips/downloads.parquet records each video's window. `parse` turns every video of the folder
# config parse.videos into event tables and timelines with a trained model
# (`snakemake parse`, or by default once parse.videos is set).


if W.needs_download():

    rule download:
        """Download the LLP videos (yt-dlp, uncut); unavailable ones go to clips/download_failures.parquet."""
        input:
            annotations=W.annotation_marker(),
        output:
            table=W.download_table(),
        log:
            W.log("download"),
        conda:
            "../../envs/avvp.yaml"
        params:
            folder=W.annotation_dir(),
            clips=W.output_folder,
            settings=W.download_settings_json,
            flags=W.download_flags(),
        shell:
            "avvp download {params.folder} --out {params.clips} --settings '{params.settings}'"
            " {params.flags} --no-progress > {log} 2>&1"


rule parse:
    """Parse every video of config parse.videos into events (JSON, CSV) and a timeline picture."""
    input:
        videos=W.parse_video_files,
        model=W.parse_model(),
    output:
        summary=W.parse_summary(),
    log:
        W.log("parse"),
    conda:
        "../../envs/avvp.yaml"
    params:
        out=W.output_folder,
        settings=W.parse_settings_json(),
        features=W.parse_features_flag(),
    shell:
        "avvp parse {input.videos:q} --model {input.model:q} --out {params.out:q}"
        " --settings '{params.settings}' {params.features} --no-progress > {log} 2>&1"
