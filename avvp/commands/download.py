"""``avvp download``: fetch the LLP source videos with yt-dlp (resumable; failures are tabled)."""

from __future__ import annotations

from avvp.stages.download import FAILURES, TABLE, download_settings, download_videos, load_targets
from avvp.settings import parse_settings


def register(sub) -> None:
    p = sub.add_parser(
        "download",
        help="download the LLP videos with yt-dlp into <out>/<youtube id>.<ext> (kept uncut)",
        description="Download the videos listed in an LLP annotation folder or a manifest. Files "
        f"are stored as they are; <out>/{TABLE} records each video's window [start, end) in its "
        f"file and <out>/{FAILURES} the videos that failed (video_id, stage, reason). A rerun "
        "skips what is already there and, unless --retry-failed, what failed before.",
    )
    p.add_argument("source", help="LLP annotation folder or manifest.parquet")
    p.add_argument("--out", required=True, help="clips folder")
    p.add_argument("--settings", default=None,
                   help="download settings (inline JSON or a YAML/JSON file): url_template, format, "
                   "retries, socket_timeout, sleep_interval, cookies, max_filesize, splits, retry_failed")
    p.add_argument("--retry-failed", action="store_true", help="try the failed videos again")
    p.add_argument("--ids", nargs="+", default=None, help="only these videos (LLP names or YouTube ids)")
    p.add_argument("--limit", type=int, default=None, help="only the first N videos (a trial run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    settings = download_settings(parse_settings(args.settings))
    targets = load_targets(args.source, splits=settings["splits"], ids=args.ids, limit=args.limit)
    retry = args.retry_failed or bool(settings["retry_failed"])
    report = download_videos(targets, args.out, settings, retry_failed=retry,
                             progress=not args.no_progress)
    print(f"{len(targets)} videos: {report.summary()}")
    if report.failed:
        print(f"failures listed in {args.out}/{FAILURES}")
    return 0
