"""The README's plain rerun resumes after ``kill -9`` of the real ``snakemake`` process.

A tiny demo DAG (5 clips of 4 s at 32 x 32 pixels, one shard per role, 30 short epochs) is built
once without interruption. A second working directory (with the first one's clips) is then killed
with SIGKILL twice: during feature extraction and during training (Snakemake first, then the jobs
it had started, as a crash would). After each kill the same command runs again, with no flag and
no ``--unlock``; the last run ends the DAG. Feature stores, model weights and training history
must be bitwise equal to the uninterrupted run's. Then, as after an upgrade of avvp, the finished
run's resume state is made to look written by other code, and ``snakemake --forcerun train``
must set it aside and retrain from epoch 1 (to the same weights), not resume it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from avvp.core.feature_store import read_store

REPO = Path(__file__).resolve().parents[1]
DATASET = "tiny"
RESULTS = Path("results") / DATASET
MODEL_DIR = RESULTS / "models" / "baseline" / "seed1"
TARGET = str(MODEL_DIR / "model.pt")
ROLES = ("audio", "frame", "clip")
TIMEOUT_S = 300

# The tests' tiny demo (tests/tiny_demo.yaml), smaller still: 5 clips of 4 s, one shard per role,
# 30 short epochs. batch_size 4 divides every role's units per clip (4 audio examples, 32 frames,
# 4 clips), so a resumed shard runs exactly the batches of an uninterrupted one.
CONFIG = yaml.safe_load((Path(__file__).parent / "tiny_demo.yaml").read_text())
CONFIG["synth"].update(shards=1, duration=4, n_train=3, n_val=1, n_test=1)
CONFIG["features"].update(shards=1, device="cpu", batch_size=4, threads=1, checkpoint_every=1)
CONFIG["train"].update(epochs=30, batch_size=2, device="cpu")
assert CONFIG["dataset"] == DATASET


def _workdir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    return path


def _command(*flags: str) -> list[str]:
    """The README's command, aimed at one target; the Snakefile is the repository's."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
            "--cores", "2", *flags, TARGET]


def _start(workdir: Path, *flags: str) -> subprocess.Popen:
    # A session of its own: the kill takes Snakemake, then every job it started.
    return subprocess.Popen(_command(*flags), cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _run(workdir: Path, *flags: str) -> str:
    proc = _start(workdir, *flags)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"snakemake did not finish in {TIMEOUT_S} s:\n{out[-4000:]}")
    if proc.returncode != 0:
        logs = "".join(f"\n--- {p}\n{p.read_text(errors='replace')[-1500:]}"
                       for p in sorted(workdir.glob("results/**/logs/**/*.log")))
        pytest.fail(f"snakemake exited {proc.returncode}:\n{out[-5000:]}{logs}")
    return out


def _kill_when(workdir: Path, ready) -> str:
    """Start the command, SIGKILL Snakemake as soon as ``ready()`` holds, then its jobs."""
    proc = _start(workdir)
    deadline = time.monotonic() + TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"snakemake ended (exit {proc.returncode}) before the kill:\n"
                        f"{proc.communicate()[0][-4000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the moment to kill never came")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # the real snakemake process
    proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # and what it had started
    except ProcessLookupError:
        pass
    return proc.communicate()[0]


def _copy_demo_data(src: Path, dst: Path) -> None:
    """The uninterrupted run's annotations, clips and manifest, with their file times (to save
    rendering them again; Snakemake keeps outputs that are newer than their inputs)."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.is_dir() and item.name in ("annotations", "clips"):
            shutil.copytree(item, dst / item.name, copy_function=shutil.copy2)
        elif item.suffix == ".parquet":
            shutil.copy2(item, dst / item.name)


def _locks(workdir: Path) -> list[Path]:
    return sorted((workdir / ".snakemake" / "locks").glob("*.lock"))


def _assert_same(ref: Path, run: Path) -> None:
    for role in ROLES:
        ids_a, a, attrs_a = read_store(ref / RESULTS / "features" / f"{role}.h5")
        ids_b, b, attrs_b = read_store(run / RESULTS / "features" / f"{role}.h5")
        # provenance: the shard stores it checksums name their clips by absolute path, which
        # differ between the two working folders; the rest of the record must agree
        prov_a, prov_b = (json.loads(x.pop("provenance")) for x in (attrs_a, attrs_b))
        assert prov_a.pop("inputs").keys() == prov_b.pop("inputs").keys() and prov_a == prov_b, role
        assert ids_a == ids_b and attrs_a == attrs_b, role
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{role} features differ"
    model_a = torch.load(ref / TARGET, weights_only=True)
    model_b = torch.load(run / TARGET, weights_only=True)
    assert model_a["state_dict"].keys() == model_b["state_dict"].keys()
    for key, value in model_a["state_dict"].items():
        assert torch.equal(value, model_b["state_dict"][key]), key
    pd.testing.assert_frame_equal(
        pd.read_parquet(ref / MODEL_DIR / "history.parquet").drop(columns="seconds"),
        pd.read_parquet(run / MODEL_DIR / "history.parquet").drop(columns="seconds"))


def test_workflow_profile_is_loaded_without_flags(tmp_path: Path) -> None:
    """Plain `snakemake` in the repository loads workflow/profiles/default (rerun-incomplete)."""
    _workdir(tmp_path / "w")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--directory", str(tmp_path / "w"),
                           "-n", TARGET], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "Using workflow specific profile profiles/default" in proc.stderr
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert profile["rerun-incomplete"] is True
    assert (REPO / "profiles" / "default").resolve() == REPO / "workflow" / "profiles" / "default"


@pytest.mark.slow
def test_plain_rerun_resumes_after_kill9_of_snakemake(tmp_path: Path) -> None:
    ref = _workdir(tmp_path / "uninterrupted")
    _run(ref)

    run = _workdir(tmp_path / "killed")
    _copy_demo_data(ref / RESULTS, run / RESULTS)
    shards = [run / RESULTS / "features" / "shards" / role / "0.h5" for role in ROLES]

    # 1. kill -9 during extraction: a shard has partial results, not every shard is done.
    _kill_when(run, lambda: any(s.with_name("0.partial.h5").exists() for s in shards))
    resumable = [s.parent.name for s in shards if s.with_name("0.partial.h5").exists()]
    assert resumable and not all(s.exists() for s in shards)
    assert _locks(run), "Snakemake left no lock: the test does not test the stale lock"

    # 2. the same command resumes; kill -9 again during training (after its first epoch).
    checkpoint = run / MODEL_DIR / "checkpoints" / "last.pt"
    out = _kill_when(run, checkpoint.exists)
    assert "removed the lock left by a killed Snakemake run" in out
    assert not (run / TARGET).exists(), "training ended before the kill"
    # No declared output of the killed training job exists (progress is under checkpoints/).
    for name in ("model.pt", "history.parquet", "curve.png"):
        assert not (run / MODEL_DIR / name).exists(), name
    assert _locks(run)
    log = run / RESULTS / "logs" / "features" / "extract_0.log"  # one job for the three roles
    for role in resumable:  # the interrupted shards went on from their partial results
        assert f"{role} shard 0: resuming" in log.read_text(), role

    # 3. the same command again ends the DAG, with the results of the uninterrupted run.
    out = _run(run)
    assert "removed the lock left by a killed Snakemake run" in out
    assert not _locks(run)
    log = run / RESULTS / "logs" / "train" / "baseline" / "seed1.log"
    assert "resuming from" in log.read_text()  # training went on from checkpoints/last.pt
    _assert_same(ref, run)

    # 4. "--forcerun train" after an upgrade: the resume state came from other code.
    state = torch.load(checkpoint, weights_only=True)
    state["identity"]["code"] = "sha256:" + "0" * 64
    torch.save(state, checkpoint)
    _run(run, "--forcerun", "train")
    log = (run / RESULTS / "logs" / "train" / "baseline" / "seed1.log").read_text()
    assert "it was made by other code" in log and "after epoch" not in log
    assert (checkpoint.parent / "set-aside" / "1.pt").exists()
    _assert_same(ref, run)
    shutil.rmtree(tmp_path)  # clips and stores: do not keep them in pytest's tmp folders
