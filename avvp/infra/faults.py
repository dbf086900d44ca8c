"""Fault injection for tests: a real ``kill -9``, a SIGINT or a full disk at a chosen point.

With the environment variable ``AVVP_KILL_AT=<point>:<n>`` set, the process sends itself SIGKILL
the n-th time it passes ``point`` (no cleanup, no ``finally``, exactly as ``kill -9``). With
``AVVP_FAULT=<kind>:<point>:<n>`` the fault is of ``kind``:

* ``kill``: SIGKILL (as ``AVVP_KILL_AT``);
* ``sigint``: SIGINT (Ctrl-C: Python raises KeyboardInterrupt where the process is);
* ``enospc``: an ``OSError(ENOSPC)`` ("No space left on device") raised at the point, and from
  then on the disk counts as full for :func:`disk_full` (so errors of libraries that hide the
  errno, such as torch.save's, are recognised as a full disk).

The points:

* ``write``: every atomic output (:func:`avvp.infra.atomic.atomic_path`) when its temporary file is
  complete and not yet renamed into place; ``write@<file name>`` counts only that file's writes;
* ``import``: after each video ``avvp import-features`` has written;
* ``train``: after each optimizer step of ``avvp train``.

The tests set it in the environment of one run, then rerun without it, and compare the results
with those of an uninterrupted run (a deterministic point instead of a racing external kill).
Unset, :func:`passed` costs one dictionary lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

ENV = "AVVP_KILL_AT"
FAULT_ENV = "AVVP_FAULT"
KINDS = ("kill", "sigint", "enospc")
_passes: dict[str, int] = {}
_full = False


def _spec() -> tuple[str, str, int] | None:
    fault = os.environ.get(FAULT_ENV)
    if fault:
        kind, _, rest = fault.partition(":")
        point, _, count = rest.rpartition(":") if rest.count(":") else (rest, "", "1")
        if kind not in KINDS:
            raise ValueError(f"{FAULT_ENV}={fault!r}: the kind must be one of {', '.join(KINDS)}")
        return kind, point, int(count or 1)
    spec = os.environ.get(ENV)
    if spec:
        point, _, count = spec.partition(":")
        return "kill", point, int(count or 1)
    return None


def passed(point: str, target: str | Path | None = None) -> None:
    """Count one pass of ``point`` (writing ``target``); inject the fault on the pass asked for."""
    if not (os.environ.get(ENV) or os.environ.get(FAULT_ENV)):
        return
    kind, wanted, count = _spec()
    name, _, file_name = wanted.partition("@")
    if name != point or (file_name and (target is None or Path(target).name != file_name)):
        return
    _passes[wanted] = _passes.get(wanted, 0) + 1
    if _passes[wanted] != count:
        return
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "sigint":
        signal.raise_signal(signal.SIGINT)
    else:
        global _full
        _full = True
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target or point))


def disk_full() -> bool:
    """True after an injected ``enospc`` fault (the disk stays full for this process)."""
    return _full


def reset() -> None:
    """Forget passes and an injected full disk (for a test that runs several commands in one
    process)."""
    global _full
    _passes.clear()
    _full = False


def step_hook(point: str):
    """A training hook (``hook(event, epoch, step)``, :func:`avvp.stages.train.train_model`) that passes
    ``point`` after every optimizer step, or None when no fault is asked for."""
    if not (os.environ.get(ENV) or os.environ.get(FAULT_ENV)):
        return None

    def hook(event: str, epoch: int, step: int) -> None:
        if event == "batch":
            passed(point)

    return hook
