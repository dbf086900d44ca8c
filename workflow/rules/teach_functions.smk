# Helpers of the teach stage (see teach.smk).

from avvp.synth.settings import PLAN_KEYS as SYNTH_PLAN_KEYS

PSEUDO_MODALITIES = ["audio", "visual"]
#: The feature role of each modality's VALOR teacher (its store holds the `scores` dataset).
VALOR_TEACHER_ROLES = {"audio": "clap_audio", "visual": "clip_image"}


def pseudo_config(key, default=None):
    """One key of the pseudo config section."""
    return (config.get("pseudo") or {}).get(key, default)


def pseudo_teacher():
    """release (VALOR's released labels), standin (the demo's) or valor (CLIP and CLAP)."""
    if pseudo_config("release"):
        return "release"
    teacher = pseudo_config("teacher", "auto")
    if teacher == "auto":
        return "standin" if is_synth() else "valor"
    return teacher


def standin_config(key, default=None):
    """One key of pseudo.standin."""
    return (pseudo_config("standin") or {}).get(key, default)


def standin_synth():
    """The synth section with the pool's overrides (another seed, other sizes)."""
    return {**config.get("synth", {}), **(standin_config("pool") or {})}


def standin_plan_json():
    """The pool's plan keys as JSON."""
    s = standin_synth()
    return json.dumps(
        {k: s[k] for k in SYNTH_PLAN_KEYS if k in s}, separators=(",", ":")
    )


def standin_render_json():
    """The pool's synth settings as JSON (plan and render keys)."""
    return json.dumps(standin_synth(), separators=(",", ":"))


def standin_shards():
    return list(range(standin_config("shards", 1)))


def teacher_scores(modality):
    """The teacher store whose scores become one modality's pseudo labels."""
    if pseudo_teacher() == "standin":
        return out(f"teachers/standin/{modality}_scores.h5")
    return out(f"features/{VALOR_TEACHER_ROLES[modality]}.h5")


def thresholds_arg(modality):
    """`--thresholds '[...]'` when pseudo.thresholds sets this modality's, else nothing."""
    given = (pseudo_config("thresholds") or {}).get(modality)
    return "" if given is None else f"--thresholds '{json.dumps(given)}'"


def pseudo_score_splits():
    """The splits the labels are scored on: the configured ones, and train on the demo (its truth)."""
    splits = list(pseudo_config("score_splits", ["test"]))
    return splits + (["train"] if is_synth() and "train" not in splits else [])


def pseudo_targets():
    """The outputs of the `pseudo` target: every score of the pseudo labels."""
    return expand(out("eval/pseudo/{split}/table.md"), split=pseudo_score_splits())
