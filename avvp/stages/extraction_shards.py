"""What one extraction shard is: the manifest it reads, its block of rows, the identity of its inputs,
where its partial results live, and the reports of a job (see :mod:`avvp.stages.extraction`)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from avvp.infra import parquet_reader as parquet
from avvp.infra.errors import ConfigError, InputError
from avvp.core.feature_store import FAILURE_COLUMNS

MANIFEST_COLUMNS = ("video_id", "start", "end", "path")
#: Columns of an extraction failure table: the common ones plus ``severity`` (error: not stored |
#: degraded: stored, much of the audio padded with silence | warning: stored, a little padded).
TABLE_COLUMNS = (*FAILURE_COLUMNS, "severity")


def read_manifest(path: str | Path) -> pd.DataFrame:
    """The manifest (``avvp manifest``) with the columns extraction needs."""
    table = parquet.read_table(path, MANIFEST_COLUMNS, "manifest")
    check_unique(table, path)
    return table.reset_index(drop=True)


def check_unique(manifest: pd.DataFrame, where=None) -> None:
    """Raise InputError if a video id appears more than once."""
    dup = manifest["video_id"][manifest["video_id"].duplicated()]
    if len(dup):
        raise InputError(where, f"video id {dup.iloc[0]} appears more than once in the manifest")


def shard_rows(manifest: pd.DataFrame, shard: int, shards: int) -> pd.DataFrame:
    """Shard ``shard`` of ``shards``: a contiguous block of manifest rows (order kept)."""
    if not 0 <= shard < shards:
        raise ConfigError(f"shard {shard} is outside 0..{shards - 1}")
    bounds = np.linspace(0, len(manifest), shards + 1).round().astype(int)
    return manifest.iloc[bounds[shard]:bounds[shard + 1]].reset_index(drop=True)


def partial_path(out: str | Path) -> Path:
    """Where the partial results of shard output ``out`` are kept (``<shard>.partial.h5``)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.partial{out.suffix or '.h5'}")


def inputs_identity(rows: pd.DataFrame) -> str:
    """What a shard is made from: sha256 of its rows (id, window, clip path, size, mtime)."""
    digest = hashlib.sha256()
    for row in rows.itertuples(index=False):
        path = "" if row.path is None or pd.isna(row.path) else str(row.path)
        try:
            stat = os.stat(path) if path else None
        except OSError:
            stat = None
        stamp = (stat.st_size, stat.st_mtime_ns) if stat else None
        digest.update(json.dumps([row.video_id, float(row.start), float(row.end), path, stamp]).encode())
    return digest.hexdigest()


@dataclass
class ShardReport:
    """What one role of a shard run did."""

    out: Path
    failures: pd.DataFrame
    videos: int = 0
    resumed: int = 0
    wall_s: float = 0.0
    forward_s: float = 0.0
    shape: tuple[int, ...] = ()
    ids: list[str] = field(default_factory=list)
    kept: bool = False

    @property
    def outside_share(self) -> float:
        """Share of wall time spent outside the model's forward passes."""
        return 1.0 - self.forward_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def errors(self) -> int:
        """Failure rows that are errors (not warnings)."""
        return int((self.failures["severity"] == "error").sum()) if len(self.failures) else 0


@dataclass
class JobReport:
    """What one extraction job did: per role, the time the models waited for decoded clips and
    the time spent compiling them (tracing, profiling, fusing: part of the first passes)."""

    roles: dict[str, ShardReport]
    wall_s: float = 0.0
    wait_s: float = 0.0
    setup_s: float = 0.0
    clips: int = 0

    @property
    def forward_s(self) -> float:
        """Seconds in the models' forward passes (including :attr:`setup_s`)."""
        return sum(r.forward_s for r in self.roles.values())

    @property
    def wait_share(self) -> float:
        """Share of the job's wall time spent waiting for decoded input."""
        return self.wait_s / self.wall_s if self.wall_s > 0 else 0.0
