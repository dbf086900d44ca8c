# Parameter functions of the evaluate rule (evaluate.smk).


def evaluate_gate(wildcards):
    """The video-level gate of variant {variant}: config evaluate.gate, its recipe applied."""
    return variant_config(wildcards.variant)[1].get("gate", "han")


def evaluate_timeline_videos(wildcards):
    """How many videos variant {variant}'s timeline.png draws (config evaluate, recipe applied)."""
    return variant_config(wildcards.variant)[1].get("timeline_videos", 4)
