"""``avvp predict``: run a trained (or official) HAN over one split and write the predictions file."""

from __future__ import annotations

from avvp.stages.predict import check_split, predict_split
from avvp.settings import parse_settings


def register(sub) -> None:
    p = sub.add_parser("predict", help="write a model's predictions (.npz) for one split")
    p.add_argument("--model", required=True, help="model.pt from avvp train, or an official MMIL_Net.pt")
    p.add_argument("--features-dir", required=True,
                   help="folder with the merged stores audio.h5, frame.h5, clip.h5")
    p.add_argument("--manifest", required=True, help="manifest.parquet")
    p.add_argument("--split", required=True, choices=("train", "val", "test"), help="split to predict")
    p.add_argument("--out", required=True, help="predictions file to write (.npz)")
    p.add_argument("--annotations", default=None,
                   help="annotation folder for classes.txt (only needed for an official checkpoint)")
    p.add_argument("--settings", default=None, help='{"device": ..., "batch_size": ..., "nhead": ...} '
                                                    "as inline JSON or a YAML/JSON file")
    p.add_argument("--expect", default=None, choices=("valor", "valor_plus", "valor_pp"),
                   help="the VALOR variant the model file must be (a file of another variant stops "
                        "with an error naming both)")
    p.add_argument("--allow-missing", action="store_true",
                   help="leave out the split's videos that have no features instead of stopping "
                        "(always so for the train split)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    settings = parse_settings(args.settings)
    if args.expect is not None:
        settings = {**settings, "expect": args.expect}
    pred = predict_split(args.model, args.features_dir, args.manifest, check_split(args.split), args.out,
                         settings, args.annotations, progress=not args.no_progress,
                         allow_missing=args.allow_missing)
    print(f"{len(pred.video_ids)} {args.split} videos, {len(pred.classes)} classes -> {args.out}")
    return 0
