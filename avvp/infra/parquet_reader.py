"""Reading the project's Parquet tables with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from avvp.infra.errors import InputError


def read_table(path: str | Path, columns: Iterable[str], what: str = "table") -> pd.DataFrame:
    """Read ``path``; raise InputError if it is missing, not Parquet, or lacks one of ``columns``."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, f"{what} not found")
    try:
        table = pd.read_parquet(path, page_checksum_verification=True)  # damaged pages are errors
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(path, f"not a Parquet file: {exc}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}; has {list(table.columns)}")
    return table
