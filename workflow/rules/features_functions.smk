# Helpers of the features stage (see features.smk).


FEATURE_ROLES = ["audio", "frame", "clip"]
# VALOR's teacher roles to extract (features.teachers, docs/teachers.md; none by default)
TEACHER_ROLES = list(config.get("features", {}).get("teachers") or [])


if "clip_lists" not in globals():

    def clip_lists():
        """The demo's per-shard clip lists (defined by synth.smk; none for other data sets)."""
        return []


def feature_config(key, default=None):
    """One key of the features config section."""
    return config.get("features", {}).get(key, default)


def feature_shards(wildcards):
    """The shard stores of one role, in shard order."""
    return [
        out(f"features/shards/{wildcards.role}/{i}.h5")
        for i in range(feature_config("shards", 1))
    ]
