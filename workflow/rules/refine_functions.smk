# Input and parameter functions of the refine rules (refine.smk).

import os

from avvp import experiments as avvp_experiments
from avvp.annotations import TRAIN_TRUTH_FILES


def refine_has_train_truth():
    """True when the data set knows its true per-modality training labels: the synthetic demo,
    or an annotation folder (data.annotations) that holds AVVP_train_audio.csv and
    AVVP_train_visual.csv (e.g. a stand-in release, `avvp rehearsal release`)."""
    if is_synth():
        return True
    folder = config["data"].get("annotations")
    return bool(folder) and all(
        os.path.isfile(os.path.join(folder, name))
        for name in TRAIN_TRUTH_FILES.values()
    )


def refine_base_model(wildcards):
    """The trained base model of refine target {name} (registry), same seed."""
    return out(avvp_experiments.base_model_target(wildcards.name, int(wildcards.seed)))


def refine_settings_json(wildcards):
    """Config `refine` with the refine target's own overrides (e.g. modalities) applied."""
    settings = avvp_experiments.refine_settings(
        wildcards.name, config.get("refine", {})
    )
    return json.dumps(settings, separators=(",", ":"))


def refine_quality_outputs():
    """The refinement-quality report files, where the data set has training truth."""
    if not refine_has_train_truth():
        return {}
    folder = "refine/{name}/seed{seed}"
    return {
        "quality": out(f"{folder}/quality.parquet"),
        "quality_md": report(
            out(f"{folder}/quality.md"),
            caption="../report/refine_quality.rst",
            category="Label refinement",
            subcategory="{name}",
            labels={"seed": "{seed}", "file": "table"},
        ),
        "quality_png": report(
            out(f"{folder}/quality.png"),
            caption="../report/refine_quality.rst",
            category="Label refinement",
            subcategory="{name}",
            labels={"seed": "{seed}", "file": "picture"},
        ),
    }


def refine_quality_arg(wildcards, output):
    """`--quality-dir <the labels' folder>` where the data set has training truth."""
    if not refine_has_train_truth():
        return ""
    return f"--quality-dir {os.path.dirname(output.labels)}"


def refine_features_folder(wildcards, input):
    """The folder holding the merged feature stores (the folder of input.audio)."""
    return os.path.dirname(input.audio)
