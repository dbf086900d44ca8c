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
    from avvp.core.feature_roles import store_file

    return [store_file(args.features_dir, role) for role in ("frame", "audio")]


def run(args) -> int:
    from avvp.core.pooled_store import pool_store

    out = pool_store(args.features_dir, progress=not args.no_progress)
    print(f"-> {out}")
    return 0
