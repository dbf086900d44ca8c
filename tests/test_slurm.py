"""Cluster execution through the Snakemake profiles (workflow/profiles/{default,local,slurm}).

The profile tests dry-run the demo DAG and need no SLURM. The SLURM test runs part of a tiny demo
DAG (extraction shards, feature merging and one training job asking for a GPU) on a real SLURM
through ``snakemake --profile workflow/profiles/slurm`` and compares its outputs with a local run.
It needs ``sbatch`` and a running cluster (``ci/slurm/setup.sh`` starts a single-node one); it is
skipped without them, except under ``CI`` (set by CI), where it fails instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from avvp.core.feature_store import read_store

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
PROFILES = REPO / "workflow" / "profiles"
DATASET = "tiny"
TARGET = f"results/{DATASET}/models/baseline/seed1/model.pt"
ROLES = ("audio", "frame", "clip")
SHARDS = 2
# Hard limit (SIGKILL) for one Snakemake run: the SLURM plugin can hang, ignoring SIGTERM, when
# its status queries fail.
RUN_TIMEOUT_S = 600

# Tiny demo: 8 clips of 32 x 32 pixels in 2 shards, small random-weight backbones, one epoch.
TINY_CONFIG = yaml.safe_load((Path(__file__).parent / "tiny_demo.yaml").read_text())
assert TINY_CONFIG["dataset"] == DATASET and TINY_CONFIG["features"]["shards"] == SHARDS


# ---------------------------------------------------------------------------------------------
# helpers


def _start(workdir: Path, *args: str, workflow_profile: bool = False) -> subprocess.Popen:
    """Start ``snakemake`` on the repository's Snakefile in ``workdir`` with the tiny config
    (without the workflow profile unless ``workflow_profile``).

    It runs in a session of its own, so that :func:`_finish` can kill it with all its children.
    """
    cmd = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory",
        str(workdir), "--configfile", str(workdir / "config.yaml"),
        *([] if workflow_profile else ["--workflow-profile", "none"]), *args,
    ]
    return subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _finish(
    proc: subprocess.Popen, workdir: Path, deadline: float
) -> subprocess.CompletedProcess:
    """Wait for a run until ``deadline`` (time.monotonic()); then SIGKILL it, cancel its jobs,
    and fail the test."""
    try:
        stdout, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate()
        _cancel_jobs(workdir)
        pytest.fail(f"snakemake in {workdir} did not finish in time:\n{stdout[-6000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, "")


def _snakemake(
    workdir: Path, *args: str, timeout: float = RUN_TIMEOUT_S, workflow_profile: bool = False
) -> subprocess.CompletedProcess:
    """Run ``snakemake`` (see :func:`_start`), killed after ``timeout`` seconds."""
    return _finish(_start(workdir, *args, workflow_profile=workflow_profile), workdir,
                   time.monotonic() + timeout)


def _check(result: subprocess.CompletedProcess, workdir: Path) -> str:
    """The run's output; fails the test with the output and the rule logs when it failed."""
    if result.returncode != 0:
        logs = "".join(f"\n--- {p}\n{p.read_text(errors='replace')[-2000:]}"
                       for p in sorted(workdir.glob("**/logs/**/*.log")))
        pytest.fail(f"snakemake exited {result.returncode}:\n{result.stdout[-6000:]}{logs}")
    return result.stdout


def _tiny_workdir(path: Path) -> Path:
    """A working directory holding the tiny config (as config.yaml, which the Snakefile loads)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG, sort_keys=False))
    return path


def _dry_run_jobs(workdir: Path, *args: str, workflow_profile: bool = False) -> list[dict[str, str]]:
    """Dry-run the tiny demo DAG up to the model; one dict per job: rule, wildcards, resources."""
    stdout = _check(_snakemake(workdir, "--dry-run", "--forceall", *args, TARGET, timeout=120,
                               workflow_profile=workflow_profile), workdir)
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", stdout):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if head is None:
            continue
        job = {"rule": head.group(1)}
        for key in ("wildcards", "resources"):
            line = re.search(rf"^\s+{key}: (.*)$", block, re.M)
            job[key] = line.group(1).strip() if line else ""
        jobs.append(job)
    return jobs


def _resources(job: dict[str, str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in job["resources"].split(", ") if "=" in item)


def _wildcard(job: dict[str, str], name: str) -> str | None:
    match = re.search(rf"\b{name}=([^,]+)", job["wildcards"])
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------
# profiles (no SLURM needed)


@pytest.mark.parametrize("workflow_profile", [False, True], ids=["alone", "with-workflow-profile"])
def test_slurm_profile_resources(tmp_path: Path, workflow_profile: bool) -> None:
    """The slurm profile gives GPU rules a GPU, the others none, and every job memory and time;
    also with the workflow profile (workflow/profiles/default) that Snakemake loads by itself."""
    jobs = _dry_run_jobs(_tiny_workdir(tmp_path), "--profile", str(PROFILES / "slurm"),
                         workflow_profile=workflow_profile)
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job)
    assert {"extract", "merge_features", "train"} <= set(by_rule), sorted(by_rule)
    assert len(by_rule["extract"]) == SHARDS  # one job per shard extracts the three roles
    for job in by_rule["extract"]:
        res = _resources(job)
        assert res.get("gpu") == "1", job
        assert int(res["mem_mb"]) >= 4000 and int(res["runtime"]) >= 60, job
    train = _resources(by_rule["train"][0])
    assert train.get("gpu") == "1" and int(train["mem_mb"]) >= 8000, train
    for job in jobs:
        res = _resources(job)
        assert "mem_mb" in res and "runtime" in res, job
        if job["rule"] not in {"extract", "train", "refine", "parse"}:
            assert res.get("gpu", "0") == "0", job


def test_local_profile_caps_gpu_jobs(tmp_path: Path) -> None:
    """The local profile marks GPU jobs (for its `resources: gpu` cap) and still dry-runs."""
    jobs = _dry_run_jobs(_tiny_workdir(tmp_path), "--profile", str(PROFILES / "local"),
                         "--cores", "2", workflow_profile=True)
    profile = yaml.safe_load((PROFILES / "local" / "config.yaml").read_text())
    assert int(profile["resources"]["gpu"]) >= 1
    gpu = {(j["rule"], _wildcard(j, "role")): _resources(j).get("gpu", "0") for j in jobs}
    assert gpu[("train", None)] == "1"
    assert gpu[("extract", None)] == "1"


def test_plain_dry_run_without_profile(tmp_path: Path) -> None:
    """`snakemake -n` without any profile still plans the same jobs."""
    jobs = _dry_run_jobs(_tiny_workdir(tmp_path), "--cores", "2")
    assert sum(j["rule"] == "extract" for j in jobs) == SHARDS
    assert sum(j["rule"] == "train" for j in jobs) == 1


# ---------------------------------------------------------------------------------------------
# a real SLURM


def _slurm_problem() -> str | None:
    """Why SLURM cannot be used here, or None when sbatch works against a running cluster."""
    missing = [tool for tool in ("sbatch", "squeue", "sinfo", "scontrol") if not shutil.which(tool)]
    if missing:
        return f"SLURM client tools not found on PATH: {', '.join(missing)}"
    try:
        out = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True,
                             text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s (is slurmctld running?)"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.rstrip("*~#") in {"idle", "mix", "alloc"} for s in states):
        return f"no usable SLURM node (sinfo: {out.stdout.strip() or out.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def slurm() -> None:
    """Skip without a running SLURM; under CI (env CI set) fail instead: there it must run."""
    problem = _slurm_problem()
    if problem is None:
        return
    hint = "start a single-node SLURM with `sudo ci/slurm/setup.sh` (stop: ci/slurm/stop.sh)"
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; CI is set, so the SLURM test must run: {hint}")
    pytest.skip(f"{problem}; {hint}")


def _squeue_jobs(workdir: Path) -> list[dict[str, str]]:
    """The jobs SLURM still lists (any state) whose working directory is ``workdir``."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%k|%T|%C|%Z"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    jobs = []
    for line in out.splitlines():
        job_id, comment, state, cpus, job_dir = line.strip().split("|", 4)
        if Path(job_dir) == workdir:
            jobs.append({"id": job_id, "comment": comment.strip(), "state": state,
                         "cpus": int(cpus)})
    return jobs


def _cancel_jobs(workdir: Path) -> None:
    """Cancel the SLURM jobs a killed run left behind (best effort)."""
    try:
        ids = [j["id"] for j in _squeue_jobs(workdir) if j["state"] in {"PENDING", "RUNNING"}]
        if ids:
            subprocess.run(["scancel", *ids], timeout=30)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass


def _tres_per_job(job_id: str) -> str:
    out = subprocess.run(["scontrol", "--oneliner", "show", "job", job_id], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    match = re.search(r"\bTresPerJob=(\S*)", out)
    return match.group(1) if match else ""


def _copy_upstream(src: Path, dst: Path) -> None:
    """Copy the local run's data set (annotations, clips, manifest) keeping the file times."""
    skip = {"features", "models", "logs"}
    for item in src.iterdir():
        if item.name in skip:
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name, copy_function=shutil.copy2)
        else:
            shutil.copy2(item, dst / item.name)


def _assert_same_outputs(local: Path, cluster: Path) -> None:
    """Feature stores and the trained model of both runs agree."""
    for role in ROLES:
        ids_l, feats_l, attrs_l = read_store(local / "features" / f"{role}.h5")
        ids_c, feats_c, attrs_c = read_store(cluster / "features" / f"{role}.h5")
        assert list(ids_c) == list(ids_l), role
        assert feats_c.shape == feats_l.shape, role
        np.testing.assert_allclose(feats_c, feats_l, rtol=1e-5, atol=1e-6, err_msg=role)
        # The SLURM jobs run with more threads (the profile's set-threads), so the shards' floats
        # may differ in the last bits and with them the shards' hashes the merged store's
        # provenance records; everything else the stores say of themselves agrees.
        prov_l = json.loads(attrs_l.pop("provenance"))
        prov_c = json.loads(attrs_c.pop("provenance"))
        assert attrs_c == attrs_l, role
        assert prov_c.pop("inputs").keys() == prov_l.pop("inputs").keys(), role
        assert prov_c == prov_l, role
    model_l = torch.load(local / "models/baseline/seed1/model.pt", weights_only=True)
    model_c = torch.load(cluster / "models/baseline/seed1/model.pt", weights_only=True)
    assert model_c["classes"] == model_l["classes"]
    assert model_c["state_dict"].keys() == model_l["state_dict"].keys()
    for key, value in model_l["state_dict"].items():
        torch.testing.assert_close(model_c["state_dict"][key], value, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.slurm
@pytest.mark.slow
def test_demo_dag_on_slurm_matches_local_run(tmp_path: Path, slurm: None) -> None:
    """Extraction shards, merging and a GPU training job run through sbatch; outputs match.

    The demo data (plan, clips, manifest) is made once locally and copied; then the same
    extraction-to-training part runs locally and, at the same time, on SLURM.
    """
    local = _tiny_workdir(tmp_path / "local")
    _check(_snakemake(local, "--cores", "2", f"results/{DATASET}/manifest.parquet"), local)
    cluster = _tiny_workdir(tmp_path / "slurm")
    (cluster / "results" / DATASET).mkdir(parents=True)
    _copy_upstream(local / "results" / DATASET, cluster / "results" / DATASET)

    deadline = time.monotonic() + RUN_TIMEOUT_S
    on_slurm = _start(cluster, "--profile", str(PROFILES / "slurm"), "--jobs", "10",
                      "--latency-wait", "10", "--slurm-init-seconds-before-status-checks", "2",
                      TARGET)
    on_local = _start(local, "--cores", "2", TARGET)
    _check(_finish(on_local, local, deadline), local)
    _check(_finish(on_slurm, cluster, deadline), cluster)

    jobs = _squeue_jobs(cluster)
    comments = sorted(j["comment"] for j in jobs)
    expected = sorted([f"rule_extract_wildcards_{shard}" for shard in range(SHARDS)]
                      + ["rule_merge_features_wildcards_" + role for role in ROLES]
                      + ["rule_pool_frames", "rule_train_wildcards_baseline_1"])
    assert comments == expected, f"jobs submitted through sbatch: {jobs}"
    assert all(j["state"] == "COMPLETED" for j in jobs), jobs
    by_comment = {j["comment"]: j["id"] for j in jobs}
    profile = yaml.safe_load((PROFILES / "slurm" / "config.yaml").read_text())
    for job in jobs:  # the profile's set-threads became --cpus-per-task
        rule = job["comment"].split("_wildcards_")[0].removeprefix("rule_")
        assert job["cpus"] == profile["set-threads"].get(rule, 1), job
    assert "gpu:1" in _tres_per_job(by_comment["rule_train_wildcards_baseline_1"])
    assert "gpu:1" in _tres_per_job(by_comment["rule_extract_wildcards_0"])

    if not torch.cuda.is_available():  # CI's GPUs are placeholders: GPU jobs fell back to the CPU
        logs = cluster / "results" / DATASET / "logs"
        for log in (logs / "train/baseline/seed1.log", logs / "features/extract_0.log"):
            assert "running on the CPU instead" in log.read_text(), log.read_text()

    _assert_same_outputs(local / "results" / DATASET, cluster / "results" / DATASET)
