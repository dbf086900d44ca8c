"""Where a parsed video's outputs go (one folder per video) and writing them atomically:
``events.json``, ``events.csv`` and ``timeline.png``."""

from __future__ import annotations

from pathlib import Path

from avvp.infra.atomic import write_csv, write_json
from avvp.infra.errors import InputError
from avvp.stages.parse.model_loading import VideoParser
from avvp.stages.parse.one_video import ParseResult
from avvp.stages.parse.timeline import plot_events


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
