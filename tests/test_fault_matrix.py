"""The fault matrix: every stage of the DAG under every fault class, through the ``avvp`` CLI.

Stages: extract, merge, import, pool, train, refine, noise ratios, train denoised, predict,
evaluate, table, parse, run on tiny data (3 clips of 2 s; 12 videos of random features). One
uninterrupted reference run (session fixture) makes every stage's inputs and expected outputs.
Each cell starts from a copy of it without the stage's outputs, injects one fault and checks:

* the error: one paragraph (``avvp <cmd>: error: ...``) naming the file and the problem, never a
  traceback (a ``kill -9`` leaves no message: the exit status is checked instead);
* nothing that existed before the run was deleted or changed (the faulted input aside);
* after the fault is removed, the plain rerun ends and its outputs are bitwise equal to the
  reference run's (equal but for wall times: the ``seconds`` of a training history or of the
  refined labels' attributes, and the resume state that holds the history). An input fault must
  leave the folder exactly as it was (no file made or changed), so its rerun is the reference run.

Fault classes: ``kill`` (SIGKILL of a separate process the moment an output is complete but not yet
renamed into place, ``AVVP_FAULT=kill:write...``), ``sigint`` and ``enospc`` (Ctrl-C / a full
disk injected at the same point), ``truncated`` (an input cut to half), ``corrupted`` (64 bytes
of an input inverted where its data are: at seven eighths of a feature store (the chunks
come last), at one eighth of a Parquet table (the footer comes last), in the middle of others), ``missing`` (an input
removed). Everything but ``kill`` runs in this process (``avvp.cli.main``): a new process costs a
torch import. The matrix is written to ``results/fault_matrix.md`` (see docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from media import write_media
from test_train import TINY, _write_dataset

from avvp.infra import faults
from avvp.infra.atomic import write_parquet
from avvp.cli import main

REPO = Path(__file__).resolve().parents[1]
FAULTS = ("kill", "sigint", "enospc", "truncated", "corrupted", "missing")
FEATURES = {
    "batch_size": 4, "threads": 1, "engine": "eager", "shards": 1, "device": "cpu",
    "audio": {"extractor": "vggish", "weights": "none", "seed": 0},
    "frame": {"extractor": "resnet152", "backbone": "resnet18", "weights": "none", "seed": 0,
              "size": 24, "crop": None},
    "clip": {"extractor": "r2plus1d_18", "weights": "none", "seed": 0, "size": 16},
}
TRAIN = json.loads(json.dumps(TINY))
TRAIN["train"]["epochs"] = 3
DENOISED = json.loads(json.dumps(TRAIN))
DENOISED["train"]["denoise"] = {"method": "jomold"}
CLIPS = [f"clip{i:07d}_0_2" for i in range(3)]
ROLE_DIRS = {"audio": "vggish", "frame": "res152", "clip": "r2plus1d_18"}
OFFICIAL_SHAPES = {"audio": (10, 128), "frame": (80, 2048), "clip": (10, 512)}


def _stage(name, argv, outputs, fault_input, point="write:1", after=()):
    return {"name": name, "argv": [str(a) for a in argv], "outputs": outputs, "input": fault_input,
            "point": point, "after": after}


STAGES = [
    _stage("extract", ["extract", "--manifest", "media.parquet", "--role", "all", "--settings",
                       json.dumps(FEATURES), "--shards", "1", "--shard", "0", "--out", "shards/{role}/0.h5",
                       "--failures", "failures/{role}_0.parquet", "--no-progress"],
           ["shards", "failures"], "media.parquet"),
    _stage("merge", ["merge-features", "--out", "media_features/audio.h5", "shards/audio/0.h5"],
           ["media_features/audio.h5"], "shards/audio/0.h5",
           after=[["merge-features", "--out", f"media_features/{r}.h5", f"shards/{r}/0.h5"]
                  for r in ("frame", "clip")]),
    _stage("import", ["import-features", "--manifest", "manifest.parquet", "--folder", "{feats}",
                      "--out-dir", "imported", "--no-progress"], ["imported"], "manifest.parquet"),
    _stage("pool", ["pool-frames", "--features-dir", "media_features", "--no-progress"],
           ["media_features/frame_pooled.h5"], "media_features/frame.h5"),
    _stage("train", ["train", "--features-dir", "features", "--manifest", "manifest.parquet", "--out",
                     "models/base/model.pt", "--settings", json.dumps(TRAIN), "--seed", "1", "--no-progress"],
           ["models/base"], "features/audio.h5", point="write@last.pt:2"),
    _stage("refine", ["refine", "--model", "models/base/model.pt", "--features", "features", "--manifest",
                      "manifest.parquet", "--out", "refine/labels.parquet", "--run-seed", "1", "--no-progress"],
           ["refine"], "models/base/model.pt"),
    _stage("noise ratios", ["noise-ratios", "--manifest", "manifest.parquet", "--model", "models/base/model.pt",
                            "--features", "features", "--out", "ratios/ratios.parquet", "--npz",
                            "ratios/noise_ratios.npz", "--run-seed", "1", "--settings", '{"batch_size": 5}',
                            "--no-progress"], ["ratios"], "features/clip.h5"),
    _stage("train denoised", ["train", "--features-dir", "features", "--manifest", "manifest.parquet", "--out",
                              "models/den/model.pt", "--ratios", "ratios/ratios.parquet", "--settings",
                              json.dumps(DENOISED), "--seed", "1", "--no-progress"],
           ["models/den"], "ratios/ratios.parquet", point="write@last.pt:2"),
    _stage("predict", ["predict", "--model", "models/base/model.pt", "--features-dir", "features", "--manifest",
                       "manifest.parquet", "--split", "test", "--out", "pred/test.npz", "--settings",
                       '{"device": "cpu"}', "--no-progress"], ["pred"], "models/base/model.pt"),
    _stage("evaluate", ["evaluate", "--predictions", "pred/test.npz", "--annotations", "annotations", "--split",
                        "test", "--out", "eval/baseline/seed1/test", "--timeline-videos", "1"],
           ["eval/baseline"], "pred/test.npz", point="write:2"),
    _stage("table", ["table", "table1", "--results", ".", "--out", "tables/table1.md", "--settings", '{"seeds": [1]}'], ["tables"],
           "eval/ma/seed1/test/metrics.json"),
    _stage("parse", ["parse", "clips/clip0000000_0_2.mp4", "clips/clip0000001_0_2.mp4", "--model", "parse_model.pt",
                     "--out", "parsed", "--settings", json.dumps({"device": "cpu", "timeline": False,
                                                                   "engine": "eager"}),
                     "--config", "none.yaml", "--no-progress"], ["parsed"], "parse_model.pt"),
]
BY_NAME = {s["name"]: s for s in STAGES}
RESULTS: dict[tuple[str, str], str] = {}


def _argv(stage, feats: Path) -> list[str]:
    return ["--threads", "1"] + [a.replace("{feats}", str(feats)) for a in stage["argv"]]


def _run_here(workdir: Path, argv: list[str], env: dict | None = None) -> tuple[int, str]:
    """``avvp`` in this process, in ``workdir``: (exit status, stderr)."""
    before_dir, threads = os.getcwd(), torch.get_num_threads()
    saved = {k: os.environ.get(k) for k in (env or {})}
    err = io.StringIO()
    faults.reset()
    try:
        os.chdir(workdir)
        os.environ.update(env or {})
        with contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except KeyboardInterrupt:
                rc, _ = 99, err.write("Traceback: KeyboardInterrupt escaped avvp\n")
            except Exception as exc:  # noqa: BLE001 - a traceback is what the cell reports
                rc, _ = 98, err.write(f"Traceback: {type(exc).__name__}: {exc}\n")
    finally:
        os.chdir(before_dir)
        torch.set_num_threads(threads)
        faults.reset()
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return rc, err.getvalue()


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def reference_run(tmp_path_factory):
    """The uninterrupted run of every stage, in order, on tiny data (the session fixture
    ``reference`` of conftest.py, shared with tests/test_provenance.py)."""
    root = tmp_path_factory.mktemp("faults")
    ref = root / "ref"
    data = _write_dataset(ref, n_train=8, n_val=2, n_test=2)
    (ref / "clips").mkdir()
    for i, vid in enumerate(CLIPS):
        write_media(ref / "clips" / f"{vid}.mp4", seconds=2.0, size=(32, 24), colour=60 * i, freq=300 + 200 * i)
    write_parquet(ref / "media.parquet", pd.DataFrame({"video_id": CLIPS, "start": 0.0, "end": 2.0,
                                                       "path": [f"clips/{v}.mp4" for v in CLIPS]}))
    feats = root / "feats"  # the official release's layout, read-only for every cell
    rng = np.random.default_rng(0)
    for role, folder in ROLE_DIRS.items():
        (feats / folder).mkdir(parents=True)
        for vid in data["names"]:
            np.save(feats / folder / f"{vid[:11]}.npy", rng.normal(size=OFFICIAL_SHAPES[role]).astype(np.float32))
    _parse_model(ref / "parse_model.pt")
    for stage in STAGES:
        rc, err = _run_here(ref, _argv(stage, feats))
        assert rc == 0, f"{stage['name']}: {err[-3000:]}"
        for extra in stage["after"]:
            assert _run_here(ref, ["--threads", "1", *extra])[0] == 0
        if stage["name"] == "evaluate":  # Table 1's second row (setup, not a stage)
            shutil.copytree(ref / "eval" / "baseline", ref / "eval" / "ma")
    yield {"ref": ref, "feats": feats, "root": root}
    _write_matrix()
    shutil.rmtree(root, ignore_errors=True)


def _parse_model(path: Path) -> None:
    from avvp.core.checkpoint import save_model
    from avvp.stages.extractors import create_extractor
    from avvp.core.model import HAN

    exts = {role: create_extractor(FEATURES[role], role) for role in ("audio", "frame", "clip")}
    torch.manual_seed(0)
    model = HAN(audio_dim=exts["audio"].dim, frame_dim=exts["frame"].dim, clip_dim=exts["clip"].dim,
                n_classes=3, d_model=16, dim_feedforward=16)
    save_model(path, model, ["Dog", "Speech", "Car"], {"features": {r: e.describe() for r, e in exts.items()}})


def _cell_dir(reference, stage) -> Path:
    cell = reference["root"] / "cells" / f"{stage['name'].replace(' ', '_')}"
    shutil.rmtree(cell, ignore_errors=True)
    shutil.copytree(reference["ref"], cell, copy_function=shutil.copy2)
    for out in stage["outputs"]:
        path = cell / out
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
            Path(f"{path}.provenance.json").unlink(missing_ok=True)
    return cell


def _break_input(path: Path, fault: str) -> None:
    data = path.read_bytes()
    path.unlink()  # a new file: never change the reference's bytes through a link
    if fault == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif fault == "corrupted":
        at = len(data) * {".h5": 7, ".parquet": 1}.get(path.suffix, 4) // 8
        path.write_bytes(data[:at] + bytes(b ^ 0xFF for b in data[at:at + 64]) + data[at + 64:])


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if ": error: " in line]
    return lines[-1] if lines else ""


def _same_outputs(ref: Path, cell: Path, stage) -> list[str]:
    """Relative paths of the stage's outputs that differ from the reference run's."""
    want, got = {}, {}
    for out in stage["outputs"]:
        for root, found in ((ref, want), (cell, got)):
            path = root / out
            if path.is_dir():
                found.update({f"{out}/{k}": v for k, v in _files(path).items()})
            elif path.exists():
                found[out] = hashlib.sha256(path.read_bytes()).hexdigest()
    return [name for name in sorted(set(want) | set(got)) if want.get(name) != got.get(name)
            and not (name in want and name in got and _same_but_wall_time(ref / name, cell / name))]


def _same_but_wall_time(a: Path, b: Path) -> bool:
    """Equal but for wall times: a resume state (holds the history), a Parquet table whose
    ``seconds`` column (training history) or attribute (refined labels) differs."""
    if "checkpoints" in a.parts:
        return True
    if a.suffix != ".parquet":
        return False
    import pyarrow.parquet as pq

    def plain(path: Path):
        table = pq.read_table(path)
        meta = dict(table.schema.metadata)
        attrs = json.loads(meta.pop(b"PANDAS_ATTRS", b"{}"))
        attrs.pop("seconds", None)
        if "seconds" in table.column_names:
            table = table.drop(["seconds"])
        return table.replace_schema_metadata({}), meta.get(b"avvp.infra.provenance"), attrs

    (ta, pa, aa), (tb, pb, ab) = plain(a), plain(b)
    return ta.equals(tb) and pa == pb and aa == ab


def _check_cell(reference, stage, fault) -> str:
    """Run one cell; returns "pass" or what went wrong."""
    ref, feats = reference["ref"], reference["feats"]
    cell = _cell_dir(reference, stage)
    argv = _argv(stage, feats)
    target = cell / stage["input"]
    before = _files(cell)
    if fault == "kill":
        env = {**os.environ, "AVVP_FAULT": f"kill:{stage['point']}", "PYTHONPATH": os.pathsep.join(
            [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        proc = subprocess.run([sys.executable, "-m", "avvp", *argv], cwd=cell, env=env, capture_output=True,
                              text=True, timeout=300)
        rc, err = proc.returncode, proc.stderr
        if rc != -9:
            return f"not killed (exit {rc}): {err[-300:]}"
    elif fault in ("sigint", "enospc"):
        rc, err = _run_here(cell, argv, {"AVVP_FAULT": f"{fault}:{stage['point']}"})
        line = _error_line(err)
        want = "interrupted (SIGINT) while writing" if fault == "sigint" else "no space left on device"
        if rc == 0 or want not in line:
            return f"exit {rc}, message {line or err[-300:]!r}"
    else:
        _break_input(target, fault)
        rc, err = _run_here(cell, argv)
        line = _error_line(err)
        if rc == 0 or target.name not in line:
            return f"exit {rc}, message {line or err[-300:]!r}"
    if "Traceback" in err:
        return "traceback: " + err[err.index("Traceback"):][:300]
    after = _files(cell)
    changed = [n for n, digest in before.items() if n != stage["input"] and after.get(n) != digest]
    if changed:
        return f"completed files deleted or changed: {', '.join(changed[:5])}"
    if fault in ("truncated", "corrupted", "missing"):
        made = sorted(set(after) - set(before))
        if made:
            return f"files left by the failed run: {', '.join(made[:5])}"
        return "pass"
    rc, err = _run_here(cell, argv)  # the fault removed: the plain rerun
    if rc != 0:
        return f"rerun failed (exit {rc}): {_error_line(err) or err[-300:]}"
    differ = _same_outputs(ref, cell, stage)
    if differ:
        return f"rerun differs from the uninterrupted run: {', '.join(differ[:5])}"
    temps = [p.name for p in cell.rglob(".*.tmp*")]
    if temps:
        return f"temporary files left: {', '.join(temps[:3])}"
    return "pass"


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("stage", [s["name"] for s in STAGES])
def test_fault_cell(reference, stage, fault):
    result = _check_cell(reference, BY_NAME[stage], fault)
    RESULTS[(stage, fault)] = result
    shutil.rmtree(reference["root"] / "cells", ignore_errors=True)
    assert result == "pass", f"{stage} × {fault}: {result}"


def _write_matrix() -> None:
    """``results/fault_matrix.md``: stage × fault class, pass or what went wrong."""
    if not RESULTS:
        return
    lines = ["# Fault matrix", "", "Written by `pytest tests/test_fault_matrix.py` (see docs/reliability.md).",
             "", "| stage | " + " | ".join(FAULTS) + " |", "|---" * (len(FAULTS) + 1) + "|"]
    for stage in STAGES:
        cells = [RESULTS.get((stage["name"], f), "not run").replace("|", "\\|").replace("\n", " ")
                 for f in FAULTS]
        lines.append(f"| {stage['name']} | " + " | ".join(cells) + " |")
    out = REPO / "results" / "fault_matrix.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
