"""``avvp pool-frames``: average the frame store to one row per segment, once (``frame_pooled.h5``)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("pool-frames",
                       help="write <features-dir>/frame_pooled.h5: frame.h5 averaged to one row per "
                            "segment, which train, refine and predict then read instead")
    p.add_argument("--features-dir", required=True, help="folder with frame.h5 and audio.h5")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, provenance_inputs=_inputs)


def _inputs(args) -> list:
    from pathlib import Path

    return [Path(args.features_dir) / name for name in ("frame.h5", "audio.h5")]


def run(args) -> int:
    from avvp.core.pooled_store import pool_store

    out = pool_store(args.features_dir, progress=not args.no_progress)
    print(f"-> {out}")
    return 0
