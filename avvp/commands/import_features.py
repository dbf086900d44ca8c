"""``avvp import-features``: read the official pre-extracted LLP features into the store."""

from __future__ import annotations

from ..feature_store import ROLES


def register(sub) -> None:
    p = sub.add_parser("import-features",
                       help="import the official LLP feature folders (vggish/, res152/, r2plus1d_18/)")
    p.add_argument("--manifest", required=True, help="manifest.parquet (from avvp manifest)")
    p.add_argument("--folder", required=True, help="the official 'feats' folder")
    p.add_argument("--out-dir", required=True, help="writes <out-dir>/<role>.h5 and failures/")
    p.add_argument("--roles", nargs="+", choices=ROLES, default=list(ROLES), help="roles to import")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..extract import read_manifest
    from ..import_features import import_features

    manifest = read_manifest(args.manifest)
    reports = import_features(manifest, args.folder, args.out_dir, args.roles,
                              progress=not args.no_progress)
    for role, rep in reports.items():
        line = f"{role}: {rep.videos} videos -> {rep.out}"
        if rep.missing:
            shown = ", ".join(rep.missing[:10]) + (" ..." if len(rep.missing) > 10 else "")
            line += f"; {len(rep.missing)} missing: {shown}"
        if rep.quantised:
            line += (f"; {len(rep.quantised)} VGGish files look PCA-quantised "
                     "(integer values in 0..255)")
        print(line)
    return 0
