"""Read any folder of LLP-format annotation files, as the official code reads them.

An LLP folder holds tab-separated CSVs with a header row:

* weak labels ``AVVP_train.csv``, ``AVVP_val_pd.csv``, ``AVVP_test_pd.csv``
  (``filename``, ``event_labels``: comma-separated class names);
* dense truth ``AVVP_eval_audio.csv``, ``AVVP_eval_visual.csv``
  (``filename``, ``onset``, ``offset``, ``event_labels``: one class per row, whole seconds).

``filename`` is ``<11-character YouTube id>_<start>_<end>``. Dense rows whose onset ≥ offset and
rows whose file name matches no video ("orphans") add nothing, as in the official evaluation.
Same-class rows that overlap or touch merge into one event. The synthetic demo data set writes the
same files, plus ``classes.txt`` and the true per-modality labels of its training videos
(``AVVP_train_audio.csv``, ``AVVP_train_visual.csv``, dense format).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from avvp.core.classes import load_classes
from avvp.infra.errors import InputError
from avvp.infra.paths import check_llp_name

log = logging.getLogger(__name__)

SPLIT_FILES = {"train": "AVVP_train.csv", "val": "AVVP_val_pd.csv", "test": "AVVP_test_pd.csv"}
DENSE_FILES = {"audio": "AVVP_eval_audio.csv", "visual": "AVVP_eval_visual.csv"}
TRAIN_TRUTH_FILES = {"audio": "AVVP_train_audio.csv", "visual": "AVVP_train_visual.csv"}
FULL_FILE = "AVVP_dataset_full.csv"
WEAK_COLUMNS = ("filename", "event_labels")
DENSE_COLUMNS = ("filename", "onset", "offset", "event_labels")
#: Columns of the merged dense event tables (``Annotations.audio`` etc., ``dense_*.parquet``).
EVENT_COLUMNS = ("video_id", "class", "onset", "offset")
ID_LENGTH = 11

#: sha256 of the six files at AVVP-ECCV20 commit fde5611 (the current annotation version).
LLP_SHA256 = {
    "AVVP_dataset_full.csv": "89f112ffc602279c87cc2b2040c4cd42eaf163a9d7e61cf4e74250a343d21e56",
    "AVVP_eval_audio.csv": "d5435664668bec6e7eafb39059d2f424ed2682f6b55395262fc3cb691b7d0778",
    "AVVP_eval_visual.csv": "e2274af694f3f27e38b840e0cd91a9d8d9ac85280f193e90828d26b22db69abe",
    "AVVP_test_pd.csv": "3f7a2b040e3b67c15d08efef25002bf8c5b2320f11049eb99ae0eb2d62f8eb9b",
    "AVVP_train.csv": "bbeb83e8af46a85075216b213d3464f92dd4ab71468c852ae454b82cc745c0a4",
    "AVVP_val_pd.csv": "1811813b54c5f43c3be0a97bd0971cfb8a93818ca7b3ab96cdc7f4ac37ef37a6",
}

#: The three test-set audio events that the pre-2024 ``AVVP_eval_audio.csv`` lacks:
#: (file name, class, onset, offset).
PRE2024_MISSING_AUDIO = (
    ("JfZEqeLZqWk_30_40", "Speech", 0, 4),
    ("JfZEqeLZqWk_30_40", "Speech", 7, 10),
    ("KvIjsmANkxI_10_20", "Cat", 0, 1),
)
ANNOTATION_VERSIONS = ("current", "pre2024")


@dataclass
class Annotations:
    """One LLP-format data set.

    Attributes:
        folder: where the files were read from.
        classes: class names in index order.
        videos: one row per video: ``video_id`` (the full file name), ``youtube_id``, ``start``,
            ``end``, ``split``, ``labels`` (list of class names, no repeats, in class order).
        audio, visual: merged dense events of the val and test videos: ``video_id``, ``class``,
            ``onset``, ``offset`` (whole seconds, onset < offset).
        train_audio, train_visual: the same for the training videos where the data set knows the
            truth (the synthetic demo); empty otherwise.
        version: the annotation version of the dense audio file ("current" or "pre2024").
    """

    folder: Path
    classes: list[str]
    videos: pd.DataFrame
    audio: pd.DataFrame
    visual: pd.DataFrame
    train_audio: pd.DataFrame = field(default_factory=lambda: _empty_dense())
    train_visual: pd.DataFrame = field(default_factory=lambda: _empty_dense())
    version: str = "current"

    def split(self, name: str) -> pd.DataFrame:
        """The videos of one split, in file order."""
        return self.videos[self.videos["split"] == name].reset_index(drop=True)

    def weak(self, video_ids) -> np.ndarray:
        """Multi-hot weak labels (N, C) float32 for ``video_ids``."""
        return weak_matrix(self.videos.set_index("video_id").loc[list(video_ids), "labels"], self.classes)

    def dense(self, modality: str, video_ids, n_segments: int = 10) -> np.ndarray:
        """Dense truth (N, C, T) uint8 for ``video_ids``; modality 'audio', 'visual' or 'av'."""
        if modality == "av":
            return self.dense("audio", video_ids, n_segments) & self.dense("visual", video_ids, n_segments)
        table = {"audio": self.audio, "visual": self.visual}[modality]
        return dense_matrix(table, video_ids, self.classes, n_segments)


def _empty_dense() -> pd.DataFrame:
    return pd.DataFrame({"video_id": pd.Series(dtype=str), "class": pd.Series(dtype=str),
                         "onset": pd.Series(dtype=int), "offset": pd.Series(dtype=int)})


def youtube_id(filename: str) -> str:
    """The YouTube id of an LLP file name: its first 11 characters."""
    return filename[:ID_LENGTH]


def parse_window(filename: str, path: Path | None = None, line: int | None = None) -> tuple[float, float]:
    """(start, end) in seconds from ``<id>_<start>_<end>``; the id itself may contain '_'.

    The whole name is checked (:func:`avvp.infra.paths.check_llp_name`): the id is 11 characters of
    ``[A-Za-z0-9_-]``, start and end are plain decimal numbers, so no name can reach the
    filesystem as anything but one file name.
    """
    match = check_llp_name(filename, path, line)
    start, end = float(match["start"]), float(match["end"])
    if end <= start:
        raise InputError(path, f"file name {filename!r} ends before it starts", line)
    return start, end


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """(file line number, fields) of each data row; checks the header and the field count."""
    if not path.exists():
        raise InputError(path, "file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                         raw[:exc.start].count(b"\n") + 1) from None
    with io.StringIO(text, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            raise InputError(path, "empty file (no header row)", 1) from None
        header = [h.strip() for h in header]
        missing = [c for c in columns if c not in header]
        if missing:
            raise InputError(path, f"missing column(s) {', '.join(missing)}; header is {header}", 1)
        index = [header.index(c) for c in columns]
        rows = []
        end = reader.line_num
        for fields in reader:
            lineno, end = end + 1, reader.line_num  # a quoted field may span lines
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise InputError(path, f"malformed row: {len(fields)} fields, expected {len(header)}", lineno)
            rows.append((lineno, [fields[i].strip() for i in index]))
    return rows


def _class_list(text: str, known: dict[str, int], path: Path, line: int) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError(path, "no event label", line)
    for n in names:
        if n not in known:
            raise InputError(path, f"unknown class name {n!r}", line)
    return sorted(set(names), key=known.__getitem__)


def read_weak(path: str | Path, classes: list[str], split: str | None = None) -> pd.DataFrame:
    """Read one weak-label file into the ``videos`` layout of :class:`Annotations`."""
    path = Path(path)
    known = {c: i for i, c in enumerate(classes)}
    records = []
    for lineno, (name, labels) in _read_rows(path, WEAK_COLUMNS):
        start, end = parse_window(name, path, lineno)
        records.append({
            "video_id": name, "youtube_id": youtube_id(name), "start": start, "end": end,
            "split": split, "labels": _class_list(labels, known, path, lineno),
        })
    frame = pd.DataFrame.from_records(
        records, columns=["video_id", "youtube_id", "start", "end", "split", "labels"])
    dup = frame["video_id"].duplicated()
    if dup.any():
        raise InputError(path, f"video {frame.loc[dup, 'video_id'].iloc[0]!r} is listed twice")
    return frame


#: Orphan rows named one by one in the log (the rest are counted).
MAX_NAMED = 20


def read_dense(path: str | Path, classes: list[str], video_ids=None, drop=()) -> pd.DataFrame:
    """Read a dense file into merged events; orphans (not in ``video_ids``) and empty rows are ignored.

    ``drop`` lists (file name, class, onset, offset) rows to leave out (used for annotation versions).
    """
    path = Path(path)
    known = {c: i for i, c in enumerate(classes)}
    wanted = None if video_ids is None else set(video_ids)
    drop = set(drop)
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    orphans: list[str] = []
    degenerate = 0
    for lineno, (name, onset, offset, label) in _read_rows(path, DENSE_COLUMNS):
        try:
            on, off = int(float(onset)), int(float(offset))
        except ValueError:
            raise InputError(path, f"onset/offset {onset!r}/{offset!r} are not numbers", lineno) from None
        if label not in known:
            raise InputError(path, f"unknown class name {label!r}", lineno)
        if wanted is not None and name not in wanted:
            orphans.append(f"line {lineno}: {name} ({label})")
            continue
        if (name, label, on, off) in drop:
            continue
        if on > off:
            log.warning("%s, line %d: onset %s is after offset %s (%s, %s); row ignored",
                        path, lineno, onset, offset, name, label)
        if on >= off:
            degenerate += 1
            continue
        spans.setdefault((name, label), []).append((on, off))
    if orphans or degenerate:
        log.info("%s: ignored %d orphan rows and %d rows with onset >= offset", path.name, len(orphans),
                 degenerate)
    if orphans:
        more = f" (+{len(orphans) - MAX_NAMED} more)" if len(orphans) > MAX_NAMED else ""
        log.warning("%s: %d rows name a video that is not in the annotations' video list and were "
                    "ignored: %s%s", path, len(orphans), "; ".join(orphans[:MAX_NAMED]), more)
    records = []
    for (name, label), items in spans.items():
        for on, off in _merge(items):
            records.append((name, label, on, off))
    frame = pd.DataFrame.from_records(records, columns=list(EVENT_COLUMNS))
    if frame.empty:
        return _empty_dense()
    return frame.sort_values(["video_id", "class", "onset"], key=_sort_key(known)).reset_index(drop=True)


def _sort_key(known: dict[str, int]):
    def key(col: pd.Series) -> pd.Series:
        return col.map(known) if col.name == "class" else col
    return key


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping or touching [on, off) spans."""
    out: list[list[int]] = []
    for on, off in sorted(spans):
        if out and on <= out[-1][1]:
            out[-1][1] = max(out[-1][1], off)
        else:
            out.append([on, off])
    return [tuple(s) for s in out]


def read_llp(folder: str | Path, version: str = "current", clips: str | Path | None = None) -> Annotations:
    """Read an LLP-format folder.

    Args:
        folder: holds the split CSVs and the dense CSVs (and optionally ``classes.txt``).
        version: "current" reads the dense audio file as it is; "pre2024" leaves out the three
            test audio events that the pre-2024 file lacks, reproducing the annotations that
            published results before 2024 used.
        clips: a folder of raw clips named ``<youtube id>.<ext>``; found paths go in ``path``.
    """
    if version not in ANNOTATION_VERSIONS:
        raise InputError(None, f"unknown annotation version {version!r} (known: {', '.join(ANNOTATION_VERSIONS)})")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "annotation folder not found")
    classes = load_classes(folder)
    videos = pd.concat([read_weak(folder / f, classes, split) for split, f in SPLIT_FILES.items()],
                       ignore_index=True)
    dup = videos["video_id"].duplicated()
    if dup.any():
        raise InputError(folder, f"video {videos.loc[dup, 'video_id'].iloc[0]!r} is in two splits")
    ids = set(videos["video_id"])
    drop = PRE2024_MISSING_AUDIO if version == "pre2024" else ()
    audio = read_dense(folder / DENSE_FILES["audio"], classes, ids, drop)
    visual = read_dense(folder / DENSE_FILES["visual"], classes, ids)
    truth = {}
    for modality, name in TRAIN_TRUTH_FILES.items():
        path = folder / name
        truth[modality] = read_dense(path, classes, ids) if path.exists() else _empty_dense()
    videos["path"] = None
    if clips is not None:
        videos["path"] = find_clips(clips, videos["youtube_id"])
    return Annotations(folder, classes, videos, audio, visual, truth["audio"], truth["visual"], version)


CLIP_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


def find_clips(folder: str | Path, youtube_ids) -> list[str | None]:
    """Path of ``<folder>/<id>.<ext>`` for each id, or None where no such file exists."""
    folder = Path(folder)
    present = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if p.suffix.lower() in CLIP_EXTENSIONS:
                present.setdefault(p.stem, str(p))
    return [present.get(i) for i in youtube_ids]


def weak_matrix(labels, classes: list[str]) -> np.ndarray:
    """Multi-hot (N, C) float32 from an iterable of class-name lists."""
    index = {c: i for i, c in enumerate(classes)}
    labels = list(labels)
    out = np.zeros((len(labels), len(classes)), dtype=np.float32)
    for row, names in enumerate(labels):
        for n in names:
            out[row, index[n]] = 1.0
    return out


def dense_matrix(events: pd.DataFrame, video_ids, classes: list[str], n_segments: int = 10) -> np.ndarray:
    """(N, C, T) uint8 truth: ``M[v, c, onset:offset] = 1``, clipped to T segments."""
    video_ids = list(video_ids)
    row = {v: i for i, v in enumerate(video_ids)}
    col = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(video_ids), len(classes), n_segments), dtype=np.uint8)
    for vid, cls, on, off in events[["video_id", "class", "onset", "offset"]].itertuples(index=False):
        r = row.get(vid)
        if r is not None:
            out[r, col[cls], max(int(on), 0):min(int(off), n_segments)] = 1
    return out


def manifest(ann: Annotations) -> pd.DataFrame:
    """The Parquet manifest: one row per video (id, YouTube id, window, split, labels, clip path)."""
    return ann.videos[["video_id", "youtube_id", "start", "end", "split", "labels", "path"]].copy()


def write_tables(ann: Annotations, out_dir: str | Path) -> dict[str, Path]:
    """Write ``manifest.parquet`` and the dense tables (``dense_audio.parquet``, ...) atomically."""
    from avvp.infra.atomic import write_parquet

    out_dir = Path(out_dir)
    written = {"manifest": out_dir / "manifest.parquet"}
    write_parquet(written["manifest"], manifest(ann))
    for name, table in (("audio", ann.audio), ("visual", ann.visual),
                        ("train_audio", ann.train_audio), ("train_visual", ann.train_visual)):
        path = out_dir / f"dense_{name}.parquet"
        write_parquet(path, table)
        written[name] = path
    return written

