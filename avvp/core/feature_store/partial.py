"""A shard's partial file: videos extracted so far, kept across a restart so that an interrupted
extraction resumes where it stopped."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import h5py
import numpy as np

from avvp.core.feature_store.attributes import _attr_text


class PartialFile:
    """Per-video results of an unfinished shard, appended every few videos (resume support).

    The file lives beside the shard output (``<shard>.partial.h5``); its attributes record what
    produced it, so a restart with other settings or weights starts afresh. Each video is one
    dataset under ``videos/``, marked complete only after its data are written.
    """

    def __init__(self, path: str | Path, attrs: Mapping):
        self.path = Path(path)
        self.attrs = {k: _attr_text(v) for k, v in attrs.items()}

    def done(self) -> list[str]:
        """Ids already stored by an earlier run with the same attributes (others: file removed)."""
        if not self.path.exists():
            return []
        try:
            with h5py.File(self.path, "r") as h5:
                stored = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in h5.attrs.items()}
                if any(stored.get(k) != v for k, v in self.attrs.items()):
                    reason = "it was made with other settings or weights"
                    ids = None
                else:
                    group = h5.get("videos")
                    ids = [] if group is None else [k for k, d in group.items() if d.attrs.get("complete")]
        except OSError as exc:
            reason, ids = f"it cannot be read ({exc})", None
        if ids is None:
            import logging

            logging.getLogger(__name__).warning("discarding %s: %s", self.path, reason)
            self.remove()
            return []
        return ids

    def append(self, items: Sequence[tuple]) -> None:
        """Add finished videos ``(video_id, (T, D) array[, {flag: value}[, {extra: array}]])`` and
        flush them to disk (extras go to ``extras/<name>/<video_id>``)."""
        if not items:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(self.path, "a") as h5:
            if not h5.attrs:
                h5.attrs.update(self.attrs)
            group = h5.require_group("videos")
            for vid, feature, *more in items:
                if vid in group:
                    del group[vid]
                dset = group.create_dataset(vid, data=np.asarray(feature, dtype=np.float32))
                for name, value in (more[0] if more else {}).items():
                    dset.attrs[name] = float(value)
                for name, value in (more[1] if len(more) > 1 else {}).items():
                    extra = h5.require_group(f"extras/{name}")
                    if vid in extra:
                        del extra[vid]
                    extra.create_dataset(vid, data=np.asarray(value, dtype=np.float32))
                h5.flush()
                dset.attrs["complete"] = 1
            h5.flush()

    @contextmanager
    def reader(self) -> Iterator[h5py.Group]:
        """The open ``videos`` group (dataset per video id; a video's extras are under
        ``videos.file["extras"][name][video_id]``)."""
        with h5py.File(self.path, "r") as h5:
            yield h5["videos"]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
