"""``avvp manifest``: read an LLP-format folder into the Parquet manifest and dense tables."""

from __future__ import annotations

from avvp.core.annotations import ANNOTATION_VERSIONS, read_llp, write_tables
from avvp.settings import default


def register(sub) -> None:
    p = sub.add_parser("manifest", help="read LLP-format annotations into manifest.parquet and dense tables")
    p.add_argument("folder", help="folder with the LLP annotation CSVs")
    p.add_argument("--out", required=True, help="output folder (the data set's results folder)")
    p.add_argument("--version", default=default("data.annotation_version"), choices=ANNOTATION_VERSIONS,
                   help="annotation version of the dense audio file "
                        f"(default: data.annotation_version, {default('data.annotation_version')})")
    p.add_argument("--clips", default=None, help="folder of raw clips named <youtube id>.<ext>")
    p.set_defaults(func=run)


def run(args) -> int:
    ann = read_llp(args.folder, version=args.version, clips=args.clips)
    written = write_tables(ann, args.out)
    counts = ann.videos["split"].value_counts().to_dict()
    print(f"{len(ann.videos)} videos {counts}, {len(ann.classes)} classes, "
          f"{len(ann.audio)} audio and {len(ann.visual)} visual events -> {written['manifest']}")
    return 0
