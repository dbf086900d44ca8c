"""Parse any video into audio, visual and audio-visual events with a trained HAN / MA / JoMoLD / VALOR model.

How a video becomes events:

1. **Segments.** The video is cut into whole 1-second segments from its start: a video of
   duration d gives T = floor(d + 0.1) segments (23.4 s → 23; 9.95 s → 10, see
   :data:`SEGMENT_TOLERANCE_S`), and the **tail** shorter than a second (0.4 s here) is left out
   and reported (``tail_s``). HAN has no positional encoding, so any T ≥ 1 works; a video shorter
   than 0.9 s is an error. The duration is the video stream's; when the audio stream covers less
   of a window (it ends earlier, starts later or has gaps), up to ``audio_tolerance`` seconds per
   window (default 2) are padded with silence and reported as a warning (``warnings`` in
   ``events.json``, the summary); more is an error naming the file.
2. **Features.** The same extractors as in training (settings and weight identity taken from the
   model file, see :func:`load_parser`) give audio (T, Da), frame (8T, Df) and clip (T, Dc)
   features. They are decoded and embedded in windows of ``window`` seconds (default 10, the
   LLP clip length), so memory does not grow with the video and every window's features are laid
   out as in training: VGGish's 0.96-s examples restart at each window, so audio row t is at most
   0.4 s from second t, as in the LLP features (one pass over a 10-minute video would put the
   last row 24 s early). Each window is decoded once for the three roles
   (:class:`avvp.extractors.joint.ClipDecoder`). A file without an audio stream is parsed with
   silence in its place, and the output says so; a file without a video stream is an error naming
   it.
3. **Binarisation**, as in the evaluation (:func:`avvp.metrics.binarize`): segment t of class c is
   audio-positive when P_audio[t, c] ≥ threshold and the video-level gate passes (gate ``ma``,
   the default: the class's audio probability ``a_prob`` ≥ threshold; gate ``han``: the global
   probability); likewise visual. Audio-visual = audio AND visual.
4. **Events** are the maximal runs of consecutive positive segments per class and modality:
   ``onset`` = first segment's start, ``offset`` = last segment's end (seconds from the start of the
   file). ``confidence`` is the mean frame probability of that modality over the run; for an
   audio-visual event it is the mean over the run of min(P_audio, P_visual).

Outputs per video, in ``<out>/<video file stem>/`` (``<stem>_<ext>`` when stems repeat): ``events.json`` (the events plus what was
parsed: duration, segments, tail, gate, notes, video-level probabilities), ``events.csv`` (class,
modality, onset, offset, confidence) and ``timeline.png``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from .atomic import save_figure, write_csv, write_json
from .classes import LLP_CLASSES
from .errors import ConfigError, InputError
from .decoding.media import DECODER_ERRORS
from .extractors.base import AUDIO_PAD_NOTE_S, AUDIO_TOLERANCE_S
from .extractors.engine import check_engine
from .metrics import GATES, binarize
from .paths import child
from .settings import merge_settings

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "gate": "ma",  # ma: each modality's own video probability; han: the global probability
    "threshold": 0.5,  # for frame and video probabilities, as in the evaluation
    "device": "auto",
    "batch_size": 64,  # extractor inputs per forward pass
    "window": 10,  # seconds decoded and embedded at a time (10: the LLP clip length)
    "timeline": True,  # draw timeline.png
    "audio_tolerance": AUDIO_TOLERANCE_S,  # seconds of a window the audio may leave uncovered
    "engine": "jit",  # how the extractor networks run (avvp.extractors.engine)
}

ROLES = ("audio", "frame", "clip")
MODALITIES = ("audio", "visual", "audio-visual")
EVENT_COLUMNS = ["class", "modality", "onset", "offset", "confidence"]
SUMMARY_COLUMNS = ["video", "status", "segments", "events", "output", "message"]
#: A video this close below a whole second counts that second (9.95 s → 10 segments; the
#: decoders pad the missing frames and audio).
SEGMENT_TOLERANCE_S = 0.1
MODALITY_COLOURS = {"audio": "#1f77b4", "visual": "#ff7f0e", "audio-visual": "#2ca02c"}


def parse_settings_defaults(given: Mapping | None = None) -> dict:
    """The ``parse`` settings: ``given`` merged over :data:`DEFAULTS`, checked."""
    s = merge_settings(DEFAULTS, given or {}, "parse")
    if s["gate"] not in GATES:
        raise ConfigError(f"parse.gate must be one of {', '.join(GATES)}, got {s['gate']!r}")
    if not 0.0 <= float(s["threshold"]) <= 1.0:
        raise ConfigError(f"parse.threshold = {s['threshold']!r} is outside [0, 1]")
    for key in ("batch_size", "window"):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 1:
            raise ConfigError(f"parse.{key} = {s[key]!r} must be an integer >= 1")
    if isinstance(s["audio_tolerance"], bool) or not isinstance(s["audio_tolerance"], (int, float)) \
            or s["audio_tolerance"] < 0:
        raise ConfigError(f"parse.audio_tolerance = {s['audio_tolerance']!r} must be a number >= 0")
    check_engine(s["engine"], "parse")
    return s


# ----------------------------------------------------------------------------- model + features

@dataclass
class VideoParser:
    """A loaded model with the feature extractors it was trained with.

    Attributes:
        model: the HAN in eval mode on ``device``.
        classes: class names in model output order.
        extractors: role -> extractor (``avvp.extractors``).
        feature_source: where the extractor settings came from ("model file", "features
            settings" or the config file's path).
        settings: the parse settings.
        device: the torch device.
        model_path: the model file.
    """

    model: Any
    classes: list[str]
    extractors: dict[str, Any]
    feature_source: str
    settings: dict
    device: torch.device
    model_path: Path
    notes: list[str] = field(default_factory=list)


def load_parser(model_path: str | Path, settings: Mapping | None = None,
                features: Mapping | None = None, config: str | Path | None = "config.yaml") -> VideoParser:
    """Load a model file and build the feature extractors it needs.

    The extractor settings come from, in order: ``features`` (a ``features`` config section)
    when given; the model file (avvp model files record the feature stores' attributes, i.e. each
    extractor's settings and weight identity); the ``features`` section of ``config``. A model
    trained on imported official features, or an official ``MMIL_Net`` state dict, records no
    usable extractor settings, so the config's are used (and this is noted in the output).

    Raises:
        MissingWeightsError: the model file (or a configured extractor weight file) is missing.
        InputError: the model file cannot be read.
        ConfigError: the extractors' feature sizes do not match the model, or their weights
            differ from the ones the model was trained with.
    """
    from .checkpoint import load_model
    from .device import resolve_device
    from .extractors import create_extractor

    s = parse_settings_defaults(settings)
    model_path = Path(model_path)
    model, info = load_model(model_path)
    _check_roles(model, model_path)
    classes = info.get("classes") or _default_classes(model, model_path)
    device = resolve_device(s["device"])
    notes: list[str] = []
    trained = _trained_attrs(info.get("meta", {}))
    role_settings, source = _feature_settings(trained, features, config, model_path)
    if source != "model file":
        notes.append(f"feature-extractor settings taken from {source}, not from the model file")
        log.warning("%s: %s", model_path, notes[-1])
    extractors = {}
    for role in ROLES:
        ext = create_extractor(role_settings[role], role, device=device, missing_audio="silence",
                               audio_tolerance=s["audio_tolerance"], engine=s["engine"])
        _check_identity(ext, trained.get(role), model_path, source)
        extractors[role] = ext
    _check_dims(model.config, extractors, model_path, source)
    return VideoParser(model.to(device).eval(), list(classes), extractors, source, s, device,
                       model_path, notes)


def _check_roles(model, path: Path) -> None:
    """Refuse a model that reads other features than the three extractors parse runs (VALOR++:
    the CLAP token map and CLIP embeddings)."""
    from .architectures import STANDARD_ROLES, input_roles

    roles = input_roles(model)
    other = {slot: role for slot, role in roles.items() if STANDARD_ROLES[slot] != role}
    if other:
        raise ConfigError(f"{path}: the model reads {', '.join(sorted(other.values()))} features; parse "
                          f"extracts only {', '.join(STANDARD_ROLES.values())} (use avvp predict on "
                          "feature stores that hold them)")


def _default_classes(model, path: Path) -> list[str]:
    if model.config.n_classes == len(LLP_CLASSES):
        return list(LLP_CLASSES)
    raise InputError(path, f"the model file records no class names and has {model.config.n_classes} "
                           f"classes (not the {len(LLP_CLASSES)} LLP classes)")


def _trained_attrs(meta: Mapping) -> dict[str, dict]:
    """role -> feature-store attributes recorded in a model file's meta (``features``), if usable."""
    found = meta.get("features") if isinstance(meta, Mapping) else None
    out = {}
    if isinstance(found, Mapping):
        for role in ROLES:
            attrs = found.get(role)
            if isinstance(attrs, Mapping) and "settings" in attrs:
                out[role] = dict(attrs)
    return out


def _recorded_settings(attrs: Mapping) -> dict | None:
    """An extractor's settings from store attributes; None for imported (official) features."""
    if str(attrs.get("extractor", "")).startswith("official") or attrs.get("weights") == "official":
        return None
    value = attrs.get("settings")
    try:
        settings = json.loads(value) if isinstance(value, str) else dict(value)
    except (TypeError, ValueError):
        return None
    if not isinstance(settings, dict) or not settings.get("extractor"):
        return None
    from .extractors import extractor_class

    # Keep the extractor's own keys; the rest is what was recorded beside them (e.g. missing_audio).
    known = set(extractor_class(settings["extractor"]).all_defaults()) | {"extractor"}
    return {k: v for k, v in settings.items() if k in known}


def _feature_settings(trained: Mapping, features: Mapping | None, config: str | Path | None,
                      model_path: Path) -> tuple[dict[str, dict], str]:
    if features is not None:
        return _roles_of(features, "the given features settings"), "the given features settings"
    recorded = {role: _recorded_settings(trained[role]) for role in trained}
    if len(recorded) == len(ROLES) and all(recorded.values()):
        return recorded, "model file"
    if config is None:
        raise ConfigError(f"{model_path}: the model file records no usable feature-extractor settings;"
                          " give a config file (--config) whose 'features' section describes them")
    from .settings import load_config

    section = load_config(config).get("features")
    if not isinstance(section, Mapping):
        raise ConfigError(f"{config}: no 'features' section (needed for {model_path}, which records"
                          " no usable feature-extractor settings)")
    return _roles_of(section, str(config)), str(config)


def _roles_of(section: Mapping, where: str) -> dict[str, dict]:
    out = {}
    for role in ROLES:
        value = section.get(role)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: no 'features.{role}' section")
        out[role] = dict(value)
    return out


def _check_identity(ext, attrs: Mapping | None, model_path: Path, source: str) -> None:
    """Refuse extractor weights other than those the model's training features were made with."""
    if not attrs or source != "model file":
        return
    want = str(attrs.get("weights", ""))
    if want and want != ext.weights_identity:
        raise ConfigError(
            f"{model_path}: the {ext.role} features it was trained on came from weights {want}, but "
            f"the configured {ext.role} extractor loads {ext.weights_identity}; parse would compute "
            "different features. Put the same weight file in place (see the 'weights' setting).")


def _check_dims(config, extractors: Mapping, model_path: Path, source: str) -> None:
    expected = {"audio": config.audio_dim, "frame": config.frame_dim, "clip": config.clip_dim}
    wrong = [f"{role} {ext.dim} (model: {expected[role]})" for role, ext in extractors.items()
             if ext.dim != expected[role]]
    if wrong:
        raise ConfigError(f"{model_path}: the feature extractors from {source} give feature sizes "
                          f"that do not fit the model: {', '.join(wrong)}")


# ----------------------------------------------------------------------------- one video

@dataclass
class ParseResult:
    """What :func:`parse_video` found in one video.

    Attributes:
        video: the file.
        duration: its duration (s).
        segments: T, the number of whole 1-s segments parsed.
        tail_s: the seconds after the last whole segment, not parsed.
        events: table with :data:`EVENT_COLUMNS`.
        global_prob, a_prob, v_prob: (C,) video-level probabilities.
        frame_prob: (T, 2, C) segment probabilities (axis 1: audio, visual).
        audio_on, visual_on: (C, T) uint8 binarised segments.
        notes: anything the user should know (no audio stream, extractor settings, ...).
        warnings: what was patched up (audio padded with silence where the stream did not cover
            a window).
    """

    video: Path
    duration: float
    segments: int
    tail_s: float
    events: pd.DataFrame
    global_prob: np.ndarray
    a_prob: np.ndarray
    v_prob: np.ndarray
    frame_prob: np.ndarray
    audio_on: np.ndarray
    visual_on: np.ndarray
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def video_segments(info: Mapping, path: str | Path) -> tuple[int, float, list[str]]:
    """(T, duration, notes) of a probed video: T whole seconds of the video stream.

    Raises:
        DecodeError: no video stream, unknown duration, or shorter than one segment.
    """
    from .decoding import DecodeError

    if not info.get("has_video"):
        raise DecodeError(path, "no video stream; parse needs the pictures as well as the sound")
    duration = info.get("video_duration") or info.get("duration")
    if not duration or duration <= 0:
        raise DecodeError(path, "the file declares no duration")
    duration = float(duration)
    t = int(np.floor(duration + SEGMENT_TOLERANCE_S))
    if t < 1:
        raise DecodeError(path, f"the video is {duration:.2f} s long; parse needs at least one whole "
                                "second (1-s segments)")
    notes = []
    if not info.get("has_audio"):
        notes.append("no audio stream: the audio was parsed as silence, so the audio and "
                     "audio-visual events say nothing about the real sound")
    return t, duration, notes


def extract_features(parser: VideoParser, path: str | Path, segments: int
                     ) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The (1, rows, D) features of ``[0, segments)`` seconds of ``path`` for each role, decoded
    (once per window for the three roles) and embedded window by window (``window`` seconds, see
    the module docstring), and the warnings (audio padded with silence).

    Raises:
        InputError: a role's input could not be decoded in some window.
    """
    from .extractors.joint import ClipDecoder

    batch, window = int(parser.settings["batch_size"]), int(parser.settings["window"])
    decoder = ClipDecoder(parser.extractors)
    rows: dict[str, list[np.ndarray]] = {role: [] for role in parser.extractors}
    warnings = []
    for start in range(0, segments, window):
        seconds = float(min(window, segments - start))
        for role, got in decoder(path, float(start), seconds).items():
            if got.units is None:
                raise InputError(path, f"{got.reason} ({role} features of [{start:g}, {start + seconds:g}) s)")
            if got.padded_s > AUDIO_PAD_NOTE_S:
                warnings.append(f"the audio stream leaves {got.padded_s:.2f} s of [{start:g}, "
                                f"{start + seconds:g}) s uncovered: padded with silence")
            ext = parser.extractors[role]
            step = even_batch(len(got.units), batch)
            rows[role] += [ext.forward(got.units[i:i + step]) for i in range(0, len(got.units), step)]
    return {role: torch.from_numpy(np.concatenate(r)).unsqueeze(0) for role, r in rows.items()}, warnings


def even_batch(n: int, batch: int) -> int:
    """The batch size that splits ``n`` units into the fewest batches of at most ``batch``, all of
    about the same size (80 frames at batch 64: two of 40, not 64 + 16), so every full window
    runs one compiled shape and a shorter last window is padded to it."""
    return -(-n // -(-n // batch)) if n else batch


def parse_video(parser: VideoParser, path: str | Path) -> ParseResult:
    """Parse one video (see the module docstring).

    Raises:
        InputError: (incl. DecodeError) the file is unreadable, has no video stream, is shorter
            than one second, or its streams end before the declared duration; names the file.
    """
    from .decoding import probe

    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a video file")
    info = probe(path)
    segments, duration, notes = video_segments(info, path)
    try:
        feats, warnings = extract_features(parser, path, segments)
    except torch.cuda.OutOfMemoryError:
        raise
    except DECODER_ERRORS as exc:  # a decoder failure that was not already an InputError
        raise InputError(path, f"cannot decode: {type(exc).__name__}: {exc}") from None
    with torch.inference_mode():
        out = parser.model(*(feats[r].to(parser.device) for r in ROLES))
    arrays = {k: getattr(out, k)[0].float().cpu().numpy()
              for k in ("global_prob", "a_prob", "v_prob", "frame_prob")}
    audio_on, visual_on = binarize({k: v[None] for k, v in arrays.items()},
                                   gate=parser.settings["gate"], threshold=float(parser.settings["threshold"]))
    events = find_events(arrays["frame_prob"], audio_on[0], visual_on[0], parser.classes)
    for warning in warnings:
        log.warning("%s: %s", path, warning)
    return ParseResult(path, duration, segments, max(duration - segments, 0.0), events, arrays["global_prob"],
                       arrays["a_prob"], arrays["v_prob"], arrays["frame_prob"], audio_on[0],
                       visual_on[0], parser.notes + notes, warnings)


def find_events(frame_prob: np.ndarray, audio_on: np.ndarray, visual_on: np.ndarray,
                classes: list[str], segment_s: float = 1.0) -> pd.DataFrame:
    """Events: maximal runs of positive segments per class and modality.

    Args:
        frame_prob: (T, 2, C) segment probabilities (axis 1: audio, visual).
        audio_on, visual_on: (C, T) binary segment decisions.
        classes: the C class names.
        segment_s: seconds per segment.

    Returns:
        A table with :data:`EVENT_COLUMNS`, sorted by onset, class and modality. Audio-visual
        runs are those of ``audio_on & visual_on`` with confidence = mean of min(P_a, P_v).
    """
    frame_prob = np.asarray(frame_prob, dtype=np.float64)
    on = {"audio": np.asarray(audio_on, bool), "visual": np.asarray(visual_on, bool)}
    on["audio-visual"] = on["audio"] & on["visual"]
    prob = {"audio": frame_prob[:, 0].T, "visual": frame_prob[:, 1].T,
            "audio-visual": np.minimum(frame_prob[:, 0], frame_prob[:, 1]).T}  # (C, T)
    records = []
    for modality in MODALITIES:
        for c, start, stop in _runs(on[modality]):
            records.append({"class": classes[c], "modality": modality, "onset": start * segment_s,
                            "offset": stop * segment_s,
                            "confidence": float(prob[modality][c, start:stop].mean())})
    order = {m: i for i, m in enumerate(MODALITIES)}
    index = {c: i for i, c in enumerate(classes)}
    records.sort(key=lambda r: (r["onset"], index[r["class"]], order[r["modality"]]))
    frame = pd.DataFrame.from_records(records, columns=EVENT_COLUMNS)
    return frame.astype({"class": "str", "modality": "str", "onset": "float64", "offset": "float64",
                         "confidence": "float64"})


def _runs(mask: np.ndarray) -> Iterable[tuple[int, int, int]]:
    """(row, start, stop) of every maximal run of True along the last axis of a (C, T) array."""
    padded = np.pad(mask.astype(np.int8), ((0, 0), (1, 1)))
    diff = np.diff(padded, axis=1)
    for c in range(mask.shape[0]):
        starts = np.nonzero(diff[c] == 1)[0]
        stops = np.nonzero(diff[c] == -1)[0]
        yield from ((c, int(a), int(b)) for a, b in zip(starts, stops))


# ----------------------------------------------------------------------------- outputs

def output_names(videos: list[Path]) -> dict[Path, str]:
    """The output folder name of each video: its file stem, or ``<stem>_<ext>`` where stems repeat.

    Raises:
        InputError: two different files would still get the same name (same file name in two
            folders).
    """
    stems: dict[str, int] = {}
    for v in dict.fromkeys(videos):
        stems[v.stem] = stems.get(v.stem, 0) + 1
    names: dict[Path, str] = {}
    taken: dict[str, Path] = {}
    for v in dict.fromkeys(videos):
        name = v.stem if stems[v.stem] == 1 else f"{v.stem}_{v.suffix.lstrip('.')}"
        if name in taken:
            raise InputError(v, f"has the same file name as {taken[name]}; their outputs would both "
                                f"go to the folder {name!r}")
        taken[name] = v
        names[v] = name
    return names


def write_result(parser: VideoParser, result: ParseResult, folder: str | Path) -> dict[str, Path]:
    """Write ``events.json``, ``events.csv`` and (if enabled) ``timeline.png`` into ``folder``."""
    folder = Path(folder)
    paths = {"json": folder / "events.json", "csv": folder / "events.csv"}
    classes = parser.classes
    document = {
        "video": str(result.video),
        "model": str(parser.model_path),
        "duration_s": round(result.duration, 4),
        "segments": result.segments,
        "segment_s": 1.0,
        "tail_s": round(result.tail_s, 4),
        "tail": "the part after the last whole second is not parsed",
        "gate": parser.settings["gate"],
        "threshold": float(parser.settings["threshold"]),
        "confidence": "mean frame probability over the event (audio-visual: mean of min(audio, visual))",
        "notes": result.notes,
        "warnings": result.warnings,
        "audio_tolerance_s": float(parser.settings["audio_tolerance"]),
        "events": result.events.to_dict("records"),
        "video_probabilities": {
            c: {"global": float(result.global_prob[i]), "audio": float(result.a_prob[i]),
                "visual": float(result.v_prob[i])} for i, c in enumerate(classes)},
    }
    write_json(paths["json"], document)
    write_csv(paths["csv"], result.events, float_format="%.4f")
    if parser.settings["timeline"]:
        paths["timeline"] = folder / "timeline.png"
        plot_events(result, classes, paths["timeline"], parser.settings["gate"],
                    float(parser.settings["threshold"]))
    return paths


def plot_events(result: ParseResult, classes: list[str], path: str | Path, gate: str = "ma",
                threshold: float = 0.5) -> Path:
    """The parsed video as a timeline: for each class with an event, one row per modality.

    Each row shows the detected events as bars (audio blue, visual orange, audio-visual green;
    labelled with their confidence) and that modality's segment probability as a step line
    (row bottom = 0, row top = 1; dotted: the threshold).
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    t = result.segments
    shown = sorted({classes.index(c) for c in result.events["class"]})
    rows = [(c, m) for c in shown for m in MODALITIES]
    width = min(max(8.0, 0.3 * t + 3.0), 40.0)
    fig = Figure(figsize=(width, 0.32 * max(len(rows), 3) + 1.6))
    ax = fig.subplots()
    probs = {"audio": result.frame_prob[:, 0], "visual": result.frame_prob[:, 1],
             "audio-visual": np.minimum(result.frame_prob[:, 0], result.frame_prob[:, 1])}
    events = result.events

    def level(r: int, p):  # probability p drawn inside row r: bottom 0, top 1
        return r + 0.4 - 0.8 * np.asarray(p)

    for r, (c, modality) in enumerate(rows):
        colour = MODALITY_COLOURS[modality]
        sel = events[(events["class"] == classes[c]) & (events["modality"] == modality)]
        for ev in sel.itertuples(index=False):
            ax.broken_barh([(ev.onset, ev.offset - ev.onset)], (r - 0.4, 0.8), facecolors=colour,
                           alpha=0.35)
            ax.text((ev.onset + ev.offset) / 2, r, f"{ev.confidence:.2f}", ha="center", va="center",
                    fontsize=7)
        p = probs[modality][:, c]
        ax.step(np.arange(t + 1), level(r, np.append(p, p[-1])), where="post", color=colour, linewidth=1.2)
        ax.hlines(level(r, threshold), 0, t, colors="grey", linestyles=":", linewidth=0.7)
    ax.set_yticks(np.arange(len(rows)), [f"{classes[c]} · {m}" for c, m in rows], fontsize=8)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
    ax.set_xlim(0, max(t, 1))
    if t <= 40:
        ax.set_xticks(np.arange(t + 1))
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    if not rows:
        ax.text(max(t, 1) / 2, 0, "no events detected", ha="center", va="center")
        ax.set_yticks([])
    title = f"{result.video.name}: {t} segments of 1 s (gate {gate})"
    if result.tail_s > 1e-3:
        title += f", last {result.tail_s:.2f} s not parsed"
    ax.set_title(title, fontsize=9, loc="left")
    handles = [Patch(color=MODALITY_COLOURS[m], alpha=0.5, label=f"{m} event") for m in MODALITIES]
    handles.append(Line2D([0], [0], color="grey", label="segment probability (row bottom 0, top 1)"))
    handles.append(Line2D([0], [0], color="grey", linestyle=":", label=f"threshold {threshold:g}"))
    fig.legend(handles=handles, loc="upper right", fontsize=7, ncol=5)
    if result.notes:
        fig.text(0.01, 0.0, "\n".join(result.notes), fontsize=7, va="top")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    save_figure(path, fig)
    return Path(path)


# ----------------------------------------------------------------------------- many videos

@dataclass
class ParseSummary:
    """What :func:`parse_videos` did: one row per video (:data:`SUMMARY_COLUMNS`)."""

    table: pd.DataFrame

    @property
    def failed(self) -> int:
        return int((self.table["status"] != "ok").sum())

    def text(self) -> str:
        lines = []
        for row in self.table.itertuples(index=False):
            if row.status == "ok":
                msg = f"  ok      {row.video}: {row.events} events in {row.segments} segments -> {row.output}"
                if row.message:
                    msg += f" (note: {row.message})"
            else:
                msg = f"  FAILED  {row.video}: {row.message}"
            lines.append(msg)
        ok = len(self.table) - self.failed
        lines.append(f"{ok} of {len(self.table)} videos parsed, {self.failed} failed")
        return "\n".join(lines)


def expand_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus the video files (by extension) of any folder named."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS))
        else:
            out.append(p)
    return out


#: File extensions taken from a folder (files named directly may have any extension).
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ts",
                    ".ogv", ".3gp", ".wmv")


def parse_videos(videos: Iterable[str | Path], model: str | Path, out: str | Path,
                 settings: Mapping | None = None, features: Mapping | None = None,
                 config: str | Path | None = "config.yaml", progress: bool = True,
                 parser: VideoParser | None = None) -> ParseSummary:
    """Parse every video into ``<out>/<name>/``; a video that fails does not stop the others.

    ``<name>`` is the file stem (``<stem>_<ext>`` when two files share a stem, see
    :func:`output_names`).

    The summary (also written to ``<out>/summary.csv``) has one row per video with its status
    (``ok`` or ``failed``) and the error or notes.

    Raises:
        InputError: two videos in different folders share a file name (outputs would collide).
        AvvpError: the model or the extractors cannot be loaded (nothing can be parsed).
    """
    from tqdm import tqdm

    videos = list(dict.fromkeys(expand_videos(videos)))
    names = output_names(videos)
    if parser is None:
        parser = load_parser(model, settings, features, config)
    rows = []
    for video in tqdm(videos, desc="parse", unit="video", disable=not progress):
        try:
            folder = child(out, names[video], source=video, what="output folder name")
            result = parse_video(parser, video)
            write_result(parser, result, folder)
        except InputError as exc:
            log.error("%s", exc)
            same = exc.path is not None and Path(exc.path) == video and exc.line is None
            rows.append({"video": str(video), "status": "failed", "segments": 0, "events": 0,
                         "output": "", "message": exc.problem if same else str(exc)})
            continue
        rows.append({"video": str(video), "status": "ok", "segments": result.segments,
                     "events": len(result.events), "output": str(folder),
                     "message": "; ".join(result.notes + [f"warning: {w}" for w in result.warnings])})
    table = pd.DataFrame.from_records(rows, columns=SUMMARY_COLUMNS)
    write_csv(Path(out) / "summary.csv", table)
    return ParseSummary(table)
