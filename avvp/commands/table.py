"""``avvp table``: one of the paper's tables, mean ± std over seeds, from the evaluation results."""

from __future__ import annotations

from pathlib import Path

from avvp.experiments import TABLES, table_defaults
from avvp.settings import merge_settings, parse_settings


def register(sub) -> None:
    p = sub.add_parser(
        "table", help="build one of the paper's tables (mean ± std over seeds): Markdown, CSV, picture",
        description="Reads <results>/eval/<variant>/seed<k>/<split>/metrics.json for every row "
                    "variant of the table and every seed. Tables: table1 (HAN vs MA), table2 "
                    "(baseline, +C, +R, +C+R), table3 (refine audio / visual / both), table4 (tau), "
                    "denoising (MA, JoMoLD), methods (baseline, MA, JoMoLD, VALOR), official (each "
                    "method once, at its official code's seed); with 'published': true the methods "
                    "and official tables show the published LLP numbers beside each cell.")
    p.add_argument("table", choices=TABLES, help="which table")
    p.add_argument("--results", required=True, help="the data set's results folder")
    p.add_argument("--settings", default=None,
                   help='inline JSON or a file: {"seeds": [...], "taus": [...], "tau": default tau, '
                        '"split": "test", "table1_baseline": "baseline" | "han" (Table 1\'s and the official '
                        'table\'s HAN row), "published": false, "teacher_features": false (VALOR++ rows)}')
    p.add_argument("--out", default=None, help="the Markdown file (default: <results>/tables/<table>.md); "
                                               ".csv and .png are written beside it")
    p.add_argument("--decimals", type=int, default=1, help="decimals in the Markdown (default: 1)")
    p.set_defaults(func=run, provenance_inputs=_inputs)


def _inputs(args) -> list[Path]:
    """The evaluation results a table reads (for its provenance record)."""
    return sorted(Path(args.results).glob("eval/*/seed*/*/metrics.json"))


def run(args) -> int:
    from avvp.stages.paper_tables import write_table

    settings = merge_settings(table_defaults(), parse_settings(args.settings), "table")
    md = Path(args.out) if args.out else Path(args.results) / "tables" / f"{args.table}.md"
    write_table(args.table, args.results, settings, md, md.with_suffix(".csv"), md.with_suffix(".png"),
                args.decimals)
    print(md.read_text(), end="")
    return 0
