"""``avvp drift``: compare features avvp extracted with a release's features of the same videos."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("drift", help="per role and video: relative error and cosine similarity against a release")
    p.add_argument("--ours", required=True, help="folder of our feature stores (<role>.h5)")
    p.add_argument("--theirs", required=True, help="folder of the release's feature stores (<role>.h5), "
                                                   "e.g. written by `avvp teach release` or `avvp import-features`")
    p.add_argument("--roles", nargs="+", required=True, help="roles to compare, e.g. clip_image clap_audio")
    p.add_argument("--out", required=True, help="writes drift.parquet, drift.md and drift.png here")
    p.set_defaults(func=run)


def run(args) -> int:
    from avvp.stages.drift import drift, summary, write_report
    from avvp.core.table_layout import to_text

    table = drift(args.ours, args.theirs, args.roles)
    paths = write_report(table, args.out)
    print(to_text(summary(table), decimals=4))
    print(f"-> {paths['markdown'].parent}")
    return 0
