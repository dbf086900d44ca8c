"""``avvp teach``: segment-level pseudo labels (VALOR's teachers): make, import, export, score."""

from __future__ import annotations

import json
import logging

from avvp.core.annotations import ANNOTATION_VERSIONS
from avvp.settings import default

log = logging.getLogger(__name__)
MODALITIES = ("audio", "visual")


def _annotations(p, required: bool = True) -> None:
    p.add_argument("--annotations", required=required, help="folder with the LLP-format annotation CSVs")
    p.add_argument("--version", default=default("data.annotation_version"), choices=ANNOTATION_VERSIONS,
                   help="annotation version of the dense audio file "
                        f"(default: data.annotation_version, {default('data.annotation_version')})")


def register(sub) -> None:
    p = sub.add_parser("teach", help="segment-level pseudo labels from modality-independent teachers (VALOR)")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = actions.add_parser("labels", help="threshold a teacher store's scores into pseudo labels (weak labels only)")
    a.add_argument("--modality", required=True, choices=MODALITIES)
    a.add_argument("--scores", required=True, help="teacher store (.h5 with a 'scores' dataset (N, T, C))")
    _annotations(a)
    a.add_argument("--thresholds", default=None,
                   help="JSON list of one threshold per class (default: the store's own, else VALOR's official)")
    a.add_argument("--out", required=True, help="pseudo-label file to write (.parquet)")
    a.set_defaults(func=run_labels)

    a = actions.add_parser("export", help="write pseudo labels in VALOR's layout (segment_pseudo_labels/<id>.npy)")
    a.add_argument("--labels", required=True, help="pseudo-label file (.parquet)")
    a.add_argument("--out", required=True, help="teacher folder; writes <out>/segment_pseudo_labels/")
    a.set_defaults(func=run_export)

    a = actions.add_parser("import", help="read pseudo labels in VALOR's layout; broken files go to a failure table")
    a.add_argument("--folder", required=True, help="teacher folder holding segment_pseudo_labels/ (or that folder)")
    a.add_argument("--modality", required=True, choices=MODALITIES)
    _annotations(a)
    a.add_argument("--out", required=True, help="pseudo-label file to write (.parquet)")
    a.add_argument("--failures", required=True, help="failure table to write (.parquet)")
    a.set_defaults(func=run_import)

    a = actions.add_parser("release", help="import VALOR's released CLIP/ and CLAP/ folders (features and labels)")
    a.add_argument("--folder", required=True, help="folder holding CLIP/ and CLAP/ (unpacked CLIP.zip, CLAP.zip)")
    _annotations(a)
    a.add_argument("--features-dir", required=True, help="writes clip_image.h5 and clap_audio.h5 here")
    a.add_argument("--pseudo-dir", required=True, help="writes audio.parquet and visual.parquet here")
    a.add_argument("--failures", required=True, help="failure table to write (.parquet)")
    a.set_defaults(func=run_release)

    a = actions.add_parser("score", help="score the pseudo labels as predictions with the LLP protocol")
    a.add_argument("--audio", required=True, help="audio pseudo labels (.parquet)")
    a.add_argument("--visual", required=True, help="visual pseudo labels (.parquet)")
    _annotations(a)
    a.add_argument("--split", default="test",
                   help="val, test, or train (against the true training labels, demo only)")
    a.add_argument("--out", required=True, help="output folder")
    a.set_defaults(func=run_score)

    a = actions.add_parser("standin", help="the demo's stand-in teacher: train on a disjoint pool, score the data set")
    a.add_argument("--modality", required=True, choices=MODALITIES)
    a.add_argument("--pool", required=True, help="the pool's results folder (annotations/, features/)")
    a.add_argument("--features-dir", required=True, help="the data set's feature stores")
    _annotations(a)
    a.add_argument("--settings", default=None, help="teacher settings (JSON or a file): hidden, epochs, lr, ...")
    a.add_argument("--model", required=True, help="teacher file to write (.pt)")
    a.add_argument("--scores", required=True, help="teacher store to write (.h5)")
    a.set_defaults(func=run_standin)


def _read(args):
    from avvp.core.annotations import read_llp

    return read_llp(args.annotations, version=args.version)


def run_labels(args) -> int:
    from avvp.infra.errors import ConfigError
    from avvp.core.feature_store import read_ids
    from avvp.core.pseudo_labels import write_pseudo_labels
    from avvp.stages.teachers.pseudo import teach

    ann = _read(args)
    try:
        given = None if args.thresholds is None else json.loads(args.thresholds)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--thresholds is not a JSON list: {exc}") from None
    held = set(read_ids(args.scores))
    ids = [v for v in ann.videos["video_id"] if v in held]
    if len(ids) < len(ann.videos):
        log.warning("%d of %d videos have no teacher scores in %s and get no pseudo labels",
                    len(ann.videos) - len(ids), len(ann.videos), args.scores)
    labels = teach(args.modality, args.scores, ids, ann.classes, ann.weak(ids), given)
    write_pseudo_labels(args.out, labels)
    positive = labels.labels.mean() * 100 if labels.labels.size else 0.0
    print(f"{len(ids)} videos, {positive:.1f}% positive segment-class entries, thresholds "
          f"{labels.source['thresholds']} -> {args.out}")
    return 0


def run_export(args) -> int:
    from avvp.core.pseudo_labels import read_pseudo_labels
    from avvp.stages.teachers.npy import export_npy

    labels = read_pseudo_labels(args.labels)
    folder = export_npy(labels, args.out)
    print(f"{len(labels.video_ids)} files -> {folder}")
    return 0


def run_import(args) -> int:
    from avvp.infra.atomic import write_parquet
    from avvp.core.pseudo_labels import write_pseudo_labels
    from avvp.stages.teachers.npy import import_npy

    ann = _read(args)
    labels, failures = import_npy(args.folder, args.modality, list(ann.videos["video_id"]), ann.classes)
    write_pseudo_labels(args.out, labels)
    write_parquet(args.failures, failures)
    print(f"{len(labels.video_ids)} of {len(ann.videos)} videos imported -> {args.out}; "
          f"{len(failures)} failure rows -> {args.failures}")
    return 0


def run_release(args) -> int:
    from avvp.stages.teachers.release import import_release

    ann = _read(args)
    ids = list(ann.videos["video_id"])
    rep = import_release(args.folder, ids, ann.classes, ann.weak(ids), args.features_dir, args.pseudo_dir,
                         args.failures)
    print(f"features {rep.features}, labels {rep.labels} of {len(ids)} videos; "
          f"{len(rep.failures)} failure rows -> {args.failures}")
    return 0


def run_score(args) -> int:
    from avvp.core.table_layout import table1, to_text
    from avvp.core.pseudo_labels import read_pseudo_labels
    from avvp.stages.teachers.score import score_split

    ann = _read(args)
    audio = read_pseudo_labels(args.audio, "audio", ann.classes)
    visual = read_pseudo_labels(args.visual, "visual", ann.classes)
    result = score_split(audio, visual, ann, args.split, args.out, source=args.audio)
    print(to_text(table1(result.overall)))
    print(f"-> {args.out}")
    return 0


def run_standin(args) -> int:
    from avvp.stages.teachers.standin import run_standin as standin

    ann = _read(args)
    info = standin(args.modality, args.pool, args.features_dir, list(ann.videos["video_id"]), ann.classes,
                   args.model, args.scores, args.settings)
    print(f"{args.modality} stand-in teacher: {info['pool_train']} pool videos to train, "
          f"{info['pool_held_out']} to choose the thresholds {info['thresholds']} -> {args.scores}")
    return 0
