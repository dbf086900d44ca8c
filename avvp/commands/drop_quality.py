"""``avvp drop-quality``: precision and recall of a dynamic method's recorded drops."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "drop-quality", help="precision/recall of the labels dropped during training (JoMoLD) against the truth",
        description="Reads drops.parquet (written beside model.pt by avvp train with dynamic label "
                    "denoising) and the demo's true per-modality training labels; writes "
                    "quality.parquet/.md/.png (pooled over the epochs in which labels could be "
                    "dropped), quality_epochs.parquet (per epoch) and drop_counts.parquet (how often "
                    "each label was dropped) into --out-dir.")
    p.add_argument("--drops", required=True, help="drops.parquet")
    p.add_argument("--manifest", required=True, help="manifest.parquet (dense_train_*.parquet beside it)")
    p.add_argument("--annotations", default=None, help="annotation folder for classes.txt")
    p.add_argument("--out-dir", required=True, help="folder for the quality files")
    p.set_defaults(func=run)


def run(args) -> int:
    from avvp.stages.refine.stages import run_drop_quality

    pooled = run_drop_quality(args.drops, args.manifest, args.out_dir, args.annotations)
    for _, row in pooled[pooled["class"] == "all"].iterrows():
        print(f"{row['modality']}: {int(row['dropped'])} drops, precision {100 * row['precision']:.1f}%, "
              f"recall {100 * row['recall']:.1f}%")
    return 0
