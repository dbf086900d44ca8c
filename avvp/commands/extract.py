"""``avvp extract``: features of one role for one shard of the manifest."""

from __future__ import annotations

from ..feature_store import ROLES


def register(sub) -> None:
    p = sub.add_parser("extract", help="extract one role's features for one manifest shard")
    p.add_argument("--manifest", required=True, help="manifest.parquet (from avvp manifest)")
    p.add_argument("--role", required=True, choices=ROLES, help="which features")
    p.add_argument("--settings", default=None,
                   help="the features config section: inline JSON or a YAML/JSON file")
    p.add_argument("--shard", type=int, default=0, help="shard index (0-based, default 0)")
    p.add_argument("--shards", type=int, default=None,
                   help="number of shards (default: features.shards of the settings)")
    p.add_argument("--out", required=True, help="shard feature store (.h5)")
    p.add_argument("--failures", required=True, help="failure table (.parquet)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: features.threads)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..extract import extract_shard, feature_settings, read_manifest

    settings = feature_settings(args.settings)
    torch.set_num_threads(args.threads or settings["threads"])
    shards = args.shards or settings["shards"]
    report = extract_shard(read_manifest(args.manifest), args.role, settings, args.shard, shards,
                           args.out, args.failures, progress=not args.no_progress)
    rate = report.videos / report.wall_s if report.wall_s else 0.0
    print(f"{args.role} shard {args.shard} of {shards}: {report.videos} videos {report.shape}, "
          f"{len(report.failures)} failures, {report.resumed} resumed, {rate:.2f} clips/s, "
          f"{100 * report.outside_share:.0f}% of wall time outside the model -> {args.out}")
    return 0
