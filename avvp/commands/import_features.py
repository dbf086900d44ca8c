"""``avvp import-features``: read the official pre-extracted LLP features into the store."""

from __future__ import annotations

from collections import Counter

from avvp.core.feature_store import ROLES


def register(sub) -> None:
    p = sub.add_parser("import-features",
                       help="import the official LLP feature folders (vggish/, res152/, r2plus1d_18/)")
    p.add_argument("--manifest", required=True, help="manifest.parquet (from avvp manifest)")
    p.add_argument("--folder", required=True,
                   help="the official 'feats' folder, its parent, or the folder its archive was unpacked into")
    p.add_argument("--out-dir", required=True,
                   help="writes <out-dir>/<role>.h5 and <out-dir>/failures/import.parquet")
    p.add_argument("--roles", nargs="+", choices=ROLES, default=list(ROLES), help="roles to import")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from avvp.stages.import_features import FAILURES, import_features, read_manifest

    manifest = read_manifest(args.manifest)
    rep = import_features(manifest, args.folder, args.out_dir, args.roles, progress=not args.no_progress)
    print(f"{rep.videos} of {len(manifest)} videos imported from {rep.source} -> {rep.out_dir}")
    if len(rep.failures):
        counts = ", ".join(f"{n} {s}" for s, n in Counter(rep.failures["stage"]).most_common())
        print(f"{len(rep.failures)} failure rows ({counts}) in {rep.out_dir / 'failures' / FAILURES}")
        left = rep.left_out
        if left:
            shown = ", ".join(left[:10]) + (" ..." if len(left) > 10 else "")
            print(f"{len(left)} videos left out: {shown}")
    for split, ids in rep.missing_eval.items():
        print(f"{len(ids)} {split} videos have no features: evaluation stops on them unless "
              "evaluate.allow_missing is set")
    if rep.quantised:
        print(f"{len(rep.quantised)} VGGish files look PCA-quantised (integer values in 0..255)")
    return 0
