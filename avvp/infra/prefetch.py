"""Decode clips ahead of the model, in background threads or worker processes.

:func:`prefetch` yields ``(item, units, reason)`` in input order while up to ``ahead`` further
clips are being decoded: ``units`` is what ``load(item)`` returned, or None with ``reason`` when
the clip could not be used (a bad clip is data, not a crash). Two modes:

* ``thread``: a thread pool in this process (PyAV and torch release the GIL while they work);
* ``process``: ``torch.utils.data.DataLoader`` workers (forked), for decoders whose Python-side
  work would otherwise compete with the model's thread for the GIL.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Sequence

import torch

from avvp.infra.errors import InputError

MODES = ("thread", "process")


def clip_errors() -> tuple[type[BaseException], ...]:
    """Errors of one clip that make it a failure row instead of stopping the run."""
    import av

    return (InputError, av.error.FFmpegError, OSError, ValueError, EOFError, RuntimeError)


def describe(exc: BaseException) -> str:
    """The failure reason recorded for a clip error."""
    return exc.problem if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"


class SafeLoad:
    """``load(item)`` → (units, None), or (None, reason) for a clip error."""

    def __init__(self, load: Callable[[Any], torch.Tensor]):
        self.load = load
        self.errors = clip_errors()

    def __call__(self, item) -> tuple[torch.Tensor | None, str | None]:
        try:
            return self.load(item), None
        except self.errors as exc:
            return None, describe(exc)


class _Items(torch.utils.data.Dataset):
    def __init__(self, items: Sequence, load: SafeLoad):
        self.items, self.load = items, load

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        units, reason = self.load(self.items[index])
        return index, units, reason


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)


def prefetch(load: Callable[[Any], torch.Tensor], items: Sequence, workers: int = 1,
             ahead: int = 4, mode: str = "thread", pin_memory: bool = False
             ) -> Iterator[tuple[Any, torch.Tensor | None, str | None]]:
    """Yield ``(item, units or None, failure reason or None)`` for each item, in order.

    Args:
        load: decodes one item into model units (raises a clip error for a bad clip).
        items: what to load.
        workers: decoding threads or processes.
        ahead: clips decoded ahead of the consumer (per worker in process mode).
        mode: ``thread`` or ``process`` (falls back to threads where fork is unavailable).
        pin_memory: pin the units (process mode, for a CUDA model).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    safe = SafeLoad(load)
    if mode == "process" and "fork" in multiprocessing.get_all_start_methods() and len(items) > 1:
        yield from _processes(safe, items, workers, ahead, pin_memory)
    else:
        yield from _threads(safe, items, workers, ahead)


def _threads(safe: SafeLoad, items: Sequence, workers: int, ahead: int):
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
    window: deque[tuple[Any, Future]] = deque()
    iterator = iter(items)
    try:
        for item in iterator:
            window.append((item, pool.submit(safe, item)))
            if len(window) >= ahead:
                break
        while window:
            item, future = window.popleft()
            units, reason = future.result()
            yield item, units, reason
            nxt = next(iterator, None)
            if nxt is not None:
                window.append((nxt, pool.submit(safe, nxt)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _processes(safe: SafeLoad, items: Sequence, workers: int, ahead: int, pin_memory: bool):
    loader = torch.utils.data.DataLoader(
        _Items(items, safe), batch_size=None, shuffle=False, num_workers=workers,
        prefetch_factor=max(1, ahead // workers), worker_init_fn=_one_thread,
        multiprocessing_context="fork", pin_memory=pin_memory)
    for index, units, reason in loader:
        yield items[index], units, reason
