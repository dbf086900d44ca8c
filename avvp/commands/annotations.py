"""``avvp annotations``: fetch the LLP annotation files."""

from __future__ import annotations

from avvp.stages.fetch_annotations import fetch_annotations


def register(sub) -> None:
    p = sub.add_parser("annotations", help="fetch the LLP annotation CSVs (sha256-checked)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    f = actions.add_parser("fetch", help="download the six LLP CSVs into a folder")
    f.add_argument("--url", required=True, help="folder URL holding the CSVs (http(s):// or file://)")
    f.add_argument("--out", required=True, help="output folder")
    f.add_argument("--no-check", action="store_true", help="accept files whose sha256 differs")
    f.set_defaults(func=run_fetch)


def run_fetch(args) -> int:
    paths = fetch_annotations(args.url, args.out, check=not args.no_check)
    print(f"{len(paths)} annotation files in {args.out}")
    return 0
