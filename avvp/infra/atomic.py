"""Atomic file output: write to a temporary path beside the target, then rename.

An interrupted run never leaves a half-written output under the final name, so Snakemake (and
avvp's own resume logic) can trust that an existing file is complete.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from avvp.infra.errors import StorageError


#: Targets being written by this process now (the CLI names them when interrupted).
_writing: list[Path] = []
_last_failed: Path | None = None
#: Errors that mean the file system is full (or the user's quota is).
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None, provenance: str | None = "auto"
                ) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``target`` on success.

    The temporary name keeps the target's suffix (or ``suffix``) so that libraries which pick a
    format from the extension (matplotlib, pandas) still work. On an exception the temporary file
    is removed and the target is left untouched; a full disk (``ENOSPC``/``EDQUOT``, or a library
    error such as torch's "unexpected pos" on a full disk) becomes a :class:`StorageError`
    naming the target.

    Before the rename, the current provenance record (:mod:`avvp.infra.provenance`) is stored in the
    finished file or its sidecar: ``provenance`` is ``"auto"`` (by the target's suffix),
    ``"embed"``, ``"sidecar"`` or None (none). The fault injector (:mod:`avvp.infra.faults`, point
    ``write``) acts here too: the file is complete but not yet published.
    """
    from avvp.infra import faults
    from avvp.infra import provenance as prov

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix if suffix is None else suffix
    mode = prov.mode_for(target) if provenance == "auto" else provenance
    remove_orphans(target, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=f".tmp{suffix}",
                               dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    _writing.append(target)
    try:
        yield tmp_path
        faults.passed("write", target)
        prov.embed(tmp_path, target, mode)
        os.replace(tmp_path, target)
    except BaseException as exc:
        global _last_failed
        _last_failed = target
        full = isinstance(exc, (OSError, RuntimeError)) and is_disk_full(exc, target.parent)
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if full:
            raise StorageError(target, _detail(exc)) from None
        raise
    finally:
        _writing.remove(target)


def in_progress() -> list[Path]:
    """The outputs this process is writing now (innermost last), else the last one whose write
    was abandoned by an exception (an interrupt seen by the CLI has already unwound them)."""
    return list(_writing) or ([_last_failed] if _last_failed is not None else [])


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """True if ``exc`` (raised while writing into ``folder``) comes from a full disk or quota:
    its errno says so, or (libraries that hide the errno, such as torch.save) the folder's file
    system has no room left now."""
    from avvp.infra import faults

    if isinstance(exc, StorageError):
        return False
    if getattr(exc, "errno", None) in FULL_ERRNOS or faults.disk_full():
        return True
    try:
        stat = os.statvfs(folder)
        return stat.f_bavail * stat.f_frsize < (1 << 20)
    except OSError:
        return False


def _detail(exc: BaseException) -> str:
    if getattr(exc, "errno", None) in FULL_ERRNOS:
        return os.strerror(exc.errno)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {first[:160]}"


def remove_orphans(target: Path, suffix: str | None = None) -> list[Path]:
    """Remove the temporary files of ``target`` whose writing process is gone (killed with
    SIGKILL, or the machine stopped): their names hold the writer's process id. Temporary files
    of live processes (a concurrent run) are kept."""
    suffix = target.suffix if suffix is None else suffix
    removed = []
    prefix = f".{target.name}."
    for path in target.parent.glob(f"{glob.escape(prefix)}*.tmp{glob.escape(suffix)}"):
        pid = path.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(target: str | Path) -> list[Path]:
    """Remove the temporary files that :func:`atomic_path` left beside ``target`` when a process
    writing it was killed (SIGKILL gives no chance to clean up); returns what was removed.

    Call it only where no other process writes ``target`` at the same time (a Snakemake job owns
    its outputs), as a big output (a feature store) would otherwise leak its size on every kill.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    removed = []
    pattern = f".{glob.escape(target.name)}.*.tmp{glob.escape(target.suffix)}"
    for path in target.parent.glob(pattern):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def write_text(target: str | Path, text: str, provenance: str | None = "auto") -> None:
    """Write ``text`` to ``target`` atomically (``provenance``: see :func:`atomic_path`)."""
    with atomic_path(target, provenance=provenance) as tmp:
        tmp.write_text(text)


def write_json(target: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_parquet(target: str | Path, frame) -> None:
    """Write a pandas DataFrame to Parquet atomically, with page checksums (a damaged page is
    an error when :func:`avvp.infra.parquet_reader.read_table` reads it, not wrong numbers)."""
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False, write_page_checksum=True)


def write_csv(target: str | Path, frame, **kwargs) -> None:
    """Write a pandas DataFrame to CSV atomically (keyword arguments go to ``to_csv``)."""
    kwargs.setdefault("index", False)
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, **kwargs)


def save_figure(target: str | Path, fig) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
