"""A stand-in for the official LLP feature release, built from LLP annotation files.

The official features cannot be downloaded everywhere, yet the pipeline must be
rehearsed at their full size and layout. :func:`write_release` writes, for every video of a folder
of LLP annotation files, ``feats/vggish/<11-char id>.npy`` (10, 128), ``feats/res152/<id>.npy``
(80, 2048) and ``feats/r2plus1d_18/<id>.npy`` (10, 512), float32, exactly as the release lays them
out, plus ``annotations/``: the annotation files and the true per-modality labels of the training
videos (``AVVP_train_audio.csv`` / ``AVVP_train_visual.csv``, as the demo writes them).

The features carry a learnable signal: one fixed random unit direction per class and store,
scaled by ``signal.<role>``, added to the rows of every segment where the class is present in the
store's modality (audio: the VGGish row of that second; visual: the 8 ResNet rows and the
R(2+1)D row of that second), on top of Gaussian noise of standard deviation ``noise``.

Where the events are:

* val and test videos: the real dense annotations (the current, 2024 files);
* training videos: each weak label (video, class) copies the audio and visual segments of one
  val/test video where that class occurs, drawn at random among them. So a training label is
  audible only, visible only or both in the proportions, and with the event lengths, of the real
  dense annotations of its class. This drawn truth is what ``AVVP_train_audio.csv`` /
  ``AVVP_train_visual.csv`` hold, so refinement can be scored against it.

Every video's draws and noise come from a generator seeded by ``seed`` and the video's name, so
a video gets the same features in the full release and in any subset (``videos: N``), and an
interrupted run resumes: each file is written atomically and existing files are kept.
``rehearsal.json`` records the settings and the inputs; resuming with other ones is an error.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from avvp.core.annotations import (DENSE_FILES, FULL_FILE, SPLIT_FILES, TRAIN_TRUTH_FILES, Annotations,
                          read_llp, youtube_id)
from avvp.infra.atomic import atomic_path, write_json, write_text
from avvp.infra.errors import ConfigError, InputError
from avvp.stages.import_features import OFFICIAL
from avvp.infra.json_reader import read_json
from avvp.infra.provenance import sha256
from avvp.settings import merge_settings, require_range

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "noise": 1.0,                 # standard deviation of the Gaussian noise of every value
    "signal": {"audio": 2.0, "frame": 1.0, "clip": 2.0},   # length of a class direction per row
    "videos": None,               # a subset of this many videos (split shares kept); None: all
}
RECORD = "rehearsal.json"
FORMAT = "avvp-rehearsal-release-1"
MODALITY = {"audio": "audio", "frame": "visual", "clip": "visual"}
N_SEGMENTS = 10
ROLES = tuple(OFFICIAL)


def release_settings(given: Mapping[str, Any] | None = None) -> dict:
    """``given`` merged over :data:`DEFAULTS` and checked."""
    s = merge_settings(DEFAULTS, given or {}, "rehearsal")
    require_range("rehearsal.noise", float(s["noise"]), 0.0)
    for role in ROLES:
        require_range(f"rehearsal.signal.{role}", float(s["signal"][role]), 0.0)
    if s["videos"] is not None:
        if isinstance(s["videos"], bool) or not isinstance(s["videos"], int):
            raise ConfigError(f"rehearsal.videos = {s['videos']!r} is not an integer")
        require_range("rehearsal.videos", s["videos"], 3)
    return s


def video_seed(seed: int, video_id: str) -> list[int]:
    """The seed of one video's generator: the release seed and a hash of the video's name."""
    digest = hashlib.blake2b(video_id.encode(), digest_size=8).digest()
    return [int(seed), int.from_bytes(digest, "little")]


# ------------------------------------------------------------------------------ the videos

def choose_videos(ann: Annotations, n: int | None, seed: int) -> list[str]:
    """``n`` videos drawn at random, each split's share in proportion to its size (at least one
    video each), in file order; all videos when ``n`` is None."""
    videos = ann.videos
    if n is None or n >= len(videos):
        return videos["video_id"].tolist()
    sizes = np.array([len(ann.split(s)) for s in SPLIT_FILES])
    quota = n * sizes / sizes.sum()
    counts = np.maximum(np.floor(quota).astype(int), 1)
    for i in np.argsort(counts - quota)[: max(0, n - counts.sum())]:   # largest remainders
        counts[i] += 1
    rng = np.random.default_rng([int(seed), 7])
    chosen = []
    for split, k in zip(SPLIT_FILES, np.minimum(counts, sizes)):
        ids = ann.split(split)["video_id"].to_numpy()
        chosen.extend(ids[np.sort(rng.choice(len(ids), size=k, replace=False))].tolist())
    return chosen


@dataclass
class EventPool:
    """Per class, the (audio, visual) segment masks (K, T) of the val/test videos where it occurs."""

    audio: list[np.ndarray]
    visual: list[np.ndarray]


def event_pool(ann: Annotations) -> EventPool:
    """The real dense events of every class, from the val and test videos of ``ann``."""
    ids = ann.videos.loc[ann.videos["split"].isin(["val", "test"]), "video_id"].tolist()
    audio, visual = ann.dense("audio", ids, N_SEGMENTS), ann.dense("visual", ids, N_SEGMENTS)
    pool = EventPool([], [])
    for c, name in enumerate(ann.classes):
        rows = np.flatnonzero(audio[:, c].any(axis=1) | visual[:, c].any(axis=1))
        if not len(rows):
            raise InputError(ann.folder, f"class {name!r} has no dense val/test event to draw "
                                         "training events from")
        pool.audio.append(audio[rows, c])
        pool.visual.append(visual[rows, c])
    return pool


def train_truth(weak: np.ndarray, pool: EventPool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(audio, visual) truth (C, T) of one training video: each weak label copies a drawn event."""
    c_n = len(weak)
    audio = np.zeros((c_n, N_SEGMENTS), dtype=np.uint8)
    visual = np.zeros_like(audio)
    for c in np.flatnonzero(weak > 0):
        k = int(rng.integers(len(pool.audio[c])))
        audio[c], visual[c] = pool.audio[c][k], pool.visual[c][k]
    return audio, visual


def directions(seed: int, n_classes: int) -> dict[str, np.ndarray]:
    """One random unit direction per class for each store: role -> (C, D) float32."""
    rng = np.random.default_rng([int(seed), 1])
    out = {}
    for role in ROLES:
        d = OFFICIAL[role][1][1]
        x = rng.standard_normal((n_classes, d))
        out[role] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def video_features(truth: Mapping[str, np.ndarray], dirs: Mapping[str, np.ndarray], settings: Mapping,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The three arrays of one video: noise plus the class directions of its present segments.

    Args:
        truth: ``audio`` / ``visual`` (C, T) presence of each class per segment.
        dirs: :func:`directions`.
        settings: :func:`release_settings`.
        rng: the video's generator.
    """
    out = {}
    for role in ROLES:
        rows, dim = OFFICIAL[role][1]
        x = rng.standard_normal((rows, dim), dtype=np.float32)
        x *= np.float32(settings["noise"])
        present = truth[MODALITY[role]].T.astype(np.float32)            # (T, C)
        signal = (present @ dirs[role]) * np.float32(settings["signal"][role])   # (T, D)
        x += np.repeat(signal, rows // N_SEGMENTS, axis=0)
        out[role] = x
    return out


# ------------------------------------------------------------------------- annotation files

def _filter_lines(path: Path, keep: set[str] | None) -> str:
    """The text of a tab-separated LLP file, keeping the header and the rows of ``keep``."""
    lines = path.read_text().splitlines(keepends=True)
    if keep is None:
        return "".join(lines)
    return "".join(lines[:1] + [ln for ln in lines[1:] if ln.split("\t", 1)[0] in keep])


def _dense_text(video_ids: Sequence[str], classes: Sequence[str], masks: np.ndarray) -> str:
    """Dense LLP rows (one per maximal run of present segments) of (N, C, T) masks."""
    rows = ["filename\tonset\toffset\tevent_labels"]
    for i, c in zip(*np.nonzero(masks.any(axis=2))):
        padded = np.concatenate([[0], masks[i, c].astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(padded))
        for on, off in zip(edges[::2], edges[1::2]):
            rows.append(f"{video_ids[i]}\t{on}\t{off}\t{classes[c]}")
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------------------ the release

@dataclass
class ReleaseReport:
    """What :func:`write_release` did."""

    out: Path
    videos: int
    written: int
    kept: int
    bytes: int


def _record(annotations: Path, settings: Mapping) -> dict:
    files = {name: sha256(annotations / name) for name in
             sorted([FULL_FILE, *SPLIT_FILES.values(), *DENSE_FILES.values()])}
    return {"format": FORMAT, "settings": dict(settings), "inputs": files}


def _check_record(path: Path, record: Mapping) -> None:
    if not path.exists():
        return
    old = read_json(path, "rehearsal record")
    if not isinstance(old, dict) or any(old.get(k) != record[k] for k in ("format", "settings", "inputs")):
        raise InputError(path, "this folder holds a stand-in release made with other settings or "
                               "annotation files; write the new one into another folder")


def write_release(annotations: str | Path, out: str | Path, settings: Mapping[str, Any] | None = None,
                  progress: bool = True) -> ReleaseReport:
    """Write the stand-in release of the videos of an LLP annotation folder into ``out``.

    Args:
        annotations: a folder of the six LLP annotation files.
        out: writes ``out/feats/{vggish,res152,r2plus1d_18}/<id>.npy``, ``out/annotations/``
            (the annotation files of the chosen videos and their training truth) and
            ``out/rehearsal.json``. Files already there are kept (resume).
        settings: see :data:`DEFAULTS`.
        progress: show a progress bar.
    """
    s = release_settings(settings)
    annotations, out = Path(annotations), Path(out)
    source = read_llp(annotations)
    record = _record(annotations, s)
    _check_record(out / RECORD, record)
    write_json(out / RECORD, {**record, "complete": False})

    ids = choose_videos(source, s["videos"], s["seed"])
    pool = event_pool(source)
    dirs = directions(s["seed"], len(source.classes))
    videos = source.videos.set_index("video_id").loc[ids]
    weak = source.weak(ids)
    dense = {m: source.dense(m, ids, N_SEGMENTS) for m in ("audio", "visual")}
    is_train = (videos["split"] == "train").to_numpy()
    for role in ROLES:
        (out / "feats" / OFFICIAL[role][0]).mkdir(parents=True, exist_ok=True)

    written = kept = size = 0
    for i, vid in enumerate(tqdm(ids, desc="stand-in release", unit="video", disable=not progress)):
        rng = np.random.default_rng(video_seed(s["seed"], vid))
        if is_train[i]:
            dense["audio"][i], dense["visual"][i] = train_truth(weak[i], pool, rng)
        paths = {role: out / "feats" / OFFICIAL[role][0] / f"{youtube_id(vid)}.npy" for role in ROLES}
        if all(p.exists() for p in paths.values()):
            kept += 1
            size += sum(p.stat().st_size for p in paths.values())
            continue
        arrays = video_features({m: dense[m][i] for m in dense}, dirs, s, rng)
        for role, path in paths.items():
            with atomic_path(path) as tmp:
                np.save(tmp, arrays[role])
            size += path.stat().st_size
        written += 1

    _write_annotations(annotations, out / "annotations", source, ids, is_train, dense)
    write_json(out / RECORD, {**record, "complete": True, "videos": len(ids), "bytes": size})
    return ReleaseReport(out, len(ids), written, kept, size)


def _write_annotations(src: Path, dst: Path, ann: Annotations, ids: list[str], is_train: np.ndarray,
                       dense: Mapping[str, np.ndarray]) -> None:
    """The annotation files of the chosen videos, and the drawn truth of the training videos."""
    keep = None if len(ids) == len(ann.videos) else set(ids)
    train_ids = [v for v, t in zip(ids, is_train) if t]
    for modality, name in TRAIN_TRUTH_FILES.items():
        write_text(dst / name, _dense_text(train_ids, ann.classes, dense[modality][is_train]))
    names = [FULL_FILE, *DENSE_FILES.values(), *SPLIT_FILES.values()]
    # AVVP_train.csv last: the workflow takes it as the marker of a complete folder
    for name in sorted(names, key=lambda n: n == SPLIT_FILES["train"]):
        write_text(dst / name, _filter_lines(src / name, keep))


# ------------------------------------------------------------------------- the workflow run

#: Epochs of the MA recipe (config train.epochs); recipes with their own count (HAN's 40,
#: JoMoLD's 25) are shortened in the same proportion.
MA_EPOCHS = 12


def shortened_recipes(epochs: int, variants: Sequence[str] | None = None) -> dict:
    """Config ``recipes`` overrides: every registry recipe that sets its own ``train.epochs`` (the
    han variant's 40, the JoMoLD variants' 25) scaled by ``epochs / 12``, at least one epoch."""
    from avvp.experiments import get_variant, variant_names

    recipes = {}
    for name in variants if variants is not None else variant_names():
        own = (get_variant(name).recipe.get("train") or {}).get("epochs")
        if own is not None:
            recipes[name] = {"train": {"epochs": max(1, round(int(epochs) * int(own) / MA_EPOCHS))}}
    return recipes


def workflow_config(release: str | Path, results: str | Path, dataset: str = "llp_rehearsal",
                    epochs: int = 2, seeds: Sequence[int] | None = None) -> dict:
    """Overrides of ``config/llp_features.yaml`` that run it on a stand-in release.

    Only the data and the length of training change: the release's annotation folder (with its
    training truth, so refinement is scored) and features, ``epochs`` per run instead of 12, and
    the recipes with their own length (HAN's 40 epochs, JoMoLD's 25) shortened in proportion (at
    least one epoch). The methods and official tables (``experiments.methods``,
    ``experiments.official``) are switched off: their VALOR rows need VALOR's released CLIP/ and
    CLAP/ folders (``pseudo.release``), which a stand-in release does not have (the VALOR rows run
    on the demo). Everything else (variants, seeds unless
    ``seeds`` is given, refinement, evaluation on the real test annotations) stays as configured.
    """
    release = Path(release).resolve()
    train: dict[str, Any] = {"epochs": int(epochs)}
    if seeds is not None:
        train["seeds"] = [int(s) for s in seeds]
    return {"dataset": dataset, "results": str(Path(results).resolve()),
            "data": {"annotations": str(release / "annotations")},
            "features": {"official": str(release)},
            "train": train, "recipes": shortened_recipes(epochs),
            "experiments": {"methods": False, "official": False}}
