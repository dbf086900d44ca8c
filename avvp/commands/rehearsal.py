"""``avvp rehearsal``: a stand-in for the official LLP feature release, to rehearse the pipeline."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("rehearsal", help="rehearse the LLP pipeline without the official features")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = actions.add_parser(
        "release", help="write stand-in features in the official release layout (feats/vggish, "
                        "feats/res152, feats/r2plus1d_18) for the videos of an LLP annotation folder")
    r.add_argument("--annotations", required=True, help="folder of the six LLP annotation CSVs")
    r.add_argument("--out", required=True,
                   help="writes <out>/feats/, <out>/annotations/ (with the training truth) and "
                        "<out>/rehearsal.json; an interrupted run resumes")
    r.add_argument("--settings", default=None,
                   help='{"seed": ..., "noise": ..., "signal": {...}, "videos": ...} as inline JSON or a file')
    r.add_argument("--seed", type=int, default=None, help="overrides settings.seed")
    r.add_argument("--videos", type=int, default=None,
                   help="overrides settings.videos: a subset of this many videos (split shares kept)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=run_release)


def run_release(args) -> int:
    from avvp.stages.rehearsal import write_release
    from avvp.settings import parse_settings

    settings = parse_settings(args.settings)
    for key in ("seed", "videos"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    report = write_release(args.annotations, args.out, settings, progress=not args.no_progress)
    print(f"{report.videos} videos ({report.written} written, {report.kept} kept), "
          f"{report.bytes / 1e9:.2f} GB -> {report.out}")
    return 0
