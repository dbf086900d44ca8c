"""``avvp provenance PATH``: print what made an output (code, settings, seed, inputs)."""

from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("provenance", help="print the provenance record of an output: the avvp version "
                                          "and commit, the code, the command, settings, seed and the "
                                          "checksums of its inputs",
                       description="Reads the record embedded in a feature store (.h5), Parquet table, "
                                   "predictions (.npz) or model/checkpoint (.pt), or the sidecar "
                                   "<PATH>.provenance.json of other outputs (JSON, CSV, Markdown).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="output file(s)")
    p.add_argument("--json", action="store_true", help="print the whole record as JSON")
    p.add_argument("--check", action="store_true",
                   help="also compare each recorded input's checksum with the file as it is now")
    p.set_defaults(func=run, provenance_inputs=lambda args: [])


def run(args) -> int:
    from avvp.infra.provenance import describe, sha256_file
    from avvp.core.provenance_read import read

    changed = 0
    for i, path in enumerate(args.paths):
        record = read(path)
        if len(args.paths) > 1:
            print(("\n" if i else "") + f"== {path}")
        print(json.dumps(record, indent=2, sort_keys=True) if args.json else describe(record))
        if args.check:
            for name, digest in sorted((record.get("inputs") or {}).items()):
                now = sha256_file(name) if Path(name).is_file() else "missing"
                if now != digest:
                    changed += 1
                    print(f"CHANGED  {name}: recorded {digest}, now {now}")
    return 1 if changed else 0
