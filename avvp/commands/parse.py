"""``avvp parse``: turn videos into audio / visual / audio-visual event tables with a trained model."""

from __future__ import annotations

from avvp.stages.parse import parse_videos
from avvp.settings import default, parse_settings


def register(sub) -> None:
    p = sub.add_parser(
        "parse",
        help="parse videos (any length, any container the decoder reads) into events",
        description="For each video, write <out>/<file stem>/events.json, events.csv and "
        "timeline.png: the events (class, modality, onset, offset, confidence) found in whole "
        "1-s segments (the tail after the last whole second is not parsed). A video that cannot "
        "be parsed is reported and the others go on; the exit code is 1 if any failed.",
    )
    p.add_argument("videos", nargs="+", help="video files, or folders of video files")
    p.add_argument("--model", required=True, help="model file (avvp model.pt or an official MMIL_Net.pt)")
    p.add_argument("--out", default=default("parse.out"),
                   help=f"output folder (default: {default('parse.out')})")
    p.add_argument("--settings", default=None,
                   help="parse settings (inline JSON or a YAML/JSON file): gate (ma|han), "
                   "threshold, device, batch_size, window, timeline, ... (docs/configuration.md, section parse)")
    p.add_argument("--gate", choices=("ma", "han"), default=None,
                   help="video-level gate of the binarisation (overrides the settings; default: parse.gate, "
                        f"{default('parse.gate')})")
    p.add_argument("--features", default=None,
                   help="feature-extractor settings (a 'features' config section, inline JSON or "
                   "a file) to use instead of those recorded in the model file")
    p.add_argument("--config", default="config.yaml",
                   help="config whose 'features' section is used when the model file records no "
                   "extractor settings (official checkpoints, imported features); default config.yaml")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    settings = parse_settings(args.settings)
    if args.gate is not None:
        settings["gate"] = args.gate
    features = parse_settings(args.features) if args.features else None
    summary = parse_videos(args.videos, args.model, args.out, settings, features=features,
                           config=args.config, progress=not args.no_progress)
    print(summary.text())
    return 1 if summary.failed else 0
