# Input and parameter functions of the label-denoising rules (denoise.smk).

import json
import os

from avvp import experiments as avvp_experiments


def ratio_inputs(wildcards):
    """What ratio target {name} is made from (registry): the estimator model and the features,
    a refined-labels table, or the true training labels; and the manifest."""
    target = avvp_experiments.get_ratio_target(wildcards.name)
    inputs = {"manifest": out("manifest.parquet")}
    source = avvp_experiments.ratio_source_target(wildcards.name, int(wildcards.seed))
    if target.source == "estimator":
        inputs["model"] = out(source)
        inputs.update({role: out(f"features/{role}.h5") for role in ("audio", "clip")})
        inputs["frame"] = out("features/frame_pooled.h5")
    elif target.source == "exchange":
        inputs["labels"] = out(source)
    if target.source == "truth" or refine_has_train_truth():
        inputs["truth_audio"] = out("dense_train_audio.parquet")
        inputs["truth_visual"] = out("dense_train_visual.parquet")
    return inputs


def ratio_source_args(wildcards, input):
    """`--model M --features D`, `--labels L` or `--truth`: the source of ratio target {name}."""
    source = avvp_experiments.get_ratio_target(wildcards.name).source
    if source == "estimator":
        return f"--model {input.model} --features {os.path.dirname(input.audio)}"
    if source == "exchange":
        return f"--labels {input.labels}"
    return "--truth"


def ratio_settings_json(wildcards):
    """Config `ratios` (the noise-ratio pass of JoMoLD's stage 2)."""
    return settings_json("ratios")


def ratio_quality_outputs():
    """The comparison with the true ratios, where the data set has training truth."""
    if not refine_has_train_truth():
        return {}
    folder = "ratios/{name}/seed{seed}"
    return {
        "quality": out(f"{folder}/quality.parquet"),
        "quality_md": report(
            out(f"{folder}/quality.md"),
            caption="../report/ratio_quality.rst",
            category="Label denoising",
            subcategory="noise ratios {name}",
            labels={"seed": "{seed}", "file": "table"},
        ),
        "quality_png": report(
            out(f"{folder}/quality.png"),
            caption="../report/ratio_quality.rst",
            category="Label denoising",
            subcategory="noise ratios {name}",
            labels={"seed": "{seed}", "file": "picture"},
        ),
    }


def ratio_quality_arg(wildcards, output):
    """`--quality-dir <the ratios' folder>` where the data set has training truth."""
    if not refine_has_train_truth():
        return ""
    return f"--quality-dir {os.path.dirname(output.ratios)}"
