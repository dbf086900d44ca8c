# Input and parameter functions of the download and parse rules (parse.smk).

import json
import os

from avvp.parse import VIDEO_EXTENSIONS

#: Keys of config `parse` that belong to the rule, not to `avvp parse --settings`.
PARSE_RULE_KEYS = ("videos", "model", "out")


def parse_config(key, default=None):
    """One key of config `parse`."""
    return (config.get("parse") or {}).get(key, default)


def parse_video_files(wildcards):
    """The video files of the folder config parse.videos, sorted."""
    folder = parse_config("videos")
    if not folder:
        raise ValueError(
            "snakemake parse: set config parse.videos to a folder of videos "
            "(e.g. --config parse='{videos: my_videos}')"
        )
    if not os.path.isdir(folder):
        raise ValueError(f"config parse.videos: folder not found: {folder}")
    return sorted(
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS
    )


def parse_model():
    """The model that parses: config parse.model, or this data set's MA model (first seed)."""
    model = parse_config("model")
    if model:
        return model
    seeds = config.get("train", {}).get("seeds") or [1]
    return out(f"models/ma/seed{seeds[0]}/model.pt")


def parse_summary():
    """The summary table `avvp parse` writes (config parse.out, under the results folder)."""
    return out(f"{parse_config('out', 'parsed')}/summary.csv")


def output_folder(wildcards, output):
    """The folder of a rule's first output (its other results go beside it)."""
    return os.path.dirname(output[0])


def parse_settings_json():
    """Config `parse` without the rule's own keys, as JSON for --settings."""
    section = {
        k: v for k, v in (config.get("parse") or {}).items() if k not in PARSE_RULE_KEYS
    }
    return json.dumps(section, separators=(",", ":"))


def parse_features_flag():
    """Models trained on imported official features record no extractor settings: pass the config's."""
    features = config.get("features") or {}
    if not features.get("official"):
        return ""
    roles = {
        role: features[role] for role in ("audio", "frame", "clip") if role in features
    }
    return f"--features '{json.dumps(roles, separators=(',', ':'))}'"


def download_settings_json(wildcards):
    """Config `download` without retry_failed (a flag), as JSON for --settings.

    A params function, so that "{id}" in the URL template is not taken for a wildcard.
    """
    section = {
        k: v for k, v in (config.get("download") or {}).items() if k != "retry_failed"
    }
    return json.dumps(section, separators=(",", ":"))


def download_flags():
    return (
        "--retry-failed" if (config.get("download") or {}).get("retry_failed") else ""
    )
