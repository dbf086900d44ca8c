# Input and parameter functions of the synth rules (synth.smk).

import os

from avvp.synth.settings import PLAN_KEYS

SYNTH_ANNOTATION_FILES = {
    "full": "AVVP_dataset_full.csv",
    "val": "AVVP_val_pd.csv",
    "test": "AVVP_test_pd.csv",
    "audio": "AVVP_eval_audio.csv",
    "visual": "AVVP_eval_visual.csv",
    "train_audio": "AVVP_train_audio.csv",
    "train_visual": "AVVP_train_visual.csv",
    "classes": "classes.txt",
    "plan": "synth_plan.json",
    "train": "AVVP_train.csv",
}


def synth_shards():
    """Indices of the render shards."""
    return list(range(config.get("synth", {}).get("shards", 1)))


def clip_lists():
    """The per-shard lists of rendered clips (synth); none for other data sets."""
    if not is_synth():
        return []
    return expand(out("clips/shard_{shard}.parquet"), shard=synth_shards())


def synth_annotation_outputs():
    """The files `avvp synth plan` writes, by name."""
    return {
        key: out(f"annotations/{name}") for key, name in SYNTH_ANNOTATION_FILES.items()
    }


def synth_plan_settings():
    """The plan keys of the synth section as JSON: render-only changes keep the annotations."""
    section = config.get("synth", {})
    return json.dumps(
        {k: section[k] for k in PLAN_KEYS if k in section}, separators=(",", ":")
    )


def synth_plan_folder(wildcards, output):
    """The annotation folder the plan rule writes."""
    return os.path.dirname(output.plan)


def synth_render_annotations(wildcards, input):
    """The annotation folder the render rule reads."""
    return os.path.dirname(input.plan)


def synth_render_clips(wildcards, output):
    """The clips folder the render rule writes into."""
    return os.path.dirname(output.clips)
