"""avvp.infra.stale_lock: a Snakemake lock is removed only when the run that took it and its jobs are gone.

(The whole story, kill -9 of the real snakemake and the plain rerun, is tests/test_resume_workflow.py.)
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from avvp.infra.stale_lock import RECORDS, STATE, TESTED_SNAKEMAKE, clear_stale, held_lock_files, record_owner


def _locks(workdir: Path) -> list[Path]:
    folder = workdir / STATE / "locks"
    folder.mkdir(parents=True)
    paths = [folder / "0.input.lock", folder / "0.output.lock"]
    for p in paths:
        p.write_text("results/x\n")
    return paths


def _dead_process() -> tuple[int, float]:
    """(pid, start time) of a process that has ended."""
    proc = psutil.Popen([sys.executable, "-c", "pass"])
    started = proc.create_time()
    proc.wait()
    return proc.pid, started


def _record(workdir: Path, locks: list[Path], pid: int, started: float, pgid: int,
            host: str | None = None) -> Path:
    path = workdir / STATE / RECORDS / f"{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "host": host or socket.gethostname(), "pid": pid, "started": started, "pgid": pgid,
        "locks": {str(p.resolve()): p.stat().st_mtime_ns for p in locks}}))
    return path


def test_lock_of_a_dead_run_is_removed(tmp_path):
    locks = _locks(tmp_path)
    pid, started = _dead_process()
    record = _record(tmp_path, locks, pid, started, pgid=pid)
    messages = clear_stale(tmp_path)
    assert messages == [f"removed the lock left by a killed Snakemake run (pid {pid}); resuming"]
    assert not any(p.exists() for p in locks) and not record.exists()


def test_lock_of_a_live_run_is_kept(tmp_path):
    locks = _locks(tmp_path)
    record = record_owner(locks, tmp_path)  # this very process holds it
    assert record is not None and json.loads(record.read_text())["pid"] == os.getpid()
    assert clear_stale(tmp_path) == []
    assert all(p.exists() for p in locks) and record.exists()


def test_lock_of_another_host_or_rewritten_or_unrecorded_is_kept(tmp_path):
    locks = _locks(tmp_path)
    assert clear_stale(tmp_path) == []  # nobody recorded it
    pid, started = _dead_process()
    _record(tmp_path, locks, pid, started, pgid=pid, host="another-host")
    assert clear_stale(tmp_path) == [] and all(p.exists() for p in locks)
    record = _record(tmp_path, locks, pid, started, pgid=pid)
    os.utime(locks[0], ns=(0, locks[0].stat().st_mtime_ns + 10**9))  # a new run took the lock
    messages = clear_stale(tmp_path)
    assert messages == [f"removed the lock left by a killed Snakemake run (pid {pid}); resuming"]
    assert locks[0].exists() and not locks[1].exists() and not record.exists()


def test_lock_is_kept_while_jobs_of_the_killed_run_still_run(tmp_path):
    locks = _locks(tmp_path)
    pid, started = _dead_process()
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                           start_new_session=True)  # a job left running by a killed Snakemake
    try:
        _record(tmp_path, locks, pid, started, pgid=job.pid)
        [message] = clear_stale(tmp_path)
        assert f"its jobs still run (pids {job.pid})" in message
        assert all(p.exists() for p in locks)
    finally:
        job.kill()
        job.wait()
    assert clear_stale(tmp_path)[0].startswith("removed the lock")


def test_no_record_without_a_lock(tmp_path):
    assert record_owner([], tmp_path) is None
    assert record_owner([tmp_path / "absent.lock"], tmp_path) is None
    assert not (tmp_path / STATE).exists()


@pytest.mark.parametrize("text", ["", "{}", "[1]", '{"pid": "x", "locks": {}}'])
def test_unreadable_records_are_left_alone(tmp_path, text):
    locks = _locks(tmp_path)
    bad = tmp_path / STATE / RECORDS / "1.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(text)
    assert clear_stale(tmp_path) == []
    assert all(p.exists() for p in locks) and bad.exists()


# ------------------------------------------- the one private access: workflow.persistence._lockfile

def test_held_lock_files_on_the_installed_snakemake(tmp_path):
    """A real Snakemake run: held_lock_files(workflow) in onstart names the lock files it holds.

    Fails loudly (RuntimeError, or no lock files) when a Snakemake release changes the private
    attribute; then adapt avvp.infra.stale_lock.held_lock_files and the pin in pyproject.toml.
    """
    (tmp_path / "Snakefile").write_text(
        "import json, os\n"
        "from avvp.infra.stale_lock import held_lock_files\n\n"
        "onstart:\n"
        "    files = held_lock_files(workflow)\n"
        "    with open('held.json', 'w') as f:\n"
        "        json.dump({'files': files, 'exist': [os.path.exists(x) for x in files]}, f)\n\n"
        "rule a:\n"
        "    output: 'a.txt'\n"
        "    shell: 'echo done > {output}'\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    held = json.loads((tmp_path / "held.json").read_text())
    assert held["files"], "Snakemake held no lock files it could name"
    assert all(held["exist"])
    assert all(Path(f).parent.name == "locks" and f.endswith(".lock") for f in held["files"])


@pytest.mark.parametrize("persistence", [None, SimpleNamespace(), SimpleNamespace(_lockfile=["0.input.lock"]),
                                         SimpleNamespace(_lockfile={"input": 3})])
def test_held_lock_files_fails_loudly_when_the_attribute_changes(persistence):
    with pytest.raises(RuntimeError, match=r"workflow\.persistence\._lockfile.*Snakemake"):
        held_lock_files(SimpleNamespace(persistence=persistence))


def test_held_lock_files_of_a_run_without_lock():
    assert held_lock_files(SimpleNamespace(persistence=SimpleNamespace(_lockfile={}))) == []


def test_snakemake_is_pinned_to_the_tested_series():
    import snakemake

    root = Path(__file__).resolve().parents[1]
    major, minor = (int(x) for x in TESTED_SNAKEMAKE.split("."))
    pin = f'"snakemake>={TESTED_SNAKEMAKE},<{major}.{minor + 1}"'
    assert pin in (root / "pyproject.toml").read_text()
    assert snakemake.__version__.startswith(f"{TESTED_SNAKEMAKE}."), (
        f"installed Snakemake {snakemake.__version__}; avvp.infra.stale_lock is tested with {TESTED_SNAKEMAKE}.x")
    pinned = re.search(r"^snakemake==(\S+)$", (root / "envs" / "pinned.txt").read_text(), re.M)
    assert pinned and pinned[1].startswith(f"{TESTED_SNAKEMAKE}.")
