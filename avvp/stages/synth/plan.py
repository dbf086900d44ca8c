"""The seeded event plan of the synthetic data set, and its LLP-format annotation files.

A plan is a JSON-ready dict (stored as ``synth_plan.json`` next to the CSVs)::

    {"format": "avvp-synth-plan", "version": 1, "settings": {plan keys},
     "classes": [names], "videos": [video, ...]}

and each video (in full-file order: train, val, test) is::

    {"video_id": "S0000000042_0_10", "youtube_id": "S0000000042", "split": "train",
     "seed": <int: noise, background and clutter>,
     "events": [{"class": name, "audio": [on, off] | null, "visual": [on, off] | null,
                 "audio_params": {...}, "visual_params": {...}}, ...],
     "decoy": null | {"modality": "audio" | "visual", "onset": s, "offset": s, "params": {...}}}

Extents are whole seconds, ``[on, off)``. Every random parameter a renderer needs is stored
(rounded, so the JSON round trip is exact), so rendering depends only on the plan file and the
render settings. Weak labels are the union of an event's modalities; decoys carry no label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from avvp.core.annotations import (DENSE_COLUMNS, DENSE_FILES, FULL_FILE, SPLIT_FILES, TRAIN_TRUTH_FILES,
                           WEAK_COLUMNS)
from avvp.infra.atomic import write_json, write_text
from avvp.core.classes import write_classes
from avvp.infra.errors import InputError
from avvp.infra.json_reader import read_json
from avvp.stages.synth.classes import BY_NAME, class_names
from avvp.stages.synth.settings import plan_part

PLAN_FILE = "synth_plan.json"
PLAN_FORMAT = "avvp-synth-plan"
PLAN_VERSION = 1
ID_PREFIX = "S"
SPLITS = ("train", "val", "test")
FULL_LENGTH_SHARE = 0.3  # share of events (per modality) that last the whole clip
MAX_SHIFT = 3            # seconds an extent edge may move when the two modalities differ


def youtube_id(index: int, prefix: str = ID_PREFIX) -> str:
    """The 11-character id of the video at ``index`` in full-file order (``S0000000042``); another
    ``prefix`` letter makes a data set whose ids no demo video shares (the stand-in teachers' pool)."""
    return f"{prefix}{index:010d}"


def modality_probabilities(name: str, min_single: float) -> tuple[float, float]:
    """(P(audible only), P(visible only)) of a class's events."""
    sig = BY_NAME[name]
    single = min_single + (1.0 - min_single) * sig.single
    return single * sig.audio_bias, single * (1.0 - sig.audio_bias)


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def _extent(rng: np.random.Generator, duration: int) -> list[int]:
    if rng.random() < FULL_LENGTH_SHARE:
        return [0, duration]
    length = int(rng.integers(1, duration + 1))
    onset = int(rng.integers(0, duration - length + 1))
    return [onset, onset + length]


def _shifted(rng: np.random.Generator, extent: list[int], duration: int) -> list[int]:
    """A different extent overlapping ``extent`` by at least one second (if one exists)."""
    on, off = extent
    for _ in range(32):
        new_on = int(np.clip(on + rng.integers(-MAX_SHIFT, MAX_SHIFT + 1), 0, duration - 1))
        new_off = int(np.clip(off + rng.integers(-MAX_SHIFT, MAX_SHIFT + 1), new_on + 1, duration))
        if [new_on, new_off] != extent and min(off, new_off) > max(on, new_on):
            return [new_on, new_off]
    return list(extent)


def _audio_params(rng: np.random.Generator) -> dict[str, float]:
    return {"freq_scale": _r(1 + rng.uniform(-0.02, 0.02)), "rate_scale": _r(1 + rng.uniform(-0.1, 0.1)),
            "phase": _r(rng.random()), "gain_db": _r(rng.uniform(-3, 3)), "pan": _r(rng.uniform(-0.5, 0.5))}


def _visual_params(rng: np.random.Generator) -> dict[str, float]:
    return {"x": 0.5, "y": _r(0.5 + rng.uniform(-0.1, 0.1)), "size": _r(rng.uniform(0.9, 1.1)),
            "phase": _r(rng.random()), "speed": _r(rng.uniform(0.8, 1.2)),
            "hue_shift": _r(rng.uniform(-4, 4), 2), "texture_seed": int(rng.integers(2**31))}


def _place(events: list[dict], rng: np.random.Generator) -> None:
    """Spread the visible events over the frame width (one slot each, shuffled)."""
    visible = [e for e in events if e["visual"] is not None]
    slots = rng.permutation(len(visible)) if visible else []
    for event, slot in zip(visible, slots):
        jitter = rng.uniform(-0.06, 0.06)
        event["visual_params"]["x"] = _r((slot + 0.5) / len(visible) + jitter)


def _decoy(rng: np.random.Generator, events: list[dict], duration: int) -> dict[str, Any]:
    """An unlabelled distractor in the modality an event lacks, at that event's time if any."""
    single = [e for e in events if (e["audio"] is None) != (e["visual"] is None)]
    if single:
        target = single[int(rng.integers(len(single)))]
        modality = "visual" if target["visual"] is None else "audio"
        onset, offset = target["audio"] or target["visual"]
    else:
        modality = "audio" if rng.random() < 0.5 else "visual"
        onset, offset = _extent(rng, duration)
    params = {"shade": _r(rng.choice([rng.uniform(0.05, 0.2), rng.uniform(0.75, 0.95)])),
              "shape": int(rng.integers(1 << 16)), "texture": int(rng.integers(1 << 16)),
              "x": _r(rng.uniform(0.25, 0.75)), "y": _r(rng.uniform(0.35, 0.65)),
              "phase": _r(rng.random()), "rate": _r(rng.uniform(2, 4)), "gain_db": _r(rng.uniform(-3, 3))}
    return {"modality": modality, "onset": int(onset), "offset": int(offset), "params": params}


def _video(rng: np.random.Generator, index: int, split: str, settings: Mapping, names: list[str],
           prefix: str = ID_PREFIX) -> dict:
    duration = settings["duration"]
    lo, hi = settings["events_per_video"]
    count = int(rng.integers(lo, hi + 1))
    chosen = rng.choice(len(names), size=count, replace=False)
    events = []
    for c in chosen:
        name = names[int(c)]
        p_audio, p_visual = modality_probabilities(name, settings["min_single_modality"])
        u = rng.random()
        extent = _extent(rng, duration)
        audio, visual = extent, extent
        if u < p_audio:
            visual = None
        elif u < p_audio + p_visual:
            audio = None
        elif rng.random() < settings["extent_jitter"]:
            visual = _shifted(rng, extent, duration)
        events.append({"class": name, "audio": audio and list(audio), "visual": visual and list(visual),
                       "audio_params": _audio_params(rng), "visual_params": _visual_params(rng)})
    _place(events, rng)
    decoy = _decoy(rng, events, duration) if rng.random() < settings["cross_modal_decoy"] else None
    yid = youtube_id(index, prefix)
    return {"video_id": f"{yid}_0_{duration}", "youtube_id": yid, "split": split,
            "seed": int(rng.integers(2**31)), "events": events, "decoy": decoy}


def make_plan(settings: Mapping[str, Any], id_prefix: str = ID_PREFIX) -> dict[str, Any]:
    """The event plan for resolved settings (see :func:`avvp.stages.synth.settings.resolve`); the video
    ids start with ``id_prefix`` (one capital letter)."""
    if not (len(id_prefix) == 1 and "A" <= id_prefix <= "Z"):
        raise InputError(None, f"the id prefix must be one capital letter A-Z, got {id_prefix!r}")
    names = class_names(settings["n_classes"])
    rng = np.random.default_rng(settings["seed"])
    videos = []
    for split in SPLITS:
        for _ in range(settings[f"n_{split}"]):
            videos.append(_video(rng, len(videos), split, settings, names, id_prefix))
    return {"format": PLAN_FORMAT, "version": PLAN_VERSION, "settings": plan_part(settings),
            "classes": names, "videos": videos}


# ----------------------------------------------------------------------------- annotation files

def _table(columns: tuple[str, ...], rows: list[tuple]) -> str:
    lines = ["\t".join(columns)] + ["\t".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def weak_labels(video: Mapping) -> list[str]:
    """The video's weak labels: every event class (audible, visible or both), in event order."""
    return [e["class"] for e in video["events"]]


def _weak_rows(videos: list[Mapping]) -> list[tuple[str, str]]:
    return [(v["video_id"], ",".join(weak_labels(v))) for v in videos]


def _dense_rows(videos: list[Mapping], modality: str) -> list[tuple]:
    return [(v["video_id"], e[modality][0], e[modality][1], e["class"])
            for v in videos for e in v["events"] if e[modality] is not None]


def write_annotations(plan: Mapping[str, Any], folder: str | Path) -> list[Path]:
    """Write the LLP-format CSVs, ``classes.txt`` and ``synth_plan.json`` into ``folder``.

    Returns:
        The written paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_split = {s: [v for v in plan["videos"] if v["split"] == s] for s in SPLITS}
    evaluated = by_split["val"] + by_split["test"]
    texts = {FULL_FILE: _table(WEAK_COLUMNS, _weak_rows(plan["videos"]))}
    for split, name in SPLIT_FILES.items():
        texts[name] = _table(WEAK_COLUMNS, _weak_rows(by_split[split]))
    for modality, name in DENSE_FILES.items():
        texts[name] = _table(DENSE_COLUMNS, _dense_rows(evaluated, modality))
    for modality, name in TRAIN_TRUTH_FILES.items():
        texts[name] = _table(DENSE_COLUMNS, _dense_rows(by_split["train"], modality))
    written = [folder / PLAN_FILE]
    write_json(folder / PLAN_FILE, plan)
    write_classes(folder, list(plan["classes"]))
    written.append(folder / "classes.txt")
    # AVVP_train.csv last: the workflow takes it as the marker of a complete folder
    for name in sorted(texts, key=lambda n: n == SPLIT_FILES["train"]):
        write_text(folder / name, texts[name])
        written.append(folder / name)
    return written


def read_plan(folder: str | Path) -> dict[str, Any]:
    """Read and check ``synth_plan.json`` of an annotation folder.

    Raises:
        InputError: the file is missing, not JSON, or not a plan written by this version.
    """
    path = Path(folder) / PLAN_FILE
    plan = read_json(path, "synthetic plan", " (write it with `avvp synth plan`)")
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise InputError(path, f"not an avvp synthetic plan (format is not {PLAN_FORMAT!r})")
    if plan.get("version") != PLAN_VERSION:
        raise InputError(path, f"plan version {plan.get('version')!r} is not {PLAN_VERSION}; re-run `avvp synth plan`")
    for key in ("settings", "classes", "videos"):
        if key not in plan:
            raise InputError(path, f"missing key {key!r}")
    unknown = sorted({e["class"] for v in plan["videos"] for e in v["events"]} - set(BY_NAME))
    if unknown:
        raise InputError(path, f"unknown class name(s) {', '.join(unknown)}")
    return plan
