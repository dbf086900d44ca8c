"""Fault injection for tests: a real ``kill -9`` of a running job at a chosen point.

With the environment variable ``AVVP_KILL_AT=<point>:<n>`` set, the process sends itself SIGKILL
the n-th time it passes ``point`` (no cleanup, no ``finally``, exactly as ``kill -9``). The points:

* ``import``: after each video ``avvp import-features`` has written;
* ``train``: after each optimizer step of ``avvp train``.

The tests set it in the environment of one Snakemake run, then rerun without it, and compare the
results with those of an uninterrupted run (a deterministic point instead of a racing external
kill). Unset, :func:`passed` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "AVVP_KILL_AT"
_passes: dict[str, int] = {}


def passed(point: str) -> None:
    """Count one pass of ``point``; SIGKILL this process on the pass ``AVVP_KILL_AT`` names."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def step_hook(point: str):
    """A training hook (``hook(event, epoch, step)``, :func:`avvp.train.train_model`) that passes
    ``point`` after every optimizer step, or None when no fault is asked for."""
    if not os.environ.get(ENV):
        return None

    def hook(event: str, epoch: int, step: int) -> None:
        if event == "batch":
            passed(point)

    return hook
