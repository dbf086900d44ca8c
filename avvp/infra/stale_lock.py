"""Snakemake's lock after a killed run: recorded when it is taken, removed when its run is gone.

While it runs, Snakemake locks its working directory (``.snakemake/locks/<n>.input.lock`` and
``<n>.output.lock``) and removes the lock when it ends. ``kill -9`` of Snakemake, a crash or a
power cut leaves the lock behind, and every later run stops with ``LockException`` until someone
types ``snakemake --unlock``. Snakemake does not record who holds a lock, so the workflow does:

* :func:`record_owner` (the workflow's ``onstart``, i.e. once this run holds its lock, given
  :func:`held_lock_files`) writes
  ``.snakemake/avvp_locks/<pid>.json``: the host, the process id, its start time, its process
  group and the lock files this run wrote, each with its modification time;
* :func:`clear_stale` (when the workflow loads) removes a lock file only when its recorded owner
  ran on this host, is gone (no process with that id and start time), and none of that run's jobs
  (processes of its process group) still runs. Any other lock (a live run, a run on another host,
  a lock nobody recorded, one rewritten since) is left for Snakemake to report.

So after a crash the same command resumes; ``snakemake --unlock`` stays the way out when the lock
belongs to a run on another host or was taken by a Snakemake run that did not record it.

Snakemake 9 offers no supported way for a plain rerun to get past a killed run's lock (``--unlock``
and ``--nolock`` are flags, and ``--nolock`` also drops the protection against two live runs), nor
a public name for the lock files a run holds. :func:`held_lock_files` is the one place that reads
Snakemake's private state (``workflow.persistence._lockfile``); it fails loudly when a Snakemake
release changes it, and tests/test_stale_lock.py checks it on the installed Snakemake, whose
version pyproject.toml pins to the tested minor series.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Iterable

from avvp.infra.atomic import write_json

#: Snakemake's state folder (in its working directory) and avvp's lock records inside it.
STATE = ".snakemake"
RECORDS = "avvp_locks"


#: The Snakemake minor series :func:`held_lock_files` is tested with (pyproject.toml pins it).
TESTED_SNAKEMAKE = "9.27"


def held_lock_files(workflow) -> list[str]:
    """The lock files the running Snakemake ``workflow`` holds (none with ``--nolock``).

    Reads the private ``workflow.persistence._lockfile`` (lock type -> file) of Snakemake's file
    persistence backend: the only private access of avvp (see the module doc).

    Raises:
        RuntimeError: Snakemake's persistence object has no such attribute, or it is not a mapping
            of lock files (another Snakemake release, or the database persistence backend); the
            message says what to do.
    """
    persistence = getattr(workflow, "persistence", None)
    locks = getattr(persistence, "_lockfile", None)
    if not isinstance(locks, dict) or not all(isinstance(f, (str, os.PathLike)) for f in locks.values()):
        try:
            import snakemake
            version = snakemake.__version__
        except (ImportError, AttributeError):
            version = "unknown"
        raise RuntimeError(
            f"avvp: cannot read the lock files of this Snakemake run: workflow.persistence._lockfile "
            f"is {type(locks).__name__}, not a dict of lock type -> file (persistence "
            f"{type(persistence).__name__}, Snakemake {version}; avvp is tested with the file "
            f"persistence backend of Snakemake {TESTED_SNAKEMAKE}.x). avvp's removal of a killed run's "
            f"stale lock (avvp/infra/stale_lock.py) needs it: install the pinned Snakemake "
            f"(pyproject.toml: snakemake>={TESTED_SNAKEMAKE}, next minor excluded), or adapt held_lock_files to this release")
    return [os.fspath(f) for f in locks.values()]


def record_owner(lock_files: Iterable[str | os.PathLike], workdir: str | Path = ".") -> Path | None:
    """Record that this process holds ``lock_files`` (call it once the lock is taken).

    Returns the record written, or None when the run holds no lock (``--nolock``).
    """
    import psutil

    locks = {}
    for f in lock_files:
        path = Path(f).resolve()
        if path.exists():
            locks[str(path)] = path.stat().st_mtime_ns
    if not locks:
        return None
    me = psutil.Process()
    record = {"host": socket.gethostname(), "pid": me.pid, "started": me.create_time(),
              "pgid": os.getpgrp(), "locks": locks}
    target = Path(workdir) / STATE / RECORDS / f"{me.pid}.json"
    write_json(target, record)
    return target


def clear_stale(workdir: str | Path = ".") -> list[str]:
    """Remove the lock files of dead runs (see the module doc); one message per decision taken."""
    folder = Path(workdir) / STATE / RECORDS
    if not folder.is_dir():
        return []
    messages = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            locks = {str(k): int(v) for k, v in record["locks"].items()}
            pid, started, pgid = int(record["pid"]), float(record["started"]), int(record["pgid"])
            host = str(record["host"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # unreadable: not ours to judge
        if host != socket.gethostname() or _alive(pid, started):
            continue
        held = {f: m for f, m in locks.items() if _mtime(f) == m}
        if held:
            jobs = _group_members(pgid)
            if jobs:
                messages.append(
                    f"the Snakemake run that locked this folder (pid {pid}) is gone, but its "
                    f"jobs still run (pids {', '.join(map(str, jobs))}); wait for them to end or "
                    f"stop them, then run the same command again")
                continue
            for f in held:
                Path(f).unlink(missing_ok=True)
            messages.append(f"removed the lock left by a killed Snakemake run (pid {pid}); "
                            f"resuming")
        path.unlink(missing_ok=True)
    return messages


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _alive(pid: int, started: float) -> bool:
    """Whether process ``pid`` is the one that started at ``started`` and has not ended."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - started) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # cannot tell: keep the lock


def _group_members(pgid: int) -> list[int]:
    """Living processes of process group ``pgid``, leaving out this process and its ancestors."""
    import psutil

    me = psutil.Process()
    mine = {me.pid} | {p.pid for p in me.parents()}
    members = []
    for proc in psutil.process_iter():
        try:
            if proc.pid not in mine and os.getpgid(proc.pid) == pgid \
                    and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return sorted(members)
