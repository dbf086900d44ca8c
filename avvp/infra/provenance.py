"""Provenance: every output records what made it (code, settings, seed, inputs).

One record format, a JSON object::

    {"format": "avvp-provenance", "version": 1,
     "avvp_version": "0.1.0", "git_commit": "<40 hex>" | null, "code": "sha256:<hex>",
     "python": "3.12.3", "torch": "2.11.0", "numpy": "2.3.1",
     "command": "train", "argv": ["train", "--features-dir", ...],
     "settings": {...} | "<the --settings text>" | null, "seed": 3 | null,
     "inputs": {"results/demo/manifest.parquet": "sha256:<hex>", ...}}

``code`` is the SHA-256 of the avvp package's Python sources (names and bytes), so it identifies
the code also where avvp runs from an installed copy without git (``git_commit`` is then null).
The record holds no time stamp and names inputs as they were given on the command line, so an
output's bytes depend only on what made it: an interrupted and resumed run writes the same bytes
as an uninterrupted one.

Where it is stored (``embed``, by the output's suffix; :func:`avvp.infra.atomic.atomic_path` does it
when the output is complete, just before the rename that publishes it):

* ``.h5`` (feature stores): the file attribute ``provenance`` (JSON text);
* ``.parquet``: the schema metadata key ``avvp.infra.provenance``;
* ``.npz`` (predictions): an entry ``provenance`` (a 0-d string array);
* ``.pt`` (avvp model and resume files): the key ``provenance`` of the saved dict;
* anything else that is text or a pickle (``.json``, ``.csv``, ``.md``, ``.tsv``, ``.txt``,
  ``.pkl``) and the official layouts that must stay exactly as they are (``noise_ratios.npz``): a
  sidecar file ``<output>.provenance.json``, written atomically before the output is renamed into
  place; it holds the output's SHA-256 (``output_sha256``), so a sidecar left by an interrupted run
  is recognised as not describing the file beside it. Figures and clips get none.

The CLI (:func:`avvp.cli.main`) makes the record of each command (:func:`begin`) from its
arguments: every argument that names an existing file is an input, checksummed; of an input
folder, the data files directly inside it (a features folder: the three stores, the pooled frame
store when it is current). A command can name its inputs itself with
``parser.set_defaults(provenance_inputs=callable(args) -> paths)``. Library code can use
:func:`active` to set a record for the outputs it writes.

``avvp provenance PATH`` prints the record of any output (:func:`read`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

FORMAT = "avvp-provenance"
VERSION = 1
#: Where the record is stored in each embedded format.
H5_ATTR = "provenance"
PARQUET_KEY = b"avvp.infra.provenance"
NPZ_KEY = "provenance"
PT_KEY = "provenance"
SIDECAR_SUFFIX = ".provenance.json"
EMBEDDED = (".h5", ".parquet", ".npz", ".pt")
SIDECAR = (".json", ".csv", ".md", ".tsv", ".txt", ".pkl")
#: Files of an input folder that are checksummed (media files are not: a clips folder is huge).
DATA_SUFFIXES = (".h5", ".parquet", ".npz", ".pt", ".csv", ".txt", ".json", ".pkl")
#: Argument names (argparse ``dest``) that are outputs, never inputs.
OUTPUT_DESTS = ("out", "out_dir", "quality_dir", "failures", "npz", "pkl")
_CHUNK = 1 << 20

_current: dict | None = None
_code: str | None = None
_commit: tuple[str | None] | None = None


# ----------------------------------------------------------------------------- identity

def code_fingerprint() -> str:
    """``sha256:<hex>`` of the avvp package's Python sources (relative names and bytes)."""
    global _code
    if _code is None:
        root = Path(__file__).resolve().parent
        h = hashlib.sha256()
        for path in sorted(root.rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
        _code = "sha256:" + h.hexdigest()
    return _code


def git_commit() -> str | None:
    """The commit of the git checkout avvp runs from, or None (an installed copy, no git)."""
    global _commit
    if _commit is None:
        root = Path(__file__).resolve().parent
        commit = None
        if any((p / ".git").exists() for p in (root, *root.parents)):
            try:
                proc = subprocess.run(["git", "rev-parse", "HEAD", "--show-toplevel"], cwd=root,
                                      capture_output=True, text=True, timeout=10)
                lines = proc.stdout.split()
                # only avvp's own checkout: not a repository that happens to hold an installed copy
                ours = len(lines) == 2 and Path(lines[1]).resolve() / "avvp" == root
                commit = lines[0] if proc.returncode == 0 and ours and len(lines[0]) == 40 else None
            except (OSError, subprocess.SubprocessError):
                commit = None
        _commit = (commit,)
    return _commit[0]


def code_identity() -> dict:
    """What identifies the running code: avvp version, git commit (or None), source fingerprint."""
    from avvp import __version__

    return {"avvp_version": __version__, "git_commit": git_commit(), "code": code_fingerprint()}


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes (read in 1-MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    return "sha256:" + sha256(path)


# ------------------------------------------------------------------------------- record

def make_record(command: str | None, argv: Iterable[str] = (), settings: Any = None, seed: Any = None,
                inputs: Iterable[str | Path] = ()) -> dict:
    """A provenance record (see the module docstring); inputs are checksummed now."""
    record = {"format": FORMAT, "version": VERSION, **code_identity(),
              "python": ".".join(map(str, sys.version_info[:3])), "torch": _version("torch"),
              "numpy": _version("numpy"), "command": command, "argv": [str(a) for a in argv],
              "settings": settings, "seed": seed, "inputs": {}}
    for path in inputs:
        path = Path(path)
        if path.is_file():
            record["inputs"][str(path)] = sha256_file(path)
    return json.loads(json.dumps(record, default=str))


def start(record: dict) -> dict:
    """Make ``record`` the current one (a CLI command's, built by :func:`avvp.cli.command_record`)."""
    global _current
    _current = record
    return _current


def end() -> None:
    """Forget the current record (the command has ended)."""
    global _current
    _current = None


def current() -> dict | None:
    """The record outputs written now carry (None: no record, nothing is embedded)."""
    return _current


@contextlib.contextmanager
def active(record: Mapping | None) -> Iterator[None]:
    """Make ``record`` the current one inside the block (library use, tests)."""
    global _current
    before, _current = _current, (None if record is None else dict(record))
    try:
        yield
    finally:
        _current = before


def text(record: Mapping) -> str:
    """The record as canonical JSON text (sorted keys), as stored."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- embedding

def mode_for(target: str | Path) -> str | None:
    """``embed``, ``sidecar`` or None (no record) for an output file, by its suffix."""
    suffix = Path(target).suffix.lower()
    if suffix in EMBEDDED:
        return "embed"
    if suffix in SIDECAR:
        return "sidecar"
    return None


def sidecar_path(target: str | Path) -> Path:
    target = Path(target)
    return target.with_name(target.name + SIDECAR_SUFFIX)


def embed(tmp: Path, target: Path, mode: str | None) -> None:
    """Store the current record in the finished temporary file ``tmp`` of ``target`` (or in the
    sidecar of ``target``); no record, or mode None: nothing."""
    record = current()
    if record is None or mode is None:
        return
    if mode == "sidecar":
        from avvp.infra.atomic import write_text

        doc = {**record, "output": target.name, "output_sha256": sha256_file(tmp)}
        write_text(sidecar_path(target), json.dumps(doc, indent=1, sort_keys=True) + "\n", provenance=None)
        return
    suffix = target.suffix.lower()
    if suffix == ".h5":
        import h5py

        with h5py.File(tmp, "a") as h5:
            h5.attrs[H5_ATTR] = text(record)
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(tmp)
        meta = dict(table.schema.metadata or {})
        meta[PARQUET_KEY] = text(record).encode()
        pq.write_table(table.replace_schema_metadata(meta), tmp, write_page_checksum=True)
    elif suffix == ".npz":
        import io
        import zipfile

        import numpy as np
        from numpy.lib import format as npformat

        buf = io.BytesIO()
        npformat.write_array(buf, np.asarray(text(record)), allow_pickle=False)
        info = zipfile.ZipInfo(NPZ_KEY + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zipfile.ZipFile(tmp, "a") as zf:
            if info.filename not in zf.namelist():
                zf.writestr(info, buf.getvalue())
    # .pt: :func:`avvp.core.checkpoint.save_torch` puts the record in the saved dict itself.


def describe(record: Mapping) -> str:
    """A few readable lines about a record (the ``avvp provenance`` output without ``--json``)."""
    lines = [f"avvp {record.get('avvp_version')}"
             + (f" (git {record['git_commit'][:12]})" if record.get("git_commit") else " (no git)")
             + f", code {str(record.get('code', ''))[:19]}",
             f"command: avvp {' '.join(record.get('argv') or [str(record.get('command'))])}",
             f"seed: {record.get('seed')}"]
    if record.get("output_sha256"):
        lines.append(f"output: {record.get('output')} {record['output_sha256']}")
    lines.append("inputs:")
    lines += [f"  {digest}  {name}" for name, digest in sorted((record.get("inputs") or {}).items())] or ["  (none)"]
    lines.append("settings: " + json.dumps(record.get("settings"), sort_keys=True))
    return "\n".join(lines)


def differences(stored: Mapping, now: Mapping) -> list[str]:
    """Why two identity dicts (``code_identity()`` plus ``settings``/``seed``/``data``) differ, in
    words; empty when they agree."""
    why = []
    if (stored.get("avvp_version"), stored.get("code")) != (now.get("avvp_version"), now.get("code")):
        why.append(f"it was made by other code (avvp {stored.get('avvp_version')}, "
                   f"{_short(stored.get('git_commit'), stored.get('code'))}; this is avvp "
                   f"{now.get('avvp_version')}, {_short(now.get('git_commit'), now.get('code'))})")
    for key, words in (("settings", "other settings"), ("seed", "another seed"),
                       ("data", "other data (videos, features or labels)")):
        if stored.get(key) != now.get(key):
            why.append(f"it was made with {words}")
    return why


def _short(commit: str | None, code: str | None) -> str:
    parts = [f"git {commit[:12]}"] if commit else []
    parts.append(f"code {str(code)[7:19] if code else 'unknown'}")
    return ", ".join(parts)
