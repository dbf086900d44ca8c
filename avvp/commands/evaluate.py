"""``avvp evaluate``: score a predictions file with the LLP protocol; write metrics, tables, pictures."""

from __future__ import annotations

from avvp.core.annotations import ANNOTATION_VERSIONS, read_llp
from avvp.infra.errors import ConfigError
from avvp.stages.evaluate import describe, evaluate_predictions, write_outputs
from avvp.core.metrics import GATES
from avvp.core.prediction_file import Predictions
from avvp.settings import default
from avvp.core.table_layout import table1, to_text


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score predictions with the LLP protocol (segment/event-level F1)")
    p.add_argument("--predictions", required=True, help="predictions file (.npz, see avvp.core.prediction_file)")
    p.add_argument("--annotations", required=True, help="folder with the LLP-format annotation CSVs")
    p.add_argument("--split", default="test", help="split to score: val or test (default: test)")
    p.add_argument("--gate", default=default("evaluate.gate"), choices=GATES,
                   help="video-level gate: han = global probability, ma = each modality's own "
                        f"(default: evaluate.gate, {default('evaluate.gate')})")
    p.add_argument("--version", default=default("data.annotation_version"), choices=ANNOTATION_VERSIONS,
                   help="annotation version of the dense audio file "
                        f"(default: data.annotation_version, {default('data.annotation_version')})")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold (protocol: 0.5)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--timeline-videos", type=int, default=default("evaluate.timeline_videos"),
                   help=f"videos shown in timeline.png (default: {default('evaluate.timeline_videos')})")
    p.add_argument("--timeline-ids", nargs="+", default=None, metavar="VIDEO_ID",
                   help="show these videos in timeline.png instead")
    p.add_argument("--allow-missing", action="store_true",
                   help="score the split's videos the predictions cover (e.g. a release lacking some "
                        "videos' features) instead of refusing; the outputs say how many are scored")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="extra field recorded in metrics.json (repeatable), e.g. variant=ma")
    p.set_defaults(func=run)


def _meta(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--meta {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def run(args) -> int:
    meta = _meta(args.meta)
    if args.timeline_videos < 0:
        raise ConfigError(f"--timeline-videos must be ≥ 0, got {args.timeline_videos}")
    ann = read_llp(args.annotations, version=args.version)
    pred = Predictions.load(args.predictions)
    result = evaluate_predictions(pred, ann, split=args.split, gate=args.gate,
                                  threshold=args.threshold, source=args.predictions,
                                  allow_missing=args.allow_missing)
    paths = write_outputs(result, args.out, ann, pred, timeline_videos=args.timeline_videos,
                          meta=meta, timeline_ids=args.timeline_ids)
    print(describe({**result.meta, **meta}))
    print(to_text(table1(result.overall)))
    print(f"-> {paths['metrics'].parent}")
    return 0
