"""The results layout: every file a data set's results folder ``<results>/<dataset>/`` holds.

Each name below is a path *pattern* relative to that folder, with ``{wildcard}`` placeholders
(``{variant}``, ``{seed}``, ``{split}``, ``{name}``, ``{role}``, ``{shard}``, ``{table}``,
``{modality}``). The Snakemake rules use the patterns as they are (their placeholders are the
rules' wildcards, :meth:`avvp.workflow.Workflow.out` puts the results folder in front); the
library fills them in with :func:`fill` (e.g. :func:`avvp.experiments.model_path`). This module
imports nothing, so building the workflow's DAG stays light.
"""

from __future__ import annotations

import re

# ------------------------------------------------------------------ annotations and manifest
#: The demo's (or a fetched) LLP-format annotation folder.
ANNOTATIONS = "annotations"
#: The annotation file whose presence marks a complete annotation folder.
ANNOTATIONS_TRAIN = "annotations/AVVP_train.csv"
#: The demo's plan and its list of every video (`avvp synth plan`).
SYNTH_PLAN = "annotations/synth_plan.json"
ANNOTATIONS_FULL = "annotations/AVVP_dataset_full.csv"
MANIFEST = "manifest.parquet"
#: Dense event tables written beside the manifest, by name.
DENSE = {
    "audio": "dense_audio.parquet",
    "visual": "dense_visual.parquet",
    "train_audio": "dense_train_audio.parquet",
    "train_visual": "dense_train_visual.parquet",
}

# ------------------------------------------------------------------------------- clips
CLIPS = "clips"
#: The demo's list of rendered clips of one shard.
CLIP_SHARD = "clips/shard_{shard}.parquet"
#: The table of downloaded LLP videos (`avvp download`).
DOWNLOADS = "clips/downloads.parquet"

# ---------------------------------------------------------------------------- features
#: The merged store of one feature role.
FEATURE_STORE = "features/{role}.h5"
#: The frame store averaged to one row per segment (`avvp pool-frames`).
POOLED_FRAMES = "features/frame_pooled.h5"
FEATURE_SHARD = "features/shards/{role}/{shard}.h5"
FEATURE_FAILURES = "features/failures/{role}_{shard}.parquet"
IMPORT_FAILURES = "features/failures/import.parquet"

# ---------------------------------------------------------------------- models (training)
MODEL = "models/{variant}/seed{seed}/model.pt"
HISTORY = "models/{variant}/seed{seed}/history.parquet"
CURVE = "models/{variant}/seed{seed}/curve.png"
#: The labels a dynamic (JoMoLD) variant dropped while training.
DROPS = "models/{variant}/seed{seed}/drops.parquet"
PREDICTIONS = "predictions/{variant}/seed{seed}/{split}.npz"

# ----------------------------------------------------------------------- label refinement
REFINED_LABELS = "refine/{name}/seed{seed}/labels.parquet"
REFINED_PKL = "refine/{name}/seed{seed}/need_to_change.pkl"
REFINE_QUALITY = "refine/{name}/seed{seed}/quality.parquet"
REFINE_QUALITY_MD = "refine/{name}/seed{seed}/quality.md"
REFINE_QUALITY_PNG = "refine/{name}/seed{seed}/quality.png"

# ----------------------------------------------------------------------- label denoising
RATIOS = "ratios/{name}/seed{seed}/ratios.parquet"
RATIOS_NPZ = "ratios/{name}/seed{seed}/noise_ratios.npz"
RATIO_QUALITY = "ratios/{name}/seed{seed}/quality.parquet"
RATIO_QUALITY_MD = "ratios/{name}/seed{seed}/quality.md"
RATIO_QUALITY_PNG = "ratios/{name}/seed{seed}/quality.png"
DROP_QUALITY = "denoise/{variant}/seed{seed}/quality.parquet"
DROP_QUALITY_EPOCHS = "denoise/{variant}/seed{seed}/quality_epochs.parquet"
DROP_COUNTS = "denoise/{variant}/seed{seed}/drop_counts.parquet"
DROP_QUALITY_MD = "denoise/{variant}/seed{seed}/quality.md"
DROP_QUALITY_PNG = "denoise/{variant}/seed{seed}/quality.png"

# ---------------------------------------------------------------------------- evaluation
#: The folder of one evaluation; its files are :data:`EVALUATION`.
EVAL_DIR = "eval/{variant}/seed{seed}/{split}"
EVALUATION = {
    "metrics": f"{EVAL_DIR}/metrics.json",
    "metrics_parquet": f"{EVAL_DIR}/metrics.parquet",
    "per_class": f"{EVAL_DIR}/per_class.parquet",
    "per_video": f"{EVAL_DIR}/per_video.parquet",
    "table_md": f"{EVAL_DIR}/table.md",
    "table_csv": f"{EVAL_DIR}/table.csv",
    "per_class_png": f"{EVAL_DIR}/per_class.png",
    "timeline": f"{EVAL_DIR}/timeline.png",
}
METRICS = EVALUATION["metrics"]

# -------------------------------------------------------------------------------- tables
#: One file of a table (``ext``: md, csv or png).
TABLE = "tables/{table}.{ext}"
TABLE_EXTENSIONS = ("md", "csv", "png")

# ------------------------------------------------------------------------ pseudo labels
#: The teachers' segment-level pseudo labels of one modality.
PSEUDO_LABELS = "pseudo/{modality}.parquet"
PSEUDO_RELEASE_FAILURES = "pseudo/failures/release.parquet"
PSEUDO_SCORE_METRICS = "eval/pseudo/{split}/metrics.json"
PSEUDO_SCORE_TABLE = "eval/pseudo/{split}/table.md"
PSEUDO_SCORE_PNG = "eval/pseudo/{split}/per_class.png"
#: The demo's stand-in teachers: their synthetic pool and the teachers trained on it.
POOL = "teachers/pool"
POOL_ANNOTATIONS_TRAIN = "teachers/pool/annotations/AVVP_train.csv"
POOL_PLAN = "teachers/pool/annotations/synth_plan.json"
POOL_CLIP_SHARD = "teachers/pool/clips/shard_{shard}.parquet"
POOL_MANIFEST = "teachers/pool/manifest.parquet"
POOL_FEATURE_STORE = "teachers/pool/features/{role}.h5"
STANDIN_MODEL = "teachers/standin/{modality}.pt"
STANDIN_SCORES = "teachers/standin/{modality}_scores.h5"

# ---------------------------------------------------------------------------- parse
#: The summary table of `avvp parse` (``{out}``: config parse.out).
PARSE_SUMMARY = "{out}/summary.csv"

# ----------------------------------------------------------------- logs and benchmarks


def log(name: str) -> str:
    """The log file of a job (``name``: the stage and its wildcards, e.g. ``train/{variant}/seed{seed}``)."""
    return f"logs/{name}.log"


def benchmark(name: str) -> str:
    """The benchmark table of a job (Snakemake ``benchmark:``)."""
    return f"benchmarks/{name}.tsv"


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(pattern: str, **values: object) -> str:
    """``pattern`` with the given placeholders filled in; the others are left as they are.

    >>> fill(MODEL, variant="ma", seed=1)
    'models/ma/seed1/model.pt'
    >>> fill(FEATURE_SHARD, role="audio")
    'features/shards/audio/{shard}.h5'
    """
    return _PLACEHOLDER.sub(lambda m: str(values[m[1]]) if m[1] in values else m[0], pattern)


def placeholders(pattern: str) -> list[str]:
    """The placeholder names of ``pattern``, in order."""
    return _PLACEHOLDER.findall(pattern)
