# Stage rules: download and parse.
# `download` fetches the LLP videos with yt-dlp into <results>/<dataset>/clips/ (data.source: llp
# with no data.clips folder and no official features); the files are kept uncut and
# clips/downloads.parquet records each video's window. `parse` turns every video of the folder
# config parse.videos into event tables and timelines with a trained model
# (`snakemake parse`, or by default once parse.videos is set).


include: "parse_functions.smk"


if needs_download():

    rule download:
        """Download the LLP videos (yt-dlp, uncut); unavailable ones go to clips/download_failures.parquet."""
        input:
            annotations=annotation_marker(),
        output:
            table=download_table(),
        log:
            out("logs/download.log"),
        conda:
            "../../envs/avvp.yaml"
        params:
            folder=annotation_dir(),
            clips=output_folder,
            settings=download_settings_json,
            flags=download_flags(),
        shell:
            "avvp download {params.folder} --out {params.clips} --settings '{params.settings}'"
            " {params.flags} --no-progress > {log} 2>&1"


rule parse:
    """Parse every video of config parse.videos into events (JSON, CSV) and a timeline picture."""
    input:
        videos=parse_video_files,
        model=parse_model(),
    output:
        summary=parse_summary(),
    log:
        out("logs/parse.log"),
    conda:
        "../../envs/avvp.yaml"
    params:
        out=output_folder,
        settings=parse_settings_json(),
        features=parse_features_flag(),
    shell:
        "avvp parse {input.videos:q} --model {input.model:q} --out {params.out:q}"
        " --settings '{params.settings}' {params.features} --no-progress > {log} 2>&1"


if parse_config("videos"):
    FINAL_TARGETS.append(parse_summary())
