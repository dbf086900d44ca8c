"""``avvp extract``: features of one or more roles for one shard of the manifest, one decode per clip."""

from __future__ import annotations

from avvp.infra.errors import ConfigError
from avvp.core.feature_store import EXTRACT_ROLES, ROLES


def register(sub) -> None:
    p = sub.add_parser("extract", help="extract features of one or more roles for one manifest shard")
    p.add_argument("--manifest", required=True, help="manifest.parquet (from avvp manifest)")
    p.add_argument("--role", required=True, nargs="+", choices=(*EXTRACT_ROLES, "all"),
                   help="which features: one or more of audio, frame, clip (all: these three) and "
                        "VALOR's teachers clip_image, clap_audio; each clip is decoded once for all")
    p.add_argument("--settings", default=None,
                   help="the features config section: inline JSON or a YAML/JSON file")
    p.add_argument("--shard", type=int, default=0, help="shard index (0-based, default 0)")
    p.add_argument("--shards", type=int, default=None,
                   help="number of shards (default: features.shards of the settings)")
    p.add_argument("--out", required=True,
                   help="shard feature store (.h5); with several roles a path holding {role}")
    p.add_argument("--failures", required=True,
                   help="failure table (.parquet); with several roles a path holding {role}")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: features.threads)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def role_paths(template: str, roles: list[str], what: str) -> dict[str, str]:
    """role → path from ``--out`` / ``--failures`` (``{role}`` is required with several roles)."""
    if len(roles) > 1 and "{role}" not in template:
        raise ConfigError(f"--{what} must hold {{role}} when several roles are extracted, got {template!r}")
    return {role: template.replace("{role}", role) for role in roles}


def run(args) -> int:
    import torch

    from avvp.stages.extraction import extract_job, feature_settings, read_manifest

    roles = list(ROLES) if "all" in args.role else list(dict.fromkeys(args.role))
    outs = role_paths(args.out, roles, "out")
    failures = role_paths(args.failures, roles, "failures")
    settings = feature_settings(args.settings)
    torch.set_num_threads(args.threads or settings["threads"])
    shards = args.shards or settings["shards"]
    report = extract_job(read_manifest(args.manifest), roles, settings, args.shard, shards, outs, failures,
                         progress=not args.no_progress)
    for role, r in report.roles.items():
        note = "kept (same clips, settings and weights)" if r.kept else f"{r.resumed} resumed"
        warnings = len(r.failures) - r.errors
        print(f"{role} shard {args.shard} of {shards}: {r.videos} videos {r.shape}, {r.errors} failures, "
              f"{warnings} warnings, {note} -> {outs[role]}")
    wall = report.wall_s or 1e-9
    print(f"{report.clips} clips in {report.wall_s:.2f} s ({report.clips / wall:.3f} clips/s): forward passes "
          f"{report.forward_s - report.setup_s:.2f} s ({100 * (report.forward_s - report.setup_s) / wall:.0f}%), "
          f"compiling the models {report.setup_s:.2f} s, waiting for decoded clips {report.wait_s:.2f} s "
          f"({100 * report.wait_share:.0f}%)")
    return 0
