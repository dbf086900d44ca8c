"""Batching model input units across videos, safely.

:class:`Batcher` takes each video's units (VGGish examples, frames, 8-frame clips) in order and
runs them through the model ``batch_size`` units at a time, joining videos into one batch, and
hands back each video's rows once all its units have been through. Two rules keep one odd video
from stopping a shard:

* a batch only ever joins units of **one shape**: a video whose units differ in shape from the
  ones waiting (frames of another aspect ratio with ``crop: null``) first sends those on their
  own;
* a forward pass that fails is retried **video by video**; a video whose own pass fails is
  returned as failed, with the error as its reason, and the others go on.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Errors of a forward pass that fail its videos instead of the run (shape mismatches, out of
#: memory, backend errors are RuntimeErrors).
FORWARD_ERRORS = (RuntimeError, ValueError)


class Finished(NamedTuple):
    """One video out of the batcher: its (n_units, D) rows, or None and why it failed."""

    video_id: str
    rows: np.ndarray | None
    reason: str | None = None


@dataclass
class _Entry:
    video_id: str
    units: torch.Tensor
    sent: int = 0
    rows: list[np.ndarray] = field(default_factory=list)
    reason: str | None = None

    @property
    def shape(self) -> tuple:
        return (tuple(self.units.shape[1:]), self.units.dtype)

    @property
    def left(self) -> int:
        return len(self.units) - self.sent


class Batcher:
    """Batches model units across videos; returns each video's rows once complete (in order).

    Args:
        forward: (B, ...) units → (B, D) rows (a NumPy array).
        batch_size: units per forward pass.
    """

    def __init__(self, forward: Callable[[torch.Tensor], np.ndarray], batch_size: int):
        self._forward = forward
        self._batch = batch_size
        self._queue: deque[_Entry] = deque()
        self.forward_s = 0.0
        self.batches = 0

    def add(self, video_id: str, units: torch.Tensor) -> list[Finished]:
        """Queue one video's units; returns the videos finished by the passes this allowed."""
        if len(units) == 0:
            return [Finished(video_id, None, "no model inputs")]
        self._queue.append(_Entry(video_id, units))
        return self._run(flush=False)

    def flush(self) -> list[Finished]:
        """Run everything still queued; returns the videos finished."""
        return self._run(flush=True)

    def _front_group(self) -> tuple[int, int]:
        """(entries at the front sharing the first entry's unit shape, their units not yet sent)."""
        shape = self._queue[0].shape
        n, units = 0, 0
        for entry in self._queue:
            if entry.shape != shape:
                break
            n += 1
            units += entry.left
        return n, units

    def _run(self, flush: bool) -> list[Finished]:
        done: list[Finished] = []
        while self._queue:
            n, waiting = self._front_group()
            closed = n < len(self._queue)  # another shape follows: nothing more can join these
            if waiting >= self._batch or ((flush or closed) and waiting > 0):
                self._send([self._queue[i] for i in range(n)])
            elif waiting > 0:
                break  # wait for more units of this shape
            while self._queue and self._queue[0].left == 0:
                entry = self._queue.popleft()
                rows = None if entry.reason is not None else np.concatenate(entry.rows)
                done.append(Finished(entry.video_id, rows, entry.reason))
        return done

    def _send(self, group: list[_Entry]) -> None:
        """One forward pass over up to ``batch_size`` units of the group, in order."""
        parts, owners, room = [], [], self._batch
        for entry in group:
            if room == 0:
                break
            take = min(room, entry.left)
            if take == 0:
                continue
            parts.append(entry.units[entry.sent:entry.sent + take])
            owners.append(entry)
            entry.sent += take
            room -= take
        batch = torch.cat(parts) if len(parts) > 1 else parts[0]
        try:
            rows = self._timed(batch)
        except FORWARD_ERRORS as exc:
            if len(parts) == 1:
                self._fail(owners[0], exc)
                return
            log.warning("a forward pass over %d videos failed (%s); retrying them one by one",
                        len(parts), exc)
            for entry, part in zip(owners, parts):
                try:
                    entry.rows.append(self._timed(part))
                except FORWARD_ERRORS as own:
                    self._fail(entry, own)
            return
        offset = 0
        for entry, part in zip(owners, parts):
            entry.rows.append(rows[offset:offset + len(part)])
            offset += len(part)

    def _timed(self, batch: torch.Tensor) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self._forward(batch)
        finally:
            self.forward_s += time.perf_counter() - start
            self.batches += 1

    @staticmethod
    def _fail(entry: _Entry, exc: BaseException) -> None:
        entry.reason = f"forward pass failed: {type(exc).__name__}: {str(exc).strip()[:300]}"
        entry.sent = len(entry.units)  # its remaining units are never sent
        entry.rows.clear()
        log.warning("%s: %s", entry.video_id, entry.reason)
