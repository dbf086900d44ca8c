"""``avvp train``: train HAN / MA / JoMoLD / VALOR on the merged feature stores and the manifest's labels."""

from __future__ import annotations

from avvp.infra import faults
from avvp.settings import parse_settings
from avvp.stages.train import run_training, train_settings


def register(sub) -> None:
    p = sub.add_parser("train", help="train a HAN model (optionally MA's contrastive loss, refined labels)")
    p.add_argument("--features-dir", required=True,
                   help="folder with the merged stores audio.h5, frame.h5, clip.h5")
    p.add_argument("--manifest", required=True, help="manifest.parquet (dense tables beside it)")
    p.add_argument("--out", required=True, help="model file to write (history.parquet, curve.png, "
                                                "checkpoints/ go beside it)")
    p.add_argument("--labels", default=None, help="refined labels (labels.parquet from avvp refine); "
                                                  "default: the weak labels")
    p.add_argument("--ratios", default=None,
                   help="noise ratios for dynamic label denoising (train.denoise.method, e.g. jomold): "
                        "ratios.parquet of avvp noise-ratios or an official noise_ratios.npz")
    p.add_argument("--pseudo-audio", default=None,
                   help="segment-level audio pseudo labels (pseudo/audio.parquet) for train.loss: valor")
    p.add_argument("--pseudo-visual", default=None,
                   help="segment-level visual pseudo labels (pseudo/visual.parquet) for train.loss: valor")
    p.add_argument("--annotations", default=None,
                   help="annotation folder, read for its classes.txt "
                        "(default: <manifest dir>/annotations, else the LLP classes)")
    p.add_argument("--settings", default=None,
                   help='{"model": {...}, "train": {...}} as inline JSON or a YAML/JSON file')
    p.add_argument("--seed", type=int, default=1, help="seed of this run (default: 1; the workflow "
                                                        "passes each of train.seeds)")
    p.add_argument("--contrastive", choices=("on", "off"), default=None,
                   help="add MA's contrastive loss (overrides train.contrastive.enabled)")
    p.add_argument("--tau", type=float, default=None,
                   help="contrastive temperature (overrides train.contrastive.tau)")
    p.add_argument("--allow-missing", action="store_true",
                   help="leave validation videos without features out of validation instead of "
                        "stopping (training videos without features are always left out, with a warning)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start afresh")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    settings = parse_settings(args.settings)
    override: dict = {}
    if args.contrastive is not None:
        override["enabled"] = args.contrastive == "on"
    if args.tau is not None:
        override["tau"] = args.tau
    if override:
        train = dict(settings.get("train") or {})
        train["contrastive"] = {**dict(train.get("contrastive") or {}), **override}
        settings = {**settings, "train": train}
    settings = train_settings(settings)  # completed and checked once, here
    result = run_training(args.features_dir, args.manifest, args.out, settings, seed=args.seed,
                          labels=args.labels, annotations=args.annotations, resume=not args.restart,
                          progress=not args.no_progress, ratios=args.ratios,
                          allow_missing=args.allow_missing, hook=faults.step_hook("train"),
                          pseudo_audio=args.pseudo_audio, pseudo_visual=args.pseudo_visual)
    metric = settings["train"]["select_metric"]
    print(f"trained {len(result.history)} epochs; selected epoch {result.epoch} "
          f"(val {metric} {100 * result.score:.1f}) -> {args.out}")
    return 0
