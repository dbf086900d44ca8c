"""Fetch the LLP annotation files from their public source, checking each file's sha256."""

from __future__ import annotations

import logging
import shutil
import urllib.request
from pathlib import Path

from avvp.core.annotations import LLP_SHA256
from avvp.infra.atomic import atomic_path
from avvp.infra.errors import InputError
from avvp.infra.provenance import sha256

log = logging.getLogger(__name__)

#: The file the workflow waits for (fetched last).
MARKER = "AVVP_train.csv"


def fetch_annotations(url: str, out: str | Path, check: bool = True, timeout: float = 60) -> list[Path]:
    """Download the six LLP CSVs from ``url`` (a folder URL, ``http(s)://`` or ``file://``) into ``out``.

    Files already present with the right sha256 are kept. A file whose sha256 differs is refused
    (unless ``check`` is false) and not written under its final name. ``AVVP_train.csv`` comes
    last: the workflow takes it as the marker of a complete folder (the rule's declared output),
    so it never exists before the others.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, digest in sorted(LLP_SHA256.items(), key=lambda item: item[0] == MARKER):
        target = out / name
        if target.exists() and (not check or sha256(target) == digest):
            written.append(target)
            continue
        source = f"{url.rstrip('/')}/{name}"
        with atomic_path(target) as tmp:
            try:
                with urllib.request.urlopen(source, timeout=timeout) as resp, open(tmp, "wb") as fh:
                    shutil.copyfileobj(resp, fh)
            except OSError as exc:
                raise InputError(source, f"download failed: {exc}") from exc
            got = sha256(tmp)
            if check and got != digest:
                raise InputError(source, f"sha256 {got} does not match the expected {digest}")
        log.info("fetched %s", target)
        written.append(target)
    return written
