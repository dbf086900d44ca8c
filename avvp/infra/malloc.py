"""Keep a process's peak memory close to what it holds (glibc malloc settings; Linux only).

Training holds ~1.1 GB of LLP features, and the job should peak under 2 GB. glibc's malloc, by
default, serves blocks up to 32 MB from its heap once a large block has been freed (a dynamic
threshold), and a freed heap block is rarely returned to the system. Loading the features in
chunks, then the training steps and the validation passes, each leave such freed blocks behind
that the next phase does not reuse, and the peak grows by ~100 MB. :func:`lean_allocator` fixes
the threshold at 1 MiB (larger blocks are mapped and unmapped, smaller ones stay on the heap, so a
training step runs as fast as before), and :func:`release_free_memory` hands the free heap back
after a phase. Elsewhere (macOS, musl) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_MMAP_THRESHOLD = -3          # mallopt parameter (glibc malloc.h)
MMAP_THRESHOLD = 1 << 20


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def lean_allocator() -> bool:
    """Serve blocks of 1 MiB and more by mmap (returned to the system when freed); True if set."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_free_memory() -> None:
    """Return the heap's free pages to the system (glibc ``malloc_trim``)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
