"""Reading back the provenance record (:mod:`avvp.infra.provenance`) of any output avvp writes: from a
feature store's attributes, Parquet metadata, an npz entry, a checkpoint's dict, or a sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from avvp.core.checkpoint import load_torch
from avvp.infra.errors import InputError
from avvp.core.feature_store import read_attrs
from avvp.infra.provenance import H5_ATTR, NPZ_KEY, PARQUET_KEY, PT_KEY, sha256_file, sidecar_path, text


def read(path: str | Path) -> dict:
    """The provenance record of an output (embedded or in its sidecar).

    Raises:
        InputError: the file is missing, or holds no record (and has no sidecar), or its sidecar
            describes other bytes (left by an interrupted run).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    side = sidecar_path(path)
    if side.exists():
        doc = json.loads(side.read_text())
        actual = sha256_file(path)
        if doc.get("output_sha256") != actual:
            raise InputError(side, f"this provenance record describes other bytes than {path.name} "
                                   f"({doc.get('output_sha256')} vs {actual}): the file was rewritten "
                                   "without provenance or by an interrupted run")
        return doc
    suffix = path.suffix.lower()
    found: str | None = None
    try:
        if suffix == ".h5":
            found = read_attrs(path).get(H5_ATTR)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.read_schema(path).metadata or {}
            found = meta.get(PARQUET_KEY, b"").decode() or None
        elif suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as data:
                found = str(data[NPZ_KEY]) if NPZ_KEY in data.files else None
        elif suffix == ".pt":
            payload = load_torch(path)
            if isinstance(payload, Mapping):
                value = payload.get(PT_KEY) or (payload.get("meta") or {}).get(PT_KEY)
                found = None if value is None else text(value)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - each format's reader raises its own types
        raise InputError(path, f"cannot read its provenance: {exc}") from None
    if not found:
        raise InputError(path, "holds no provenance record (written by an older avvp, or not by avvp)")
    return json.loads(found)
