"""``avvp refine``: MA's exchange-based modality-aware label refinement of the training labels."""

from __future__ import annotations

from avvp.infra.errors import ConfigError
from avvp.settings import parse_settings


def register(sub) -> None:
    p = sub.add_parser(
        "refine", help="refine the training labels per modality with a trained base model (MA, exchange-based)",
        description="Write a Parquet table of modality-aware labels (one row per positive weak "
                    "(video, class) pair: audio/visual 0 = dropped, with the probabilities and "
                    "thresholds behind every drop). With --from-pkl, convert an official "
                    "need_to_change.pkl instead.")
    p.add_argument("--model", help="trained base model (avvp model.pt or an official state dict)")
    p.add_argument("--features", help="folder with the merged feature stores audio.h5, frame.h5, clip.h5")
    p.add_argument("--manifest", required=True, help="manifest.parquet (its train videos are refined)")
    p.add_argument("--annotations", default=None, help="annotation folder for classes.txt (default: beside the manifest)")
    p.add_argument("--out", help="refined-labels table to write (.parquet)")
    p.add_argument("--settings", default=None,
                   help="refine settings: inline JSON or a YAML/JSON file (config section 'refine')")
    p.add_argument("--run-seed", type=int, default=0,
                   help="the experiment's training seed; partners are drawn with [settings.seed, run seed]")
    p.add_argument("--pkl", default=None, help="also export the drops as an official need_to_change.pkl")
    p.add_argument("--quality-dir", default=None,
                   help="also write quality.parquet/.md/.png here (needs the demo's true training labels)")
    p.add_argument("--from-pkl", default=None, metavar="PKL",
                   help="build the table from an official need_to_change.pkl instead of running a model")
    p.add_argument("--to-pkl", default=None, metavar="LABELS",
                   help="only convert this refined-labels table to the official pkl given by --pkl")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from avvp.stages.refine import stages as refine

    settings = parse_settings(args.settings)
    if args.to_pkl:
        return export_only(refine.export_pkl, args.to_pkl, args.pkl, "--to-pkl", "--pkl", args)
    if not args.out:
        raise ConfigError("avvp refine needs --out")
    if args.from_pkl:
        table = refine.import_pkl(args.from_pkl, args.manifest, args.out, settings, args.annotations)
        print(f"{len(table)} labels, {int((table['audio'] == 0).sum())} audio and "
              f"{int((table['visual'] == 0).sum())} visual dropped -> {args.out}")
        return 0
    if not args.model or not args.features:
        raise ConfigError("avvp refine needs --model and --features (or --from-pkl)")
    result = refine.run_refine(args.model, args.features, args.manifest, args.out, settings, args.run_seed,
                               pkl=args.pkl, quality_dir=args.quality_dir, annotations=args.annotations,
                               progress=not args.no_progress)
    s = result.summary()
    print(f"{s['labels']} labels: {s['dropped_audio']} audio and {s['dropped_visual']} visual dropped "
          f"({s['dropped_both']} both); {s['videos_without_partner']} videos without partner -> {args.out}")
    return 0


def export_only(export, source: str, target: str | None, flag: str, target_flag: str, args) -> int:
    """``--to-<format> SOURCE`` with ``--<format> TARGET``: convert a table to an official file only."""
    if not target:
        raise ConfigError(f"{flag} needs {target_flag} (the file to write)")
    export(source, args.manifest, target, args.annotations)
    print(f"{source} -> {target}")
    return 0
