"""``avvp synth``: plan the synthetic demo data set (annotations) and render its clips."""

from __future__ import annotations

from avvp.settings import default


def register(sub) -> None:
    p = sub.add_parser("synth", help="the embedded synthetic demo data set: plan annotations, render clips")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    plan = actions.add_parser("plan", help="write the LLP-format annotation folder of a seeded event plan")
    plan.add_argument("--settings", default=None, help="synth settings: inline JSON or a YAML/JSON file")
    plan.add_argument("--out", required=True, help="annotation folder to write")
    plan.add_argument("--id-prefix", default="S",
                      help="first letter of the video ids (default S; another letter makes videos no "
                           "default plan holds)")
    plan.set_defaults(func=run_plan)
    render = actions.add_parser("render", help="render one shard of the planned videos into MP4 clips")
    render.add_argument("--annotations", required=True, help="annotation folder written by `avvp synth plan`")
    render.add_argument("--settings", default=None, help="synth settings: inline JSON or a YAML/JSON file")
    render.add_argument("--shard", type=int, default=0, help="this shard's index (default 0)")
    render.add_argument("--shards", type=int, default=default("synth.shards"),
                        help=f"number of shards (default: synth.shards, {default('synth.shards')})")
    render.add_argument("--out", required=True, help="clips folder")
    render.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    render.set_defaults(func=run_render)


def run_plan(args) -> int:
    from avvp.stages.synth import make_plan, resolve, write_annotations

    plan = make_plan(resolve(args.settings), args.id_prefix)
    write_annotations(plan, args.out)
    events = sum(len(v["events"]) for v in plan["videos"])
    print(f"planned {len(plan['videos'])} videos, {events} events, {len(plan['classes'])} classes -> {args.out}")
    return 0


def run_render(args) -> int:
    from avvp.stages.synth import render_shard, resolve

    table = render_shard(args.annotations, resolve(args.settings), args.shard, args.shards, args.out,
                         progress=not args.no_progress)
    print(f"shard {args.shard}/{args.shards}: {len(table)} clips in {args.out}")
    return 0
