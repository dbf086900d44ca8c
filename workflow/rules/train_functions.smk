# Input and parameter functions of the train and predict rules (train.smk).

import json
import os

TRAIN_FEATURE_ROLES = ["audio", "frame", "clip"]


def train_variant(name):
    """(contrastive, tau, labels path or None) of a variant, from avvp.experiments.

    Until the registry exists, "baseline" (no contrastive loss) and "baseline_c" (contrastive)
    train on the weak labels.
    """
    default_tau = config.get("train", {}).get("contrastive", {}).get("tau", 0.2)
    try:
        from avvp.experiments import get_variant
    except ImportError:
        if name not in ("baseline", "baseline_c"):
            raise ValueError(f"unknown variant {name!r} (known: baseline, baseline_c)")
        return name == "baseline_c", default_tau, None
    variant = get_variant(name)
    tau = default_tau if variant.tau is None else variant.tau
    return variant.contrastive, tau, variant.labels_from


def train_labels(wildcards):
    """The refined-labels file a variant trains on, or None for the weak labels."""
    labels_from = train_variant(wildcards.variant)[2]
    if labels_from is None:
        return None
    return out(f"refine/{labels_from}/seed{wildcards.seed}/labels.parquet")


def train_inputs(wildcards):
    """Merged feature stores, the manifest and (for refined variants) the labels file."""
    inputs = {role: out(f"features/{role}.h5") for role in TRAIN_FEATURE_ROLES}
    inputs["manifest"] = out("manifest.parquet")
    labels = train_labels(wildcards)
    if labels is not None:
        inputs["labels"] = labels
    return inputs


def train_flags(wildcards):
    """The variant's command-line flags: contrastive loss, temperature, labels."""
    contrastive, tau, _ = train_variant(wildcards.variant)
    flags = f"--contrastive {'on' if contrastive else 'off'} --tau {tau}"
    labels = train_labels(wildcards)
    if labels is not None:
        flags += f" --labels {labels}"
    return flags


def features_folder(wildcards, input):
    """The folder holding the merged feature stores (the folder of input.audio)."""
    return os.path.dirname(input.audio)


def train_settings_json():
    """Config sections model and train, as one --settings JSON."""
    sections = {key: config.get(key, {}) for key in ("model", "train")}
    return json.dumps(sections, separators=(",", ":"))


def predict_settings_json():
    """The predict settings: the training device."""
    return json.dumps(
        {"device": config.get("train", {}).get("device", "auto")}, separators=(",", ":")
    )
