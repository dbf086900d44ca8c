"""``avvp noise-ratios``: per-class noise ratios for JoMoLD's dynamic label denoising."""

from __future__ import annotations

from avvp.infra.errors import ConfigError
from avvp.settings import parse_settings


def register(sub) -> None:
    p = sub.add_parser(
        "noise-ratios", help="per-class noise ratios (JoMoLD stage 2, MA's drops, the truth, or an official npz)",
        description="Write ratios.parquet: per class, the share of the weak training labels absent in "
                    "the audio and in the visual modality, from one source: a JoMoLD noise "
                    "estimator (--model, --features), the drops of a refined-labels table "
                    "(--labels, MA's exchange estimate), the demo's true labels (--truth) or an "
                    "official noise_ratios.npz (--from-npz). --npz also writes the official layout.")
    p.add_argument("--manifest", required=True, help="manifest.parquet (its train videos)")
    p.add_argument("--annotations", default=None, help="annotation folder for classes.txt (default: beside the manifest)")
    p.add_argument("--out", help="ratios.parquet to write")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model", help="a trained noise estimator (avvp model.pt, or an official JoMoLD checkpoint)")
    source.add_argument("--labels", help="a refined-labels table (labels.parquet of avvp refine): its drop shares")
    source.add_argument("--truth", action="store_true", help="the true per-modality training labels (demo only)")
    source.add_argument("--from-npz", metavar="NPZ", help="an official noise_ratios.npz")
    source.add_argument("--to-npz", metavar="RATIOS", help="only convert this ratios.parquet to the npz given by --npz")
    p.add_argument("--features", help="folder with the merged feature stores (with --model)")
    p.add_argument("--settings", default=None,
                   help="config section 'ratios' (a_thres, v_thres, batch_size, seed, device): JSON or a file")
    p.add_argument("--run-seed", type=int, default=0, help="the experiment's seed (the estimator pass's shuffle)")
    p.add_argument("--npz", default=None, help="also write the official noise_ratios.npz here")
    p.add_argument("--quality-dir", default=None,
                   help="also compare with the true ratios: quality.parquet/.md/.png here (demo only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from avvp.stages.refine import stages as denoise
    from avvp.commands.refine import export_only

    if args.to_npz:
        return export_only(denoise.export_npz, args.to_npz, args.npz, "--to-npz", "--npz", args)
    if not args.out:
        raise ConfigError("avvp noise-ratios needs --out")
    source = ("estimator" if args.model else "exchange" if args.labels else "truth" if args.truth
              else "npz" if args.from_npz else None)
    if source is None:
        raise ConfigError("avvp noise-ratios needs a source: --model, --labels, --truth or --from-npz")
    ratios = denoise.run_ratios(source, args.manifest, args.out, model=args.model, features_dir=args.features,
                                labels=args.labels, npz=args.from_npz, settings=parse_settings(args.settings),
                                run_seed=args.run_seed, npz_out=args.npz, quality_dir=args.quality_dir,
                                annotations=args.annotations, progress=not args.no_progress)
    print(f"noise ratios ({source}): audio mean {ratios.audio.mean():.3f}, visual mean "
          f"{ratios.visual.mean():.3f} over {len(ratios.classes)} classes -> {args.out}")
    return 0
