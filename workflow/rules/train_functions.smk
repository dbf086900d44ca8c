# Input and parameter functions of the train and predict rules (train.smk).

import json
import os

from avvp import architectures as avvp_architectures


def dynamic_variant_regex():
    """Wildcard constraint of the train_denoised rule, the registry's dynamic label-denoising variants."""
    return "|".join(avvp_experiments.dynamic_variant_names())


def static_variant_regex():
    """Wildcard constraint of the train rule, any variant name but the dynamic ones."""
    names = "|".join(avvp_experiments.dynamic_variant_names())
    return rf"(?!(?:{names})\b)[A-Za-z0-9_.]+"


def train_variant(name):
    """(contrastive, tau, refine target or None) of a variant, from the registry (avvp.experiments).

    The default temperature is the variant's train.contrastive.tau (its recipe applied).
    """
    variant = avvp_experiments.get_variant(name)
    default_tau = variant_config(name)[0].get("contrastive", {}).get("tau", 0.2)
    return (
        variant.contrastive,
        avvp_experiments.train_tau(variant, default_tau),
        variant.labels_from,
    )


def train_labels(wildcards):
    """The refined-labels file a variant trains on, or None for the weak labels."""
    labels_from = train_variant(wildcards.variant)[2]
    if labels_from is None:
        return None
    return out(f"refine/{labels_from}/seed{wildcards.seed}/labels.parquet")


def train_ratios(wildcards):
    """The noise-ratio file a dynamic variant trains with, or None."""
    path = avvp_experiments.ratios_target(wildcards.variant, int(wildcards.seed))
    return None if path is None else out(path)


def feature_inputs(variant):
    """The feature stores a variant's model reads, by input slot (audio, frame, clip): the
    variant's declared roles (VALOR++: clap_audio, clip_image); ResNet frames from the pooled store.
    """
    roles = avvp_architectures.model_roles(variant_sections(variant)["model"])
    stores = {slot: out(f"features/{role}.h5") for slot, role in roles.items()}
    if roles["frame"] == "frame":
        stores["frame"] = out("features/frame_pooled.h5")
    return stores


def pseudo_inputs(variant):
    """The teachers' pseudo-label files a variant trains with (pseudo_audio, pseudo_visual)."""
    files = avvp_experiments.pseudo_targets(variant)
    return {f"pseudo_{modality}": out(path) for modality, path in files.items()}


def train_inputs(wildcards):
    """Feature stores, the manifest and (for refined variants) the labels file or (for
    dynamic variants) the noise ratios or (for pseudo-label variants) the pseudo labels.
    """
    inputs = feature_inputs(wildcards.variant)
    inputs["manifest"] = out("manifest.parquet")
    inputs.update(pseudo_inputs(wildcards.variant))
    labels = train_labels(wildcards)
    if labels is not None:
        inputs["labels"] = labels
    ratios = train_ratios(wildcards)
    if ratios is not None:
        inputs["ratios"] = ratios
    return inputs


def train_flags(wildcards):
    """The variant's command-line flags: contrastive loss, temperature, labels, noise ratios."""
    contrastive, tau, _ = train_variant(wildcards.variant)
    flags = f"--contrastive {'on' if contrastive else 'off'} --tau {tau}"
    labels = train_labels(wildcards)
    if labels is not None:
        flags += f" --labels {labels}"
    ratios = train_ratios(wildcards)
    if ratios is not None:
        flags += f" --ratios {ratios}"
    for name, path in pseudo_inputs(wildcards.variant).items():
        flags += f" --{name.replace('_', '-')} {path}"
    return flags


def predict_inputs(wildcards):
    """The model, the feature stores its variant reads and the manifest."""
    inputs = {"model": out(f"models/{wildcards.variant}/seed{wildcards.seed}/model.pt")}
    inputs.update(feature_inputs(wildcards.variant))
    inputs["manifest"] = out("manifest.parquet")
    return inputs


def features_folder(wildcards, input):
    """The folder holding the merged feature stores (the folder of input.audio)."""
    return os.path.dirname(input.audio)


def train_settings_json(wildcards):
    """The variant's model and train settings (its recipe applied), as one --settings JSON."""
    s = variant_sections(wildcards.variant)
    return json.dumps({"model": s["model"], "train": s["train"]}, separators=(",", ":"))


def predict_settings_json(wildcards):
    """The predict settings: the variant's training device."""
    device = variant_config(wildcards.variant)[0].get("device", "auto")
    return json.dumps({"device": device}, separators=(",", ":"))
