"""The CI-sized twin of the full-size LLP rehearsal (docs/llp/rehearsal.md): a stand-in
release of a few hundred real LLP videos through the real Snakemake DAG of config/llp_features.yaml
(import, pooled frames, train every Table 1 and Table 2 variant, refine, retrain, evaluate on the
real test annotations, tables); then a kill -9 of the import and of a training job, and a rerun
that must give exactly the uninterrupted run's results."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avvp.infra.faults import ENV as KILL_AT
from avvp.stages.rehearsal import workflow_config, write_release
from avvp.settings import merge_settings

REPO = Path(__file__).resolve().parents[1]
VIDEOS = 300        # 254 train, 16 val, 30 test
EPOCHS = 6          # the han variant: 20 (its 40 shortened in proportion)
JOMOLD_EPOCHS = 2   # the denoising table's variants: drops start in epoch 2 (the coded warm-up)
#: Four times the full release's signal: 254 training videos learn it in 6 epochs.
SIGNAL = {"audio": 8.0, "frame": 4.0, "clip": 8.0}
#: "Far above all-zero predictions": this many F1 points more in every segment-level stream.
MARGIN = 0.10
VARIANTS = ("han", "baseline", "baseline_c", "baseline_r", "ma")
pytestmark = pytest.mark.slow     # about 2 minutes on 2 cores: the whole DAG, then the killed runs


def _snakemake(folder: Path, *targets: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(folder), "--configfile",
         "config.yaml", "--cores", "2", *(targets or ["all"]), "--quiet"],
        capture_output=True, text=True, cwd=folder, timeout=600, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def twin(llp_dir, tmp_path_factory):
    if shutil.which("snakemake") is None:
        pytest.skip("snakemake is not on PATH")
    root = tmp_path_factory.mktemp("twin")
    release = root / "release"
    write_release(llp_dir, release, {"videos": VIDEOS, "seed": 0, "signal": SIGNAL}, progress=False)
    base = yaml.safe_load((REPO / "config" / "llp_features.yaml").read_text())
    folders = {}
    for name in ("whole", "killed"):
        folder = root / name
        folder.mkdir()
        overrides = workflow_config(release, folder / "results", "twin", EPOCHS, seeds=[1])
        config = merge_settings(base, overrides, strict=False)
        for variant, recipe in config["recipes"].items():   # the twin checks that JoMoLD's rules run
            if variant.startswith("jomold"):              # and are reported, not what they learn
                recipe["train"]["epochs"] = JOMOLD_EPOCHS
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        folders[name] = folder / "results" / "twin"
    done = _snakemake(root / "whole")
    assert done.returncode == 0, done.stderr[-3000:]
    return root, folders, release


def _all_zeros(annotations: Path) -> dict:
    """Segment-level scores of all-zero predictions on the release's test videos."""
    from avvp.core.annotations import read_llp
    from avvp.core.metrics import evaluate_arrays

    ann = read_llp(annotations, version="pre2024")
    ids = ann.split("test")["video_id"].tolist()
    n, c = len(ids), len(ann.classes)
    zeros = np.zeros((n, c), np.float32)
    result = evaluate_arrays(zeros, zeros, zeros, np.zeros((n, 10, 2, c), np.float32),
                             ann.dense("audio", ids), ann.dense("visual", ids), gate="ma")
    return result.overall


def _metrics(results: Path, variant: str) -> dict:
    return json.loads((results / "eval" / variant / "seed1" / "test" / "metrics.json").read_text())


def test_the_planted_signal_is_learnt_by_every_variant(twin):
    _, folders, release = twin
    results = folders["whole"]
    zeros = _all_zeros(release / "annotations")
    for variant in VARIANTS:
        overall = _metrics(results, variant)["overall"]
        for stream in ("audio", "visual", "av"):
            key = f"segment_{stream}"
            assert overall[key] > zeros[key] + MARGIN, (variant, stream, overall[key], zeros[key])
    for table in ("table1", "table2"):
        assert (results / "tables" / f"{table}.md").read_text().count("|") > 20
    assert (results / "features" / "frame_pooled.h5").exists()
    for stage in ("import_features", "pool_frames", "train/ma/seed1", "evaluate/ma/seed1/test"):
        bench = pd.read_csv(results / "benchmarks" / f"{stage}.tsv", sep="\t")
        assert bench["s"].iloc[0] > 0


def test_refinement_is_scored_against_the_stand_in_truth(twin):
    """Refinement drops labels, and a dropped label is more often truly absent than a label
    drawn at random (both modalities pooled)."""
    _, folders, _ = twin
    for name in ("ma", "baseline_r"):
        q = pd.read_parquet(folders["whole"] / "refine" / name / "seed1" / "quality.parquet")
        pooled = q[q["class"] == "all"].sum(numeric_only=True)
        assert pooled["dropped"] > 0 and pooled["correct"] > 0, name
        assert pooled["correct"] / pooled["dropped"] > pooled["absent"] / pooled["labels"], (name, pooled)


def test_kill_9_of_import_and_training_then_rerun_equals_the_whole_run(twin):
    from avvp.core.checkpoint import load_torch
    from avvp.core.feature_store import read_store

    root, folders, _ = twin
    whole, killed = folders["whole"], folders["killed"]
    target = str(killed / "eval" / "baseline" / "seed1" / "test" / "metrics.json")
    run = _snakemake(root / "killed", target, env={KILL_AT: "import:100"})
    assert run.returncode == 1 and _killed(run, "avvp import-features"), run.stderr[-3000:]
    assert list((killed / "features").glob(".frame.h5.*.tmp.h5"))   # killed while writing
    assert not (killed / "features" / "frame.h5").exists()
    run = _snakemake(root / "killed", target, env={KILL_AT: "train:20"})   # 16 steps an epoch
    assert run.returncode == 1 and _killed(run, "avvp train"), run.stderr[-3000:]
    assert not list((killed / "features").glob(".*.tmp.h5"))       # the rerun removed them
    checkpoint = killed / "models" / "baseline" / "seed1" / "checkpoints" / "last.pt"
    assert load_torch(checkpoint)["epoch"] == 1 and not (checkpoint.parent.parent / "model.pt").exists()
    run = _snakemake(root / "killed", target)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resuming from" in (killed / "logs" / "train" / "baseline" / "seed1.log").read_text()

    for role in ("audio", "frame", "clip"):
        a, b = read_store(whole / "features" / f"{role}.h5"), read_store(killed / "features" / f"{role}.h5")
        assert a[0] == b[0] and np.array_equal(a[1], b[1])
    model_a = load_torch(whole / "models" / "baseline" / "seed1" / "model.pt")
    model_b = load_torch(killed / "models" / "baseline" / "seed1" / "model.pt")
    state_a, state_b = model_a["state_dict"], model_b["state_dict"]
    assert state_a.keys() == state_b.keys()
    assert all(torch_equal(state_a[k], state_b[k]) for k in state_a)
    metrics_a, metrics_b = _metrics(whole, "baseline"), _metrics(killed, "baseline")
    for key in ("overall", "per_class", "per_video"):
        assert metrics_a[key] == metrics_b[key]


def _killed(run: subprocess.CompletedProcess, command: str) -> bool:
    """Snakemake reports the job running ``command`` as killed by SIGKILL (exit status 137)."""
    return any(command in line and "Killed" in line for line in run.stderr.splitlines()) \
        and "non-zero exit status 137" in run.stderr


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_the_rehearsal_report(twin, tmp_path):
    """bench/llp_rehearsal.py's report of a finished run: stages, projection, scores, refinement."""
    import sys

    _, folders, release = twin
    report = tmp_path / "report.md"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "llp_rehearsal.py"), "--report-only",
                           "--results", str(folders["whole"]), "--release", str(release),
                           "--epochs", str(EPOCHS), "--report", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    results = folders["whole"]
    trained = sorted(p.parts[-3] for p in results.glob("models/*/seed1/model.pt"))
    assert set(VARIANTS) <= set(trained), trained        # and the denoising table's variants
    evaluated = len(list(results.glob("eval/*/seed1/test/metrics.json")))
    counts = (("import_features", 1), ("pool_frames", 1), ("train", len(trained)),
              ("refine", len(list(results.glob("refine/*/seed1/labels.parquet")))),
              ("predict", evaluated), ("evaluate", evaluated),
              ("table", len(list(results.glob("tables/*.md")))))
    for stage, jobs in counts:
        row = next(line for line in text.splitlines() if line.startswith(f"| {stage}:"))
        assert row.split("|")[2].strip() == str(jobs) and " MB |" in row, row
    assert "Projected with 12 epochs per run and 40 for han" in text
    for variant in VARIANTS:
        assert f"| {variant} | seed1 |" in text
    assert text.count("| seed1 | audio |") == 2 and text.count("| seed1 | visual |") == 2
