"""The workflow's extraction: one job per shard for the three roles, and after a change of one
role's settings only that role is computed again (the job's outputs are Snakemake ``update()``
outputs; a role store made from the same clips with the same settings and weights is kept)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avvp.core.feature_store import read_attrs

REPO = Path(__file__).resolve().parents[1]
ROLES = ("audio", "frame", "clip")
CONFIG = {
    "dataset": "tiny",
    "results": "results",
    "data": {"source": "synth"},
    "synth": {"seed": 0, "shards": 1, "n_train": 2, "n_val": 1, "n_test": 1, "n_classes": 8, "width": 32,
              "height": 32, "fps": 8, "sample_rate": 16000, "duration": 10, "events_per_video": [1, 2],
              "clutter": 0},
    "features": {"shards": 2, "threads": 1, "engine": "eager", "batch_size": 64,
                 "audio": {"extractor": "vggish", "weights": "none", "seed": 0},
                 "frame": {"extractor": "resnet152", "backbone": "resnet18", "weights": "none", "seed": 0,
                           "size": 16, "crop": 16},
                 "clip": {"extractor": "r2plus1d_18", "weights": "none", "seed": 0, "size": 16}},
}
TARGETS = [f"results/tiny/features/{role}.h5" for role in ROLES]


def _snakemake(workdir: Path, config: dict) -> str:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(workdir / "config.yaml"), "--workflow-profile", "none",
                           "--cores", "2", *TARGETS], cwd=workdir, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        logs = "".join(f"\n--- {p}\n{p.read_text()[-1500:]}" for p in sorted(workdir.glob("**/logs/**/*.log")))
        pytest.fail(f"snakemake failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}{logs}")
    return proc.stdout + proc.stderr


def test_changing_one_role_recomputes_that_role_alone(tmp_path):
    first = _snakemake(tmp_path, CONFIG)
    assert first.count("rule extract:") == 2  # one job per shard, all three roles
    shards = {role: [tmp_path / f"results/tiny/features/shards/{role}/{i}.h5" for i in range(2)] for role in ROLES}
    before = {role: [p.read_bytes() for p in paths] for role, paths in shards.items()}

    changed = {**CONFIG, "features": {**CONFIG["features"], "frame": {**CONFIG["features"]["frame"], "seed": 5}}}
    second = _snakemake(tmp_path, changed)
    assert second.count("rule extract:") == 2
    for role in ("audio", "clip"):
        assert [p.read_bytes() for p in shards[role]] == before[role], role  # kept as they were
    assert all(p.read_bytes() != old for p, old in zip(shards["frame"], before["frame"]))
    assert read_attrs(tmp_path / "results/tiny/features/frame.h5")["weights"] == "random:5"
    log = (tmp_path / "results/tiny/logs/features/extract_0.log").read_text()
    assert "audio shard 0 of 2" in log and "kept (same clips, settings and weights)" in log

    third = _snakemake(tmp_path, changed)
    assert "rule extract:" not in third  # the kept stores count as current: nothing to redo
