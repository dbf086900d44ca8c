"""``avvp merge-features``: merge the shard stores of one role into one store."""

from __future__ import annotations

from avvp.core.feature_store import merge_stores


def register(sub) -> None:
    p = sub.add_parser("merge-features", help="merge shard feature stores into one per role")
    p.add_argument("--out", required=True, help="merged store (.h5)")
    p.add_argument("shards", nargs="+", help="shard stores, in order")
    p.set_defaults(func=run)


def run(args) -> int:
    n = merge_stores(args.shards, args.out)
    print(f"{n} videos from {len(args.shards)} shards -> {args.out}")
    return 0
